// Which paths this CPU runs, and the one chosen for the process.
#include "kernels/isa.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "gguf/names.h"

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

bool isa_available(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return true;
#if defined(GGUFKIT_KERNELS_X86)
        // __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV).
        case Isa::Avx2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
                   __builtin_cpu_supports("bmi2");
        case Isa::Avx512:
            return isa_available(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512vnni");
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
