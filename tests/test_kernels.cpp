// kernels/: every path this CPU has against the scalar path. Dequantization (to f32, f16 and
// bf16) and the quantization of activations must give the same bits; dot products must stay
// within the bounds kernels.h states of a double-precision sum, and be deterministic.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gguf/types.h"
#include "kernels/elementwise.h"
#include "kernels/kernels.h"
#include "kernels/error_stats.h"
#include "quant/quant.h"
#include "support.h"

namespace {

using gguf::TypeId;
using kernels::Isa;

const std::filesystem::path kData = GGUFKIT_QUANT_DATA_DIR;

std::vector<Isa> fast_paths() {
    std::vector<Isa> out;
    for (Isa isa : kernels::available_isas())
        if (isa != Isa::Scalar) out.push_back(isa);
    return out;
}

std::string isa_text(Isa isa) { return std::string(kernels::isa_name(isa)); }

// Types the kernels dequantize: every live type quant/ dequantizes.
std::vector<TypeId> dequantizable() {
    std::vector<TypeId> out;
    for (const gguf::TypeInfo& t : gguf::all_types())
        if (!t.retired && kernels::can_dequantize(t.id)) out.push_back(t.id);
    return out;
}

// Index of the first value whose bits differ (NaN payloads included), or -1.
template <class T> int64_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
    return -1;
}

std::string describe(float a, float b) {
    uint32_t x, y;
    std::memcpy(&x, &a, 4), std::memcpy(&y, &b, 4);
    char s[96];
    std::snprintf(s, sizeof s, "%.9g (0x%08x) against scalar %.9g (0x%08x)", a, x, b, y);
    return s;
}

// Random blocks of `type`: random bytes (so random scales, NaN and Inf among them), then a
// share of blocks with each scale field forced to +-Inf, NaN, zero, a subnormal or the
// largest finite value.
std::vector<uint8_t> random_blocks(TypeId type, int64_t n_blocks, uint32_t seed) {
    const gguf::TypeInfo& info = gguf::type_info(type);
    std::mt19937 rng(seed);
    std::vector<uint8_t> bytes(static_cast<size_t>(n_blocks) * info.type_size);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    if (type == TypeId::F32) {  // keep mostly ordinary floats, with the specials in between
        for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
            const float v = std::normal_distribution<float>(0, 1)(rng);
            if (rng() % 8) std::memcpy(&bytes[i], &v, 4);
        }
    }
    const quant::Traits* traits = quant::traits(type);
    if (!traits || !info.quantized) return bytes;
    const uint16_t half_specials[] = {0x7c00, 0xfc00, 0x7e00, 0x7d01, 0xfe55, 0x0000, 0x8000, 0x0001, 0x03ff, 0x7bff, 0xfbff};
    const uint32_t single_specials[] = {0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0, 0x80000000, 1, 0x7f7fffff};
    for (int64_t b = 0; b < n_blocks; ++b) {
        if (rng() % 3 != 0) continue;
        uint8_t* block = bytes.data() + b * info.type_size;
        for (const quant::ScaleField& f : traits->scales) {
            switch (f.kind) {
                case quant::ScaleKind::F16: {
                    const uint16_t h = half_specials[rng() % std::size(half_specials)];
                    std::memcpy(block + f.offset, &h, 2);
                    break;
                }
                case quant::ScaleKind::F32: {
                    const uint32_t v = single_specials[rng() % std::size(single_specials)];
                    std::memcpy(block + f.offset, &v, 4);
                    break;
                }
                case quant::ScaleKind::E8M0: block[f.offset] = rng() % 2 ? 0xff : 0x00; break;
                case quant::ScaleKind::UE4M3:
                    for (int s = 0; s < 4; ++s) block[f.offset + s] = rng() % 2 ? 0x7f : 0xff;
                    break;
                case quant::ScaleKind::F16Nibbles:  // IQ1_M: d = +-Inf or NaN through the top nibbles
                    for (int w = 0; w < 4; ++w) block[f.offset + 2 * w + 1] = static_cast<uint8_t>((block[f.offset + 2 * w + 1] & 0x0f) | (w >= 2 ? 0x70 : 0xc0));
                    break;
                case quant::ScaleKind::None: break;
            }
        }
    }
    return bytes;
}

// n standard Gaussian values.
std::vector<float> gaussian(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gauss(0, 1);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = gauss(rng);
    return x;
}

// Quantized rows of a type from Gaussian values (importance weights where the type needs them).
std::vector<uint8_t> quantized_rows(TypeId type, int64_t n_per_row, int64_t rows, uint32_t seed) {
    const std::vector<float> x = gaussian(n_per_row * rows, seed);
    std::vector<float> importance;
    if (quant::needs_importance(type)) importance.assign(static_cast<size_t>(n_per_row), 1.0f);
    std::vector<uint8_t> out(static_cast<size_t>(quant::row_bytes(type, n_per_row) * rows));
    quant::quantize(type, x, n_per_row, importance, out);
    return out;
}

void check_same_dequantization(TypeId type, const std::vector<uint8_t>& bytes, Isa isa) {
    const gguf::TypeInfo& info = gguf::type_info(type);
    const auto n = static_cast<size_t>(bytes.size() / info.type_size * info.block_size);
    std::vector<float> want(n), got(n);
    kernels::dequantize(type, bytes, want, Isa::Scalar);
    kernels::dequantize(type, bytes, got, isa);
    const int64_t at = first_difference(got, want);
    CHECK_MESSAGE(at < 0, "value ", at, ": ", at >= 0 ? describe(got[at], want[at]) : "");

    std::vector<uint16_t> want16(n), got16(n);
    kernels::dequantize_f16(type, bytes, want16, Isa::Scalar);
    kernels::dequantize_f16(type, bytes, got16, isa);
    CHECK_MESSAGE(first_difference(got16, want16) < 0, "f16 output differs at value ", first_difference(got16, want16));
    kernels::dequantize_bf16(type, bytes, want16, Isa::Scalar);
    kernels::dequantize_bf16(type, bytes, got16, isa);
    CHECK_MESSAGE(first_difference(got16, want16) < 0, "bf16 output differs at value ", first_difference(got16, want16));
}

}  // namespace

TEST_CASE("the paths: scalar always, GGUFKIT_ISA names, the active path is available") {
    CHECK(kernels::isa_available(Isa::Scalar));
    CHECK(kernels::available_isas().front() == Isa::Scalar);
    CHECK(kernels::isa_available(kernels::active_isa()));
    for (Isa isa : kernels::kIsas) CHECK(kernels::isa_from_name(kernels::isa_name(isa)) == isa);
    CHECK(kernels::isa_from_name("AVX512") == Isa::Avx512);
    CHECK_FALSE(kernels::isa_from_name("neon-ish"));
    MESSAGE("paths on this CPU: ", [] {
        std::string s;
        for (Isa isa : kernels::available_isas()) s += isa_text(isa) + " ";
        return s;
    }());
}

TEST_CASE("the kernels dequantize the 27 quantized types and F32, F16, BF16") {
    int quantized = 0;
    for (TypeId t : dequantizable()) quantized += gguf::type_info(t).quantized;
    CHECK(quantized == 27);
    for (TypeId t : {TypeId::F32, TypeId::F16, TypeId::BF16}) CHECK(kernels::can_dequantize(t));
}

TEST_CASE("every path dequantizes ggml's reference blocks of every type to the scalar path's bits (f32, f16, bf16 output)") {
    for (Isa isa : fast_paths()) {
        for (const auto& e : std::filesystem::directory_iterator(kData / "random")) {
            if (e.path().extension() != ".bin") continue;
            const std::string name = e.path().stem().string();
            const auto type = gguf::type_from_name(name);
            REQUIRE(type);
            CAPTURE(name);
            CAPTURE(isa_text(isa));
            check_same_dequantization(*type, test::read_bytes(e.path()), isa);
        }
        for (const auto& e : std::filesystem::directory_iterator(kData / "roundtrip")) {
            if (e.path().extension() != ".bin") continue;
            const std::string stem = e.path().stem().string();
            const auto type = gguf::type_from_name(stem.substr(0, stem.find('.')));
            REQUIRE(type);
            CAPTURE(stem);
            CAPTURE(isa_text(isa));
            check_same_dequantization(*type, test::read_bytes(e.path()), isa);
        }
    }
}

TEST_CASE("every path dequantizes random blocks (NaN, Inf, zero, subnormal scales) and quantized rows of every type to the scalar path's bits") {
    for (Isa isa : fast_paths())
        for (TypeId type : dequantizable()) {
            const std::string name(gguf::type_info(type).name);
            CAPTURE(name);
            CAPTURE(isa_text(isa));
            const uint32_t block = gguf::type_info(type).block_size;
            // Counts that leave every tail a vector loop might have: 1 block, odd counts, many.
            for (int64_t n_blocks : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{4096 / block + 5}})
                check_same_dequantization(type, random_blocks(type, n_blocks, static_cast<uint32_t>(n_blocks * 131 + block)), isa);
            if (gguf::type_info(type).quantized && quant::can_quantize(type))
                check_same_dequantization(type, quantized_rows(type, 1024, 3, 7), isa);
        }
}

TEST_CASE("every path quantizes activations to the scalar path's bytes (Q8_0, Q8_1, Q8_K, F16, BF16)") {
    std::mt19937 rng(11);
    std::normal_distribution<float> gauss(0, 1);
    std::vector<float> x(4096);
    for (float& v : x) v = gauss(rng) * (rng() % 4 ? 1.0f : 1000.0f);
    std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // an all-zero block of every size
    for (int j = 512; j < 768; ++j) x[j] = static_cast<float>(j % 9 - 4) * 0.5f;  // ties: x / d lands on halves
    x[1000] = 1e30f, x[2000] = -1e-30f;
    for (Isa isa : fast_paths())
        for (TypeId weights : {TypeId::Q4_0, TypeId::Q4_1, TypeId::Q4_K, TypeId::F16, TypeId::BF16}) {
            CAPTURE(isa_text(isa));
            CAPTURE(gguf::type_info(kernels::activation_type(weights)).name);
            const kernels::Activations want(weights, x, Isa::Scalar), got(weights, x, isa);
            CHECK(std::vector<uint8_t>(got.bytes().begin(), got.bytes().end()) == std::vector<uint8_t>(want.bytes().begin(), want.bytes().end()));
        }
    // Every activation format directly, Q8_1 (no weight type's format) included.
    for (Isa isa : fast_paths())
        for (TypeId type : {TypeId::Q8_0, TypeId::Q8_1, TypeId::Q8_K, TypeId::F16, TypeId::BF16, TypeId::F32}) {
            CAPTURE(isa_text(isa));
            CAPTURE(gguf::type_info(type).name);
            std::vector<uint8_t> want(static_cast<size_t>(quant::row_bytes(type, static_cast<int64_t>(x.size())))), got(want.size());
            kernels::quantize_activations(type, x, want, Isa::Scalar);
            kernels::quantize_activations(type, x, got, isa);
            CHECK(got == want);
        }
    std::vector<uint8_t> too_small(10);
    CHECK_THROWS_AS(kernels::quantize_activations(TypeId::Q8_1, x, too_small), std::invalid_argument);
}

namespace {

struct DotCase {
    std::vector<uint8_t> row;
    std::vector<float> w;  // the row's exact values
    std::vector<float> x;
};

DotCase dot_case(TypeId type, int64_t n, uint32_t seed) {
    DotCase c;
    if (gguf::type_info(type).quantized) {
        c.row = quantized_rows(type, n, 1, seed);
    } else {  // F32 / F16 / BF16 rows of Gaussian values
        std::mt19937 rng(seed);
        std::normal_distribution<float> gauss(0, 1);
        std::vector<float> v(static_cast<size_t>(n));
        for (float& f : v) f = gauss(rng);
        c.row.resize(static_cast<size_t>(quant::row_bytes(type, n)));
        quant::quantize(type, v, n, {}, c.row);
    }
    c.w.resize(static_cast<size_t>(n));
    quant::dequantize(type, c.row, c.w);
    std::mt19937 rng(seed + 1);
    std::normal_distribution<float> gauss(0, 1);
    c.x.resize(static_cast<size_t>(n));
    for (float& f : c.x) f = gauss(rng) * (rng() % 16 ? 1.0f : 8.0f);  // some outliers, as activations have
    return c;
}

// The bound of kernels.h for activations of type `act`.
double dot_bound(TypeId act, const DotCase& c) {
    double magnitude = 0;
    for (size_t i = 0; i < c.w.size(); ++i) magnitude += std::fabs(static_cast<double>(c.w[i]) * c.x[i]);
    double bound = std::ldexp(magnitude, -20);
    if (act == TypeId::F16) return bound + std::ldexp(magnitude, -11);
    if (act == TypeId::BF16) return bound + std::ldexp(magnitude, -8);
    if (act == TypeId::F32) return bound;
    const size_t block = gguf::type_info(act).block_size;
    for (size_t b = 0; b < c.w.size(); b += block) {
        double amax = 0, wsum = 0;
        for (size_t i = b; i < b + block; ++i) amax = std::max(amax, std::fabs(static_cast<double>(c.x[i]))), wsum += std::fabs(c.w[i]);
        bound += amax / 127 * 0.57 * wsum;
    }
    return bound;
}

}  // namespace

TEST_CASE("dot products of every type, on every path, stay within the stated bound of the double-precision sum") {
    for (Isa isa : kernels::available_isas())
        for (TypeId type : dequantizable()) {
            const gguf::TypeInfo& info = gguf::type_info(type);
            if (!info.quantized && type != TypeId::F32 && type != TypeId::F16 && type != TypeId::BF16) continue;
            if (info.quantized && !quant::can_quantize(type)) continue;  // Q8_1, Q8_K: activation formats
            CAPTURE(isa_text(isa));
            CAPTURE(info.name);
            // 1, 3 and 5 blocks leave every tail a vector loop may have; then realistic rows.
            const int64_t block = info.block_size == 1 ? 32 : info.block_size;
            for (int64_t n : {block, 3 * block, 5 * block, int64_t{4096}, int64_t{11008 / 256 * 256}}) {
                CAPTURE(n);
                const DotCase c = dot_case(type, n, static_cast<uint32_t>(n) + static_cast<uint32_t>(type));
                double exact = 0;
                for (size_t i = 0; i < c.w.size(); ++i) exact += static_cast<double>(c.w[i]) * c.x[i];
                const kernels::Activations xq(type, c.x, isa);
                const float q = kernels::dot(type, c.row, xq, isa);
                CHECK_MESSAGE(std::fabs(q - exact) <= dot_bound(kernels::activation_type(type), c), "integer dot ", q, " exact ", exact);
                const float f = kernels::dot(type, c.row, c.x, isa);
                CHECK_MESSAGE(std::fabs(f - exact) <= dot_bound(TypeId::F32, c), "f32 dot ", f, " exact ", exact);
            }
        }
}

// Q4_1 / Q5_1 blocks whose values straddle zero: m = -d x k rounded to f16 (|m| large), codes
// mostly k (values near 0), a few k +- 1, so sum |w| is small beside |m|; activations all of
// one sign, so their codes' sum is large. A dot product that takes m's share as m x an f16
// rounding of dx x (sum of codes) errs by up to |m| x dx x 2 (half an f16 step of a sum near
// 4064), far beyond the bound's 0.57 x dx x sum |w|; the bound must hold all the same.
TEST_CASE("dot products of Q4_1 and Q5_1 blocks straddling zero stay within the stated bound") {
    std::mt19937 rng(31);
    std::uniform_real_distribution<float> unit(0, 1);
    for (TypeId type : {TypeId::Q4_1, TypeId::Q5_1}) {
        const bool five = type == TypeId::Q5_1;
        const gguf::TypeInfo& info = gguf::type_info(type);
        for (int64_t blocks : {1, 2, 3, 8, 9, 64}) {
            for (int trial = 0; trial < 40; ++trial) {
                std::vector<uint8_t> row(static_cast<size_t>(blocks) * info.type_size, 0);
                for (int64_t b = 0; b < blocks; ++b) {
                    uint8_t* block = row.data() + b * info.type_size;
                    const float d = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024, -static_cast<int>(rng() % 8));  // 11 bits
                    const int k = static_cast<int>(4 + rng() % (five ? 24 : 8));
                    const uint16_t dh = quant::f32_to_f16(d), mh = quant::f32_to_f16(-d * static_cast<float>(k));
                    std::memcpy(block, &dh, 2), std::memcpy(block + 2, &mh, 2);
                    uint32_t qh = 0;
                    for (int j = 0; j < 32; ++j) {
                        const int r = static_cast<int>(rng() % 16);
                        const int q = r == 0 ? k - 1 : r == 1 ? k + 1 : k;
                        uint8_t* nibbles = block + (five ? 8 : 4);
                        nibbles[j % 16] = static_cast<uint8_t>(nibbles[j % 16] | (q & 15) << (j < 16 ? 0 : 4));
                        qh |= static_cast<uint32_t>(q >> 4 & 1) << j;
                    }
                    if (five) std::memcpy(block + 4, &qh, 4);
                }
                DotCase c;
                c.row = row;
                c.w.resize(static_cast<size_t>(blocks * 32));
                quant::dequantize(type, c.row, c.w);
                c.x.resize(c.w.size());
                for (float& f : c.x) f = 1.0f + unit(rng);  // one sign: a code sum near 32 x 100
                double exact = 0;
                for (size_t i = 0; i < c.w.size(); ++i) exact += static_cast<double>(c.w[i]) * c.x[i];
                const double bound = dot_bound(kernels::activation_type(type), c);
                for (Isa isa : kernels::available_isas()) {
                    CAPTURE(isa_text(isa));
                    CAPTURE(info.name);
                    CAPTURE(blocks);
                    const float q = kernels::dot(type, c.row, kernels::Activations(type, c.x, isa), isa);
                    CHECK_MESSAGE(std::fabs(q - exact) <= bound, "integer dot ", q, " exact ", exact, " bound ", bound);
                }
            }
        }
    }
}

TEST_CASE("dot products of every type, on every path, equal the exact sum over the prepared activations but for float rounding") {
    // The integer sums inside blocks are exact, so against the activations as stored (their
    // codes times their scales) only the float arithmetic across blocks may differ: a far
    // tighter check than the bound of kernels.h, which also covers quantizing the activations.
    for (Isa isa : kernels::available_isas())
        for (TypeId type : dequantizable()) {
            const gguf::TypeInfo& info = gguf::type_info(type);
            if (!info.quantized && type != TypeId::F32 && type != TypeId::F16 && type != TypeId::BF16) continue;
            if (info.quantized && !quant::can_quantize(type)) continue;
            CAPTURE(isa_text(isa));
            CAPTURE(info.name);
            const int64_t block = info.block_size == 1 ? 32 : info.block_size;
            for (int64_t n : {block, 3 * block, 5 * block, int64_t{4096}, int64_t{11008 / 256 * 256}}) {
                CAPTURE(n);
                const DotCase c = dot_case(type, n, static_cast<uint32_t>(n) * 7 + static_cast<uint32_t>(type));
                const kernels::Activations xq(type, c.x, isa);
                std::vector<float> xs(static_cast<size_t>(n));
                quant::dequantize(xq.type(), xq.bytes(), xs);
                double exact = 0, magnitude = 0;
                for (size_t i = 0; i < xs.size(); ++i) {
                    exact += static_cast<double>(c.w[i]) * xs[i];
                    magnitude += std::fabs(static_cast<double>(c.w[i]) * xs[i]);
                }
                const float got = kernels::dot(type, c.row, xq, isa);
                CHECK_MESSAGE(std::fabs(got - exact) <= std::ldexp(magnitude, -16), "dot ", got, " exact ", exact, " magnitude ", magnitude);
            }
        }
}

TEST_CASE("dot products and matrix tiles are deterministic: same bits on every run and thread, tiles equal per-row dots") {
    for (Isa isa : kernels::available_isas())
        for (TypeId type : {TypeId::Q4_0, TypeId::Q4_1, TypeId::Q8_0, TypeId::Q4_K, TypeId::Q6_K, TypeId::IQ4_XS, TypeId::IQ2_XS,
                            TypeId::F16, TypeId::BF16, TypeId::F32}) {
            CAPTURE(isa_text(isa));
            CAPTURE(gguf::type_info(type).name);
            // Edges of every register block; for the float types a k that is not a multiple of 16.
            const int64_t m = 21, k = gguf::type_info(type).block_size == 1 ? 1031 : 1280, n = 7;
            const std::vector<uint8_t> w = gguf::type_info(type).quantized ? quantized_rows(type, k, m, 5) : dot_case(type, k * m, 5).row;
            const int64_t stride = static_cast<int64_t>(quant::row_bytes(type, k));
            const std::vector<float> x = gaussian(k * n, 9);
            // Per-row dots, computed on this thread and on two others at once.
            auto dots = [&] {
                std::vector<float> out;
                for (int64_t j = 0; j < n; ++j) {
                    const std::span<const float> xj(x.data() + j * k, static_cast<size_t>(k));
                    const kernels::Activations xq(type, xj, isa);
                    for (int64_t r = 0; r < m; ++r) {
                        const std::span<const uint8_t> row(w.data() + r * stride, static_cast<size_t>(stride));
                        out.push_back(kernels::dot(type, row, xq, isa));
                        out.push_back(kernels::dot(type, row, xj, isa));
                    }
                }
                return out;
            };
            const std::vector<float> first = dots();
            std::vector<float> a, b;
            std::thread ta([&] { a = dots(); }), tb([&] { b = dots(); });
            ta.join(), tb.join();
            CHECK(first_difference(a, first) < 0);
            CHECK(first_difference(b, first) < 0);

            // A tile with quantized activations: y = 1 + the integer dots, exactly.
            std::vector<float> y(static_cast<size_t>(m * n), 1.0f);
            kernels::matmul(type, w.data(), stride, m, k, x.data(), n, y.data(), kernels::MatmulMethod::QuantizedActivations, isa);
            for (int64_t j = 0; j < n; ++j)
                for (int64_t r = 0; r < m; ++r) CHECK(y[static_cast<size_t>(j * m + r)] == 1.0f + first[static_cast<size_t>(2 * (j * m + r))]);
            // A tile through dequantized panels: within the f32 bound of the float dots.
            std::vector<float> z(static_cast<size_t>(m * n), 0.0f);
            kernels::matmul(type, w.data(), stride, m, k, x.data(), n, z.data(), kernels::MatmulMethod::DequantizedPanel, isa);
            std::vector<float> z2(z.size(), 0.0f);
            kernels::matmul(type, w.data(), stride, m, k, x.data(), n, z2.data(), kernels::MatmulMethod::DequantizedPanel, isa);
            CHECK(first_difference(z, z2) < 0);
            // Each value is computed alone in a fixed order: one row and one vector at a time
            // give the same bits as the whole tile, by either method.
            for (auto method : {kernels::MatmulMethod::QuantizedActivations, kernels::MatmulMethod::DequantizedPanel}) {
                std::vector<float> whole(static_cast<size_t>(m * n), 0.0f);
                kernels::matmul(type, w.data(), stride, m, k, x.data(), n, whole.data(), method, isa);
                for (int64_t j = 0; j < n; ++j)
                    for (int64_t r = 0; r < m; ++r) {
                        float single = 0;
                        kernels::matmul(type, w.data() + r * stride, stride, 1, k, x.data() + j * k, 1, &single, method, isa);
                        CHECK(std::memcmp(&single, &whole[static_cast<size_t>(j * m + r)], 4) == 0);
                    }
            }
            for (int64_t j = 0; j < n; ++j)
                for (int64_t r = 0; r < m; ++r) {
                    const float f = first[static_cast<size_t>(2 * (j * m + r) + 1)];
                    CHECK(std::fabs(z[static_cast<size_t>(j * m + r)] - f) <= 1e-4f * (1 + std::fabs(f)));
                }
        }
}

// The packed f32 product (DequantizedPanel): y = W x, each output from 0, by a chain of
// FMAs over k in ascending order.
std::vector<float> packed_product(TypeId type, const std::vector<uint8_t>& w, int64_t m, int64_t k, const std::vector<float>& x, int64_t n,
                                  Isa isa, bool round = false) {
    kernels::MatmulInput input(type, k, n, kernels::MatmulMethod::DequantizedPanel, round, isa);
    input.prepare(x.data());
    std::vector<float> y(static_cast<size_t>(m * n), 0.0f);
    kernels::matmul(type, w.data(), static_cast<int64_t>(quant::row_bytes(type, k)), m, input, y.data(), m);
    return y;
}

TEST_CASE("the packed f32 product: the same bits on every path, for any row range and any number of vectors, equal to sequential FMAs") {
    for (TypeId type : {TypeId::F32, TypeId::F16, TypeId::BF16, TypeId::Q4_0, TypeId::Q8_0, TypeId::Q4_K, TypeId::Q6_K, TypeId::IQ2_XS}) {
        CAPTURE(gguf::type_info(type).name);
        // 70 rows: two whole panels and a partial one; k over several steps (and odd for the
        // float types); n over several groups of vectors and a partial one.
        // k: several steps of about 256 values and, where the blocks allow, a shorter last step.
        const uint32_t block = gguf::type_info(type).block_size;
        const int64_t m = 70, k = block == 1 ? 777 : block == 32 ? 1568 : 1536, n = 29;
        const std::vector<uint8_t> w = gguf::type_info(type).quantized ? quantized_rows(type, k, m, 3) : dot_case(type, k * m, 3).row;
        const int64_t stride = static_cast<int64_t>(quant::row_bytes(type, k));
        const std::vector<float> x = gaussian(k * n, 4);
        // The definition: dequantized rows, std::fma over k from 0.
        std::vector<float> rows(static_cast<size_t>(m * k));
        kernels::dequantize(type, w, rows, Isa::Scalar);
        std::vector<float> expected(static_cast<size_t>(m * n));
        for (int64_t j = 0; j < n; ++j)
            for (int64_t r = 0; r < m; ++r) {
                float acc = 0;
                for (int64_t i = 0; i < k; ++i) acc = std::fma(rows[static_cast<size_t>(r * k + i)], x[static_cast<size_t>(j * k + i)], acc);
                expected[static_cast<size_t>(j * m + r)] = acc;
            }
        for (Isa isa : kernels::available_isas()) {
            CAPTURE(isa_text(isa));
            const std::vector<float> y = packed_product(type, w, m, k, x, n, isa);
            CHECK(first_difference(y, expected) < 0);
            // Row ranges at panel boundaries (as threads split a matrix), into one y.
            kernels::MatmulInput input(type, k, n, kernels::MatmulMethod::DequantizedPanel, false, isa);
            for (int64_t part = 0; part < input.parts(); ++part) input.prepare(x.data(), part, part + 1);
            std::vector<float> split(static_cast<size_t>(m * n), 0.0f);
            for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{32, 64}, {0, 32}, {64, 70}})
                kernels::matmul(type, w.data() + r0 * stride, stride, r1 - r0, input, split.data() + r0, m);
            CHECK(first_difference(split, expected) < 0);
            // One vector at a time (generation) gives the batch's bits.
            for (int64_t j : {int64_t{0}, int64_t{13}, n - 1}) {
                const std::vector<float> xj(x.begin() + j * k, x.begin() + (j + 1) * k);
                const std::vector<float> yj = packed_product(type, w, m, k, xj, 1, isa);
                CHECK(first_difference(yj, std::vector<float>(expected.begin() + j * m, expected.begin() + (j + 1) * m)) < 0);
            }
        }
    }
}

TEST_CASE("the packed f32 product rounds activations to the weights' activation format when asked, and only then") {
    for (TypeId type : {TypeId::F16, TypeId::BF16, TypeId::Q8_0, TypeId::Q4_K, TypeId::F32}) {
        CAPTURE(gguf::type_info(type).name);
        const int64_t m = 40, k = 512, n = 3;
        const std::vector<uint8_t> w = gguf::type_info(type).quantized ? quantized_rows(type, k, m, 6) : dot_case(type, k * m, 6).row;
        const std::vector<float> x = gaussian(k * n, 7);
        // x through the activation format and back, by the public calls.
        const TypeId act = kernels::activation_type(type);
        std::vector<float> rounded = x;
        if (act != TypeId::F32)
            for (int64_t j = 0; j < n; ++j) {
                const std::span<const float> v(x.data() + j * k, static_cast<size_t>(k));
                std::vector<uint8_t> coded(quant::row_bytes(act, k));
                kernels::quantize_activations(act, v, coded);
                kernels::dequantize(act, coded, std::span<float>(rounded.data() + j * k, static_cast<size_t>(k)));
            }
        for (Isa isa : kernels::available_isas()) {
            CAPTURE(isa_text(isa));
            const std::vector<float> with = packed_product(type, w, m, k, x, n, isa, true);
            CHECK(first_difference(with, packed_product(type, w, m, k, rounded, n, isa)) < 0);
            if (act != TypeId::F32) CHECK(first_difference(with, packed_product(type, w, m, k, x, n, isa)) >= 0);
        }
    }
}

TEST_CASE("the 8-bit packed product: which types and paths have it") {
    for (TypeId type : {TypeId::Q4_0, TypeId::Q8_0, TypeId::Q4_K, TypeId::Q5_K, TypeId::Q6_K}) {
        CAPTURE(gguf::type_info(type).name);
        CHECK(kernels::has_integer_panel(type, Isa::Scalar));
        for (Isa isa : kernels::available_isas()) CHECK(kernels::has_integer_panel(type, isa) == (isa != Isa::Avx2));
    }
    for (TypeId type : {TypeId::F16, TypeId::F32, TypeId::Q3_K, TypeId::IQ4_XS, TypeId::Q8_K})
        for (Isa isa : kernels::available_isas()) CHECK_FALSE(kernels::has_integer_panel(type, isa));
    CHECK_THROWS_AS(kernels::MatmulInput(TypeId::F16, 256, 1, kernels::MatmulMethod::IntegerPanel), std::invalid_argument);
}

TEST_CASE("the 8-bit packed product: the same bits on every path that has it, for any row range and any number of vectors, "
          "within float rounding of the exact sum over the rounded activations") {
    for (TypeId type : {TypeId::Q4_0, TypeId::Q8_0, TypeId::Q4_K, TypeId::Q5_K, TypeId::Q6_K}) {
        CAPTURE(gguf::type_info(type).name);
        // k: several steps of 256 values and, for the 32-value blocks, a shorter last step.
        const int64_t m = 70, k = gguf::type_info(type).block_size == 32 ? 1568 : 1536, n = 15;
        const std::vector<uint8_t> w = quantized_rows(type, k, m, 11);
        const int64_t stride = static_cast<int64_t>(quant::row_bytes(type, k));
        const std::vector<float> x = gaussian(k * n, 12);
        auto product = [&](Isa isa, const std::vector<float>& xs, int64_t count) {
            kernels::MatmulInput input(type, k, count, kernels::MatmulMethod::IntegerPanel, false, isa);
            input.prepare(xs.data());
            std::vector<float> y(static_cast<size_t>(m * count), 0.0f);
            kernels::matmul(type, w.data(), stride, m, input, y.data(), m);
            return y;
        };
        const std::vector<float> reference = product(Isa::Scalar, x, n);
        // The exact sum of the dequantized weights times the rounded activations, in double.
        const TypeId act = kernels::activation_type(type);
        std::vector<float> rows(static_cast<size_t>(m * k)), rounded(x.size());
        kernels::dequantize(type, w, rows, Isa::Scalar);
        for (int64_t j = 0; j < n; ++j) {
            std::vector<uint8_t> coded(quant::row_bytes(act, k));
            kernels::quantize_activations(act, std::span<const float>(x.data() + j * k, static_cast<size_t>(k)), coded, Isa::Scalar);
            kernels::dequantize(act, coded, std::span<float>(rounded.data() + j * k, static_cast<size_t>(k)), Isa::Scalar);
        }
        int far = 0;
        for (int64_t j = 0; j < n; ++j)
            for (int64_t r = 0; r < m; ++r) {
                double exact = 0, magnitude = 0;
                for (int64_t i = 0; i < k; ++i) {
                    const double p = double{rows[static_cast<size_t>(r * k + i)]} * rounded[static_cast<size_t>(j * k + i)];
                    exact += p, magnitude += std::fabs(p);
                }
                if (std::fabs(reference[static_cast<size_t>(j * m + r)] - exact) > 2e-6 * magnitude) ++far;
            }
        CHECK(far == 0);
        for (Isa isa : kernels::available_isas()) {
            if (!kernels::has_integer_panel(type, isa)) continue;
            CAPTURE(isa_text(isa));
            CHECK(first_difference(product(isa, x, n), reference) < 0);
            kernels::MatmulInput input(type, k, n, kernels::MatmulMethod::IntegerPanel, false, isa);
            for (int64_t part = input.parts(); part-- > 0;) input.prepare(x.data(), part, part + 1);
            std::vector<float> split(static_cast<size_t>(m * n), 0.0f);
            for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{64, 70}, {0, 32}, {32, 64}})
                kernels::matmul(type, w.data() + r0 * stride, stride, r1 - r0, input, split.data() + r0, m);
            CHECK(first_difference(split, reference) < 0);
            for (int64_t j : {int64_t{0}, int64_t{7}, n - 1}) {
                const std::vector<float> xj(x.begin() + j * k, x.begin() + (j + 1) * k);
                CHECK(first_difference(product(isa, xj, 1), std::vector<float>(reference.begin() + j * m, reference.begin() + (j + 1) * m)) < 0);
            }
        }
    }
}

TEST_CASE("matmul's store mode writes y = W x over whatever y held: the bits of zeroing y and adding, by every method and path") {
    struct Case {
        TypeId type;
        kernels::MatmulMethod method;
    };
    for (const Case c : {Case{TypeId::F16, kernels::MatmulMethod::DequantizedPanel}, Case{TypeId::Q4_K, kernels::MatmulMethod::DequantizedPanel},
                         Case{TypeId::Q4_K, kernels::MatmulMethod::IntegerPanel}, Case{TypeId::Q4_0, kernels::MatmulMethod::QuantizedActivations}}) {
        CAPTURE(gguf::type_info(c.type).name);
        CAPTURE(static_cast<int>(c.method));
        const int64_t m = 70, k = 512, n = 15;
        const std::vector<uint8_t> w = gguf::type_info(c.type).quantized ? quantized_rows(c.type, k, m, 21) : dot_case(c.type, k * m, 21).row;
        const int64_t stride = static_cast<int64_t>(quant::row_bytes(c.type, k));
        const std::vector<float> x = gaussian(k * n, 22);
        for (Isa isa : kernels::available_isas()) {
            if (c.method == kernels::MatmulMethod::IntegerPanel && !kernels::has_integer_panel(c.type, isa)) continue;
            CAPTURE(isa_text(isa));
            kernels::MatmulInput input(c.type, k, n, c.method, false, isa);
            input.prepare(x.data());
            std::vector<float> added(static_cast<size_t>(m * n), 0.0f), stored(added.size(), std::numeric_limits<float>::quiet_NaN());
            kernels::matmul(c.type, w.data(), stride, m, input, added.data(), m);
            // In two row ranges, as the forward pass's threads call it.
            kernels::matmul(c.type, w.data(), stride, 32, input, stored.data(), m, true);
            kernels::matmul(c.type, w.data() + 32 * stride, stride, m - 32, input, stored.data() + 32, m, true);
            CHECK(first_difference(stored, added) < 0);
            // Without store the product is added to what y held.
            std::vector<float> twice = added;
            kernels::matmul(c.type, w.data(), stride, m, input, twice.data(), m);
            for (size_t i = 0; i < twice.size(); ++i) CHECK(twice[i] == added[i] + added[i]);
        }
    }
    // A sum that underflows to -0: zeroing y and adding gives +0, and so must store.
    const int64_t k = 64;
    const std::vector<float> w(static_cast<size_t>(k), 1e-30f), x(static_cast<size_t>(k), -1e-30f);
    for (Isa isa : kernels::available_isas()) {
        kernels::MatmulInput input(TypeId::F32, k, 1, kernels::MatmulMethod::DequantizedPanel, false, isa);
        input.prepare(x.data());
        float y = std::numeric_limits<float>::quiet_NaN();
        kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(w.data()), k * 4, 1, input, &y, 1, true);
        CHECK(y == 0.0f);
        CHECK(!std::signbit(y));
    }
    // An empty sum (k = 0) right after a product that left the accumulators non-zero: y stays, or is 0.
    {
        const std::vector<float> ones(static_cast<size_t>(k), 1.0f);
        float sum = 0;
        kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(ones.data()), k * 4, 1, k, ones.data(), 1, &sum, kernels::MatmulMethod::DequantizedPanel);
        CHECK(sum == 64.0f);
        kernels::MatmulInput input(TypeId::F32, 0, 2, kernels::MatmulMethod::DequantizedPanel);
        std::vector<float> y = {5.0f, 6.0f};
        kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(w.data()), 0, 1, input, y.data(), 1);
        CHECK(y == std::vector<float>{5.0f, 6.0f});
        kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(w.data()), 0, 1, input, y.data(), 1, true);
        CHECK(y == std::vector<float>{0.0f, 0.0f});
    }
}

TEST_CASE("exp_in_place is within 1.03 ulp of e^x over the floats, exact at 0, right at the ends; silu_mul is SiLU(gate) x up") {
    // Every 32nd float from -104 to 89 (where e^x is neither 0 nor infinite), a million at a time.
    double worst = 0;
    int64_t checked = 0;
    std::vector<float> xs, ys;
    const auto check = [&] {
        ys = xs;
        kernels::exp_in_place(ys);
        for (size_t i = 0; i < xs.size(); ++i) {
            const double want = std::exp(static_cast<double>(xs[i]));
            // The spacing of floats at the exact value (the subnormals' below 2^-126).
            const double ulp = want < 0x1p-126 ? 0x1p-149 : std::ldexp(1.0, std::ilogb(want) - 23);
            worst = std::max(worst, std::fabs(ys[i] - want) / ulp);
        }
        checked += static_cast<int64_t>(xs.size());
        xs.clear();
    };
    for (uint32_t bits = 0; bits < 0x7f800000u; bits += 32) {
        const float x = std::bit_cast<float>(bits);
        for (const float v : {x, -x})
            if (v >= -103.9f && v <= 88.7f) xs.push_back(v);
        if (xs.size() >= (1u << 20)) check();
    }
    check();
    CHECK(checked > 60000000);
    CHECK(worst <= 1.03);
    MESSAGE("exp_in_place: largest error ", worst, " ulp over ", checked, " values");
    // The worst value an exhaustive run found, above 1 ulp; and the ends.
    constexpr float kInf = std::numeric_limits<float>::infinity();
    std::vector<float> v = {59.270813f, 0.0f, -0.0f, 1.0f, -104.0f, -kInf, 88.8f, kInf, std::numeric_limits<float>::quiet_NaN(), -100.0f};
    kernels::exp_in_place(v);
    const double at = std::exp(static_cast<double>(59.270813f)), ulp = std::ldexp(1.0, std::ilogb(at) - 23);
    CHECK(std::fabs(v[0] - at) > ulp);
    CHECK(std::fabs(v[0] - at) <= 1.03 * ulp);
    CHECK(v[1] == 1.0f);
    CHECK(v[2] == 1.0f);
    CHECK(v[3] == std::exp(1.0f));
    CHECK(v[4] == 0.0f);
    CHECK(v[5] == 0.0f);
    CHECK(v[6] == kInf);
    CHECK(v[7] == kInf);
    CHECK(std::isnan(v[8]));
    CHECK(v[9] > 0.0f);  // a subnormal, not flushed

    std::vector<float> gate = gaussian(1000, 31), up = gaussian(1000, 32);
    const std::vector<float> g0 = gate;
    kernels::silu_mul(gate, up);
    for (size_t i = 0; i < gate.size(); ++i) {
        const double want = g0[i] / (1 + std::exp(-static_cast<double>(g0[i]))) * up[i];
        CHECK(std::fabs(gate[i] - want) <= 4e-7 * (std::fabs(want) + 1e-30));
    }
    std::vector<float> shorter(999);
    CHECK_THROWS_AS(kernels::silu_mul(gate, shorter), std::invalid_argument);
}

TEST_CASE("a matmul input prepared for one weight type is refused for another") {
    std::vector<float> x(256, 1.0f);
    kernels::MatmulInput input(TypeId::Q4_K, 256, 1, kernels::MatmulMethod::DequantizedPanel);
    input.prepare(x.data());
    std::vector<uint8_t> w(quant::row_bytes(TypeId::Q4_0, 256));
    float y = 0;
    CHECK_THROWS_AS(kernels::matmul(TypeId::Q4_0, w.data(), static_cast<int64_t>(w.size()), 1, input, &y, 1), std::invalid_argument);
    CHECK_THROWS_AS(kernels::MatmulInput(TypeId::Q4_K, 100, 1), std::invalid_argument);
}

TEST_CASE("kernels refuse sizes that are not whole blocks, naming the type") {
    std::vector<uint8_t> bytes(18);
    std::vector<float> out(31);
    try {
        kernels::dequantize(TypeId::Q4_0, bytes, out);
        FAIL("no error");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("q4_0") != std::string::npos);
    }
    std::vector<float> x(32);
    CHECK_THROWS_AS(kernels::dot(TypeId::Q4_0, std::span<const uint8_t>(bytes.data(), 17), x), std::invalid_argument);
    const kernels::Activations xq(TypeId::Q4_0, x);
    CHECK_THROWS_AS(kernels::dot(TypeId::Q8_0, std::vector<uint8_t>(34), xq), std::invalid_argument);
    // Retired and unknown ids (block size 0 in the table): an error, never a division by zero.
    for (const uint32_t id : {4u, 31u, 38u, 999u}) {
        CAPTURE(id);
        const auto type = static_cast<TypeId>(id);
        CHECK_THROWS_AS(kernels::dequantize(type, bytes, out), std::invalid_argument);
        CHECK_THROWS_AS(kernels::Activations(type, x), std::invalid_argument);
        float y = 0;
        CHECK_THROWS_AS(kernels::matmul(type, bytes.data(), 18, 1, 32, x.data(), 1, &y), std::invalid_argument);
    }
}

TEST_CASE("ErrorStats: a NaN difference shows in the largest difference, added or merged; cosine of two tensors") {
    kernels::ErrorStats s;
    const float x[] = {1, 2, 3}, y[] = {1, 2, std::numeric_limits<float>::quiet_NaN()};
    s.add(x, y);
    CHECK(std::isnan(s.max_abs_error));
    kernels::ErrorStats t;
    const float a[] = {1, 0}, b[] = {0, 1};
    t.add(a, b);
    CHECK(t.max_abs_error == 1);
    CHECK(t.cosine() == 0);
    t.merge(s);
    CHECK(std::isnan(t.max_abs_error));
    kernels::ErrorStats u;
    const float c[] = {1, 2}, d[] = {2, 4};
    u.add(c, d);
    CHECK(u.cosine() == doctest::Approx(1.0));
    CHECK(kernels::ErrorStats{}.cosine() == 1);  // nothing against nothing
}

TEST_CASE("ErrorStats: the importance-weighted RMSE weighs each value by its column's importance; round trips report it") {
    kernels::ErrorStats s;
    const float x[] = {1, 2, 3, 4, 5, 6}, y[] = {1, 3, 3, 2, 5, 7}, w[] = {1, 10, 100};  // two rows of three columns
    s.add(x, y, w);
    // Errors 0 -1 0 | 2 0 -1: weighted 10 x 1 + 1 x 4 + 100 x 1 = 114 over weights 2 x 111.
    CHECK(s.weighted_rmse() == doctest::Approx(std::sqrt(114.0 / 222.0)));
    CHECK(s.rmse() == doctest::Approx(std::sqrt(6.0 / 6.0)));
    kernels::ErrorStats t;
    t.merge(s);
    t.merge(s);
    CHECK(t.weighted_rmse() == doctest::Approx(s.weighted_rmse()));
    CHECK(std::isnan(kernels::ErrorStats{}.weighted_rmse()));
    kernels::ErrorStats plain;
    plain.add(x, y);
    CHECK(std::isnan(plain.weighted_rmse()));

    // A round trip through Q4_K with importance: the weighted sums over every row, by hand.
    constexpr int64_t rows = 40, cols = 512;
    std::vector<float> v(rows * cols), importance(cols);
    uint32_t r = 11;
    for (float& f : v) f = static_cast<float>(static_cast<int32_t>(r = r * 1664525u + 1013904223u)) * 0x1p-31f;
    for (int64_t k = 0; k < cols; ++k) importance[static_cast<size_t>(k)] = 1.0f + static_cast<float>(k % 7);
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
    double num = 0, den = 0;
    std::vector<uint8_t> q(quant::row_bytes(quant::TypeId::Q4_K, cols));
    std::vector<float> back(cols);
    for (int64_t i = 0; i < rows; ++i) {
        const std::span<const float> row(v.data() + i * cols, cols);
        quant::quantize(quant::TypeId::Q4_K, row, cols, importance, q);
        quant::dequantize(quant::TypeId::Q4_K, q, back);
        for (int64_t k = 0; k < cols; ++k) {
            const double e = static_cast<double>(row[static_cast<size_t>(k)]) - back[static_cast<size_t>(k)];
            num += importance[static_cast<size_t>(k)] * e * e, den += importance[static_cast<size_t>(k)];
        }
    }
    for (int threads : {1, 2}) {
        const kernels::ErrorStats e = kernels::round_trip_error(quant::TypeId::F32, bytes, rows, cols, quant::TypeId::Q4_K, importance, threads);
        CHECK(e.weighted_rmse() == doctest::Approx(std::sqrt(num / den)).epsilon(1e-12));
        CHECK(e.sum_weight == doctest::Approx(den));
    }
}
