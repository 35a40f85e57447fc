// Which paths this CPU runs, and the one chosen for the process.
#include "kernels/isa.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "gguf/names.h"
#include "table.h"

#if defined(GGUFKIT_KERNELS_X86)
#include <cpuid.h>
#endif

namespace kernels {

std::string_view isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

std::optional<Isa> isa_from_name(std::string_view name) {
    for (Isa isa : kIsas)
        if (gguf::equal_ignoring_case(name, isa_name(isa))) return isa;
    return std::nullopt;
}

namespace {

#if defined(GGUFKIT_KERNELS_X86)
// What CPUID and XGETBV say (the same code on GCC and clang, whose __builtin_cpu_supports
// know different feature names).
struct CpuFeatures {
    bool avx2 = false, avx512 = false, avx512_bf16 = false, avx512_vbmi = false;
};

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c >> 27 & 1, fma = c >> 12 & 1, f16c = c >> 29 & 1, avx = c >> 28 & 1;
    if (!osxsave || !avx) return f;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));  // which register states the OS saves
    const bool ymm = (lo & 0x6) == 0x6, zmm = (lo & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    const bool avx2 = b >> 5 & 1, bmi1 = b >> 3 & 1, bmi2 = b >> 8 & 1;
    const bool avx512f = b >> 16 & 1, avx512dq = b >> 17 & 1, avx512bw = b >> 30 & 1, avx512vl = b >> 31 & 1;
    const bool vnni = c >> 11 & 1, vbmi = c >> 1 & 1;
    f.avx2 = ymm && avx2 && fma && f16c && bmi1 && bmi2;
    f.avx512 = f.avx2 && zmm && avx512f && avx512dq && avx512bw && avx512vl && vnni;
    f.avx512_vbmi = f.avx512 && vbmi;
    unsigned a1 = 0, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = f.avx512 && (a1 >> 5 & 1);
    return f;
}

const CpuFeatures& cpu() {
    static const CpuFeatures f = detect();
    return f;
}
#endif

}  // namespace

namespace detail {
#if defined(GGUFKIT_KERNELS_X86)
bool cpu_has_avx512_bf16() { return cpu().avx512_bf16; }
bool cpu_has_avx512_vbmi() { return cpu().avx512_vbmi; }
#else
bool cpu_has_avx512_bf16() { return false; }
bool cpu_has_avx512_vbmi() { return false; }
#endif
}  // namespace detail

bool isa_available(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return true;
#if defined(GGUFKIT_KERNELS_X86)
        case Isa::Avx2: return cpu().avx2;
        case Isa::Avx512: return cpu().avx512;
#else
        default: return false;
#endif
    }
    return false;
}

std::vector<Isa> available_isas() {
    std::vector<Isa> out;
    for (Isa isa : kIsas)
        if (isa_available(isa)) out.push_back(isa);
    return out;
}

namespace {

Isa choose() {
    if (const char* forced = std::getenv("GGUFKIT_ISA"); forced && *forced) {
        const std::optional<Isa> isa = isa_from_name(forced);
        if (!isa) throw std::runtime_error("GGUFKIT_ISA=" + std::string(forced) + ": unknown path (scalar, avx2 or avx512)");
        if (!isa_available(*isa))
            throw std::runtime_error("GGUFKIT_ISA=" + std::string(forced) + ": this CPU or this build cannot run that path");
        return *isa;
    }
    return available_isas().back();
}

}  // namespace

Isa active_isa() {
    static const Isa chosen = choose();  // a throw leaves it undecided: the next call throws again
    return chosen;
}

}  // namespace kernels
