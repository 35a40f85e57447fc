// No input makes the reader allocate more than a small multiple of the file's size.
//
// This executable replaces the global operator new to track the bytes live at once, then
// opens crafted worst cases (as many of the smallest keys, tensor infos and array elements
// as the bytes allow; duplicates in lenient mode, where each is recorded), every malformed
// variant, planted fault and fuzz corpus file, strictly and leniently. The bound is
// kAllocationFactor times the file's size, plus kAllocationSlack.
//
// The same counter measures the writer's side: what a vocabulary built for writing owns.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "support.h"

namespace {

std::atomic<uint64_t> g_live{0}, g_peak{0};

void* counted_alloc(size_t n) {
    // A header before each block records its size.
    void* p = std::malloc(n + 16);
    if (!p) throw std::bad_alloc();
    *static_cast<size_t*>(p) = n;
    const uint64_t live = g_live.fetch_add(n) + n;
    uint64_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
    }
    return static_cast<char*>(p) + 16;
}

void counted_free(void* p) {
    if (!p) return;
    void* base = static_cast<char*>(p) - 16;
    g_live.fetch_sub(*static_cast<size_t*>(base));
    std::free(base);
}

}  // namespace

void* operator new(size_t n) { return counted_alloc(n); }
void* operator new[](size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }
// The no-throw forms too (std::stable_sort's buffer comes from them): every allocation and
// release must pass through the same pair.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }

namespace {

constexpr uint64_t kAllocationFactor = 16;
constexpr uint64_t kAllocationSlack = 64 * 1024;

// The most bytes live at once while `bytes` is opened (strict, then lenient).
uint64_t peak_while_opening(const std::vector<uint8_t>& bytes) {
    uint64_t worst = 0;
    for (bool lenient : {false, true}) {  // lenient: duplicates and overlaps are recorded, not thrown
        gguf::FaultLog faults;
        const uint64_t before = g_live.load();
        g_peak.store(before);
        try {
            if (lenient) (void)gguf::File::parse(bytes, "input", faults);
            else (void)gguf::File::parse(bytes, "input");
        } catch (const gguf::Error&) {
        }
        worst = std::max(worst, g_peak.load() - before);
    }
    return worst;
}

struct Raw {
    std::vector<uint8_t> b;
    template <class T> Raw& put(T v) {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b.insert(b.end(), p, p + sizeof v);
        return *this;
    }
};

void check_bound(const std::string& name, const std::vector<uint8_t>& bytes, double& worst_ratio) {
    const uint64_t peak = peak_while_opening(bytes);
    CAPTURE(name);
    CAPTURE(bytes.size());
    CHECK(peak <= kAllocationFactor * bytes.size() + kAllocationSlack);
    if (bytes.size() > kAllocationSlack) worst_ratio = std::max(worst_ratio, static_cast<double>(peak) / static_cast<double>(bytes.size()));
}

}  // namespace

TEST_CASE("the most the reader allocates is a small multiple of the file's size") {
    double worst = 0;
    constexpr uint32_t n = 200000;
    // Version 1 has the smallest items: 4-byte lengths and counts.
    {  // n keys "" of type u8: 9 bytes each; all duplicates
        Raw r;
        r.put<uint32_t>(0x46554747).put<uint32_t>(1).put<uint32_t>(0).put<uint32_t>(n);
        for (uint32_t i = 0; i < n; ++i) r.put<uint32_t>(0).put<uint32_t>(0).put<uint8_t>(0);
        check_bound("duplicate empty keys (v1)", r.b, worst);
    }
    {  // n distinct short keys
        Raw r;
        r.put<uint32_t>(0x46554747).put<uint32_t>(1).put<uint32_t>(0).put<uint32_t>(n);
        for (uint32_t i = 0; i < n; ++i) r.put<uint32_t>(4).put<uint32_t>(i).put<uint32_t>(0).put<uint8_t>(0);
        check_bound("distinct 4-byte keys (v1)", r.b, worst);
    }
    {  // n tensor infos, 1-D, empty names (duplicates), all at offset 0 (overlaps)
        Raw r;
        r.put<uint32_t>(0x46554747).put<uint32_t>(1).put<uint32_t>(n).put<uint32_t>(0);
        for (uint32_t i = 0; i < n; ++i) r.put<uint32_t>(0).put<uint32_t>(0).put<uint32_t>(0).put<uint64_t>(0);
        check_bound("overlapping unnamed tensors (v1)", r.b, worst);
    }
    {  // n distinct tensor infos, each far outside the file
        Raw r;
        r.put<uint32_t>(0x46554747).put<uint32_t>(1).put<uint32_t>(n).put<uint32_t>(0);
        for (uint32_t i = 0; i < n; ++i)
            r.put<uint32_t>(4).put<uint32_t>(i).put<uint32_t>(1).put<uint32_t>(1024).put<uint32_t>(0).put<uint64_t>(uint64_t{1} << 40);
        check_bound("tensors outside the file (v1)", r.b, worst);
    }
    {  // one key holding an array of n empty strings, and arrays of arrays
        Raw r;
        r.put<uint32_t>(0x46554747).put<uint32_t>(1).put<uint32_t>(0).put<uint32_t>(2);
        r.put<uint32_t>(1).put<uint8_t>('a').put<uint32_t>(9).put<uint32_t>(8).put<uint32_t>(n);
        for (uint32_t i = 0; i < n; ++i) r.put<uint32_t>(0);
        r.put<uint32_t>(1).put<uint8_t>('b').put<uint32_t>(9).put<uint32_t>(9).put<uint32_t>(n);
        for (uint32_t i = 0; i < n; ++i) r.put<uint32_t>(0).put<uint32_t>(0);
        check_bound("arrays of empty strings and of empty arrays (v1)", r.b, worst);
    }
    for (const auto& m : gguf::fixtures::malformed_variants()) check_bound(m.name, m.bytes, worst);
    for (const auto& f : gguf::fixtures::planted_faults())
        for (const auto& [name, bytes] : f.files) check_bound(name, bytes, worst);
    for (const char* sub : {"open", "data"}) {
        const std::filesystem::path dir = std::filesystem::path(GGUFKIT_CORPUS_DIR) / sub;
        if (!std::filesystem::is_directory(dir)) continue;
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.is_regular_file()) check_bound(e.path().filename().string(), test::read_bytes(e.path()), worst);
    }
    MESSAGE("largest peak allocation per file byte (files over 64 KiB): " << worst);
}

TEST_CASE("a 256k-token vocabulary built for writing owns about its bytes, not a node per token") {
    constexpr uint32_t n = 256000;
    std::vector<std::string> tokens;
    std::vector<float> scores;
    tokens.reserve(n);
    scores.reserve(n);
    uint64_t chars = 0;
    for (uint32_t i = 0; i < n; ++i) {
        tokens.push_back(fmt::format("tok{}", i));
        chars += tokens.back().size();
        scores.push_back(-static_cast<float>(i));
    }
    // The characters and the f32 bytes: the length prefixes a file adds are not counted.
    const uint64_t payload = chars + uint64_t{n} * sizeof(float);
    const uint64_t before = g_live.load();
    g_peak.store(before);
    gguf::Writer w;
    w.set("tokenizer.ggml.tokens", gguf::OwnedValue::strings(tokens));
    w.set("tokenizer.ggml.scores", gguf::OwnedValue::numbers(gguf::ValueType::F32, scores, gguf::OwnedValue::f32));
    const uint64_t owned = g_live.load() - before;
    const uint64_t peak = g_peak.load() - before;
    MESSAGE("256k vocabulary + f32 scores: payload " << payload << " bytes, owned " << owned << " (x"
                                                     << static_cast<double>(owned) / static_cast<double>(payload) << "), peak while building "
                                                     << peak);
    CHECK(owned <= 2 * payload);
}
