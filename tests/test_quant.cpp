// quant/: conversions and block formats checked on hand-made blocks (no reference data).
#include <doctest/doctest.h>

#include <set>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "quant/byteorder.h"
#include "quant/decode.h"
#include "quant/grids.h"
#include "quant/quant.h"

using namespace quant;

TEST_CASE("f16 and bf16 convert exactly, including subnormals, infinities and NaN") {
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x7bff) == 65504.0f);
    CHECK(f16_to_f32(0x0400) == 0x1p-14f);       // smallest normal
    CHECK(f16_to_f32(0x0001) == 0x1p-24f);       // smallest subnormal
    CHECK(f16_to_f32(0x03ff) == 1023 * 0x1p-24f);  // largest subnormal
    CHECK(std::bit_cast<uint32_t>(f16_to_f32(0x8000)) == 0x80000000u);  // -0
    CHECK(std::isinf(f16_to_f32(0x7c00)));
    CHECK(f16_to_f32(0xfc00) < 0);
    CHECK(std::isnan(f16_to_f32(0x7e00)));
    CHECK(std::isnan(f16_to_f32(0x7c01)));
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0xc0a0) == -5.0f);
    // Every finite half converts to the float with the same value.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        const double exact = std::ldexp((h >> 10) & 0x1f ? 1024 + (h & 0x3ff) : (h & 0x3ff), (h >> 10) & 0x1f ? ((h >> 10) & 0x1f) - 25 : -24);
        CHECK(f16_to_f32(static_cast<uint16_t>(h)) == static_cast<float>(h & 0x8000 ? -exact : exact));
    }
}

TEST_CASE("f32 to f16 rounds to nearest even across the whole float range, as the compiler's _Float16 does") {
    // Every 257th bit pattern (all exponents, both signs, mantissas varied) plus the
    // boundaries: ties, the largest half and the overflow threshold, subnormal edges.
    std::vector<uint32_t> patterns = {0x477fefff, 0x477ff000, 0x477fe000, 0x38800000, 0x387fffff, 0x33000000, 0x33000001,
                                      0x3f801000, 0x3f803000, 0x7f800000, 0x7fc00000, 0x7f800001, 0x80000000, 0x00000001};
    for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 257) patterns.push_back(static_cast<uint32_t>(b));
    size_t wrong = 0;
    for (uint32_t b : patterns) {
        const float f = std::bit_cast<float>(b);
        const uint16_t ours = f32_to_f16(f);
        if (std::isnan(f)) {
            wrong += !(((ours >> 10) & 0x1f) == 0x1f && (ours & 0x3ff) != 0 && (ours >> 15) == (b >> 31));
            continue;
        }
        wrong += ours != std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    }
    CHECK(wrong == 0);
}

TEST_CASE("row_bytes follows the block geometry and refuses partial blocks") {
    CHECK(row_bytes(TypeId::F32, 10) == 40);
    CHECK(row_bytes(TypeId::Q4_0, 64) == 36);
    CHECK(row_bytes(TypeId::Q4_K, 4096) == 16 * 144);
    CHECK_THROWS_AS(row_bytes(TypeId::Q4_K, 100), std::invalid_argument);
    CHECK_THROWS_AS(row_bytes(TypeId::Q4_2, 32), std::invalid_argument);
}

TEST_CASE("the traits table answers for every live type and none of the retired ones") {
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        CAPTURE(t.name);
        if (t.retired) CHECK(traits(t.id) == nullptr);
        else REQUIRE(traits(t.id) != nullptr);
        if (!t.retired) CHECK(traits(t.id)->type == t.id);
    }
}

TEST_CASE("dequantize refuses sizes that disagree and types it cannot read") {
    std::vector<uint8_t> block(18);
    std::vector<float> out(32);
    CHECK_NOTHROW(dequantize(TypeId::Q4_0, block, out));
    std::vector<float> wrong(64);
    CHECK_THROWS_WITH_AS(dequantize(TypeId::Q4_0, block, wrong), doctest::Contains("take 36 bytes, 18 given"), std::invalid_argument);
    CHECK_THROWS_AS(dequantize(TypeId::Q4_2, block, out), std::invalid_argument);
}

TEST_CASE("a hand-made Q4_0 block: d x (nibble - 8), low nibbles first") {
    std::vector<uint8_t> b(18);
    b[0] = 0x00; b[1] = 0x40;  // d = 2.0
    for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>((15 - j) << 4 | j);
    std::vector<float> y(32);
    dequantize(TypeId::Q4_0, b, y);
    for (int j = 0; j < 16; ++j) {
        CHECK(y[j] == 2.0f * static_cast<float>(j - 8));
        CHECK(y[j + 16] == 2.0f * static_cast<float>(7 - j));
    }
}

TEST_CASE("a hand-made Q8_0 block: d x signed byte") {
    std::vector<uint8_t> b(34);
    b[0] = 0x00; b[1] = 0x38;  // d = 0.5
    for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128));
    std::vector<float> y(32);
    dequantize(TypeId::Q8_0, b, y);
    for (int j = 0; j < 32; ++j) CHECK(y[j] == 0.5f * static_cast<float>(j * 8 - 128));
}

TEST_CASE("a hand-made Q5_1 block: the fifth bit of code j is bit j of qh") {
    std::vector<uint8_t> b(24);
    b[0] = 0x00; b[1] = 0x3c;  // d = 1
    b[2] = 0x00; b[3] = 0xbc;  // m = -1
    b[4] = 0x01; b[7] = 0x80;  // fifth bits of codes 0 and 31
    std::vector<float> y(32);
    dequantize(TypeId::Q5_1, b, y);
    CHECK(y[0] == 15.0f);   // 16 x 1 - 1
    CHECK(y[1] == -1.0f);
    CHECK(y[31] == 15.0f);
    CHECK(y[16] == -1.0f);
}

TEST_CASE("plain conversions of integer and f64 tensors") {
    const int16_t v16[] = {-3, 7};
    std::vector<float> y(2);
    dequantize(TypeId::I16, {reinterpret_cast<const uint8_t*>(v16), 4}, y);
    CHECK(y == std::vector<float>{-3.0f, 7.0f});
    const double v64[] = {0.25, -1e10};
    dequantize(TypeId::F64, {reinterpret_cast<const uint8_t*>(v64), 16}, y);
    CHECK(y == std::vector<float>{0.25f, -1e10f});
}

TEST_CASE("f32_to_f16 rounds to nearest even and saturates to infinity") {
    CHECK(f32_to_f16(1.0f) == 0x3c00);
    CHECK(f32_to_f16(-2.0f) == 0xc000);
    CHECK(f32_to_f16(0.1f) == 0x2e66);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65519.0f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);
    CHECK(f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(f32_to_f16(0x1p-25f) == 0x0000);  // a tie rounds to even (zero)
    CHECK(f32_to_f16(0x1.8p-24f) == 0x0002);
    CHECK(f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);  // tie between 1 and 1+2^-10: even
    CHECK(f32_to_f16(1.0f + 0x1.8p-11f) == 0x3c01);
}

TEST_CASE("f32_to_f16 and f16_to_f32 round-trip every finite half") {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        CHECK(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h);
    }
}

TEST_CASE("f32_to_bf16 rounds to nearest even and keeps NaN a NaN") {
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie, even stays
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
    CHECK(f32_to_bf16(std::bit_cast<float>(0x3f808001u)) == 0x3f81);
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));  // signalling NaN
}

namespace {
std::vector<float> round_trip(TypeId type, const std::vector<float>& x, int64_t rows, const float* importance = nullptr) {
    const int64_t cols = static_cast<int64_t>(x.size()) / rows;
    std::vector<uint8_t> q(row_bytes(type, cols) * static_cast<uint64_t>(rows));
    quantize(type, x, cols, importance ? std::span<const float>(importance, static_cast<size_t>(cols)) : std::span<const float>(), q);
    std::vector<float> y(x.size());
    dequantize(type, q, y);
    return y;
}
std::vector<TypeId> quantizable() {
    std::vector<TypeId> v;
    for (const gguf::TypeInfo& t : gguf::all_types())
        if (can_quantize(t.id) && !needs_importance(t.id)) v.push_back(t.id);
    return v;
}
}  // namespace

TEST_CASE("NaN or Inf in the input is refused, naming the row and column") {
    std::vector<float> x(2 * 64, 0.5f);
    x[64 + 17] = std::numeric_limits<float>::quiet_NaN();
    std::vector<uint8_t> q(row_bytes(TypeId::Q4_0, 64) * 2);
    CHECK_THROWS_WITH_AS(quantize(TypeId::Q4_0, x, 64, {}, q), doctest::Contains("row 1, column 17: nan"), std::invalid_argument);
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, x, 64, {}, q, 100), doctest::Contains("row 101, column 17"));
    x[64 + 17] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(quantize(TypeId::Q8_0, x, 64, {}, std::span<uint8_t>(q.data(), row_bytes(TypeId::Q8_0, 64) * 2)),
                      doctest::Contains("row 1, column 17: -inf"));
}

TEST_CASE("bad importance weights, partial blocks and wrong sizes are refused") {
    std::vector<float> x(64, 1.0f), w(64, 1.0f);
    std::vector<uint8_t> q(row_bytes(TypeId::Q4_0, 64));
    w[5] = -1.0f;
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, x, 64, w, q), doctest::Contains("importance weight of column 5 is -1"));
    w[5] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, x, 64, w, q), doctest::Contains("column 5"));
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, x, 32, {}, std::span<uint8_t>(q.data(), 18)), doctest::Contains("take 36 bytes, 18 given"));
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, std::span<const float>(x.data(), 48), 48, {}, q), doctest::Contains("not a whole number of q4_0 blocks"));
    CHECK_THROWS_AS(quantize(TypeId::Q4_2, std::span<const float>(x.data(), 32), 32, {}, q), std::invalid_argument);
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, std::span<const float>(x.data(), 40), 32, {}, q), doctest::Contains("40 values are not whole rows of 32"));
    CHECK_THROWS_WITH(quantize(TypeId::Q4_0, x, 64, std::span<const float>(w.data(), 32), q), doctest::Contains("32 importance weights for rows of 64"));
}

TEST_CASE("edge rows quantize to finite values with bounded error, for every quantizable type") {
    const int64_t n = 256;
    for (TypeId type : quantizable()) {
        CAPTURE(gguf::type_info(type).name);
        std::vector<float> zero(n, 0.0f);
        for (float v : round_trip(type, zero, 1)) CHECK(v == 0.0f);

        std::vector<float> constant(n, 0.37f);
        for (float v : round_trip(type, constant, 1)) CHECK(std::fabs(v - 0.37f) <= 0.37f * 0.02f);

        std::vector<float> spike(n, 0.001f);
        spike[77] = 1000.0f;
        std::vector<float> y = round_trip(type, spike, 1);
        for (float v : y) CHECK(std::isfinite(v));
        const gguf::TypeInfo& info = gguf::type_info(type);
        if (8.0 * info.type_size / info.block_size >= 1.5)  // one shared magnitude (Q1_0) cannot keep an outlier
            CHECK(std::fabs(y[77] - 1000.0f) <= 1000.0f * 0.15f);  // the one large value survives

        std::vector<float> tiny(n);
        for (int64_t i = 0; i < n; ++i) tiny[i] = (i % 2 ? 1 : -1) * 1e-41f * static_cast<float>(i % 7);  // subnormal floats
        for (float v : round_trip(type, tiny, 1)) CHECK(std::fabs(v) <= 1e-40f);

        std::vector<float> huge(n);
        for (int64_t i = 0; i < n; ++i) huge[i] = 3e38f * std::sin(static_cast<float>(i));  // far beyond any f16 scale
        for (float v : round_trip(type, huge, 1)) CHECK(!std::isnan(v));
    }
}

TEST_CASE("quantizing gaussian rows: every type's error is within 1.2x the best any quantizer of its bits can do") {
    // Weights are bell-shaped, and the formats are designed for that. The least relative
    // squared error of any scalar quantizer of b bits on a gaussian (Lloyd-Max) is 0.363,
    // 0.1175, 0.03454, 0.009497 for b = 1..4, about 2.7 / 4^b beyond; each type must stay
    // within 1.2x of that for the bits of its codes (bits per weight less the scales'
    // overhead, taken as half a bit). Float types are exact conversions, checked elsewhere.
    std::vector<float> x(4 * 512);
    uint64_t s = 12345;
    for (float& v : x) {
        double u = 0;
        for (int k = 0; k < 12; ++k) u += static_cast<double>((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) * 0x1p-53;
        v = static_cast<float>((u - 6.0) * 0.02);  // sum of 12 uniforms: close to N(0, 0.02^2)
    }
    for (TypeId type : quantizable()) {
        const gguf::TypeInfo& info = gguf::type_info(type);
        if (!info.quantized) continue;
        CAPTURE(info.name);
        std::vector<float> y = round_trip(type, x, 4);
        double se = 0, ss = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            se += (x[i] - y[i]) * (x[i] - y[i]);
            ss += x[i] * x[i];
        }
        const int bits = std::max(1, static_cast<int>(8.0 * info.type_size / info.block_size - 0.5));
        const double lloyd_max[] = {1.0, 0.363, 0.1175, 0.03454, 0.009497};
        const double bound = 1.2 * (bits <= 4 ? lloyd_max[bits] : 2.7 / std::pow(4.0, bits));
        CHECK(se / ss < bound);
    }
}

TEST_CASE("for_each_row_range covers every row once, on several threads, and passes exceptions on") {
    for (int threads : {1, 2, 3, 8}) {
        for (int64_t rows : {0, 1, 5, 100}) {
            std::vector<int> seen(static_cast<size_t>(rows), 0);
            for_each_row_range(rows, threads, [&](int64_t b, int64_t e) {
                for (int64_t r = b; r < e; ++r) ++seen[static_cast<size_t>(r)];
            });
            for (int c : seen) CHECK(c == 1);
        }
    }
    CHECK_THROWS_WITH(for_each_row_range(10, 4, [](int64_t b, int64_t) {
                          if (b > 0) throw std::runtime_error("range failed");
                      }),
                      "range failed");
}

TEST_CASE("every quantized type tells the data check where its blocks keep their scales") {
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        if (t.retired || !t.quantized) continue;
        CAPTURE(t.name);
        const quant::ScaleField& first = traits(t.id)->scales[0];
        CHECK(first.kind != quant::ScaleKind::None);
        CHECK(first.offset < t.type_size);
    }
}

namespace {
template <class... Blocks> std::set<TypeId> types_of(quant::BlockList<Blocks...>) { return {Blocks::kType...}; }
}  // namespace

TEST_CASE("AllBlocks names exactly the quantized types quant/ dequantizes, each once") {
    const std::set<TypeId> listed = types_of(quant::AllBlocks{});
    std::set<TypeId> dequantizable;
    for (const gguf::TypeInfo& t : gguf::all_types())
        if (t.quantized && can_dequantize(t.id)) dequantizable.insert(t.id);
    CHECK(listed == dequantizable);
    CHECK(listed.size() == 27);  // every live quantized type, the activation formats Q8_1 and Q8_K included
}

TEST_CASE("swap_byte_order swaps each block's multi-byte fields and nothing else; twice is the identity") {
    std::mt19937 rng(5);
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        if (t.retired) continue;
        CAPTURE(t.name);
        std::vector<uint8_t> data(t.type_size * 3);
        for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
        if (!quant::can_swap_byte_order(t.id)) {
            CHECK_THROWS_AS(quant::swap_byte_order(t.id, data), std::invalid_argument);
            continue;
        }
        std::vector<uint8_t> once = data;
        quant::swap_byte_order(t.id, once);
        std::vector<uint8_t> twice = once;
        quant::swap_byte_order(t.id, twice);
        CHECK(twice == data);
        // Types of single bytes only (byte codes, one-byte scales) stay as they are; the rest
        // move some field (random bytes: equal halves are unlikely).
        const bool bytes_only = t.id == gguf::TypeId::I8 || t.id == gguf::TypeId::MXFP4 || t.id == gguf::TypeId::NVFP4;
        CHECK((once == data) == bytes_only);
        if (t.type_size > 1)
            CHECK_THROWS_AS(quant::swap_byte_order(t.id, std::span<uint8_t>(data.data(), data.size() - 1)), std::invalid_argument);
    }
    // Q4_K: d and dmin swapped, the 140 bytes of scales and codes untouched.
    std::vector<uint8_t> b(144);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
    quant::swap_byte_order(gguf::TypeId::Q4_K, b);
    CHECK((b[0] == 1 && b[1] == 0 && b[2] == 3 && b[3] == 2));
    for (size_t i = 4; i < b.size(); ++i) CHECK(b[i] == i);
    // Which types: the plain numbers, legacy and K-quants, ternary, microscaling; no i-quant.
    CHECK(quant::can_swap_byte_order(gguf::TypeId::Q5_1));
    CHECK(quant::can_swap_byte_order(gguf::TypeId::I64));
    CHECK_FALSE(quant::can_swap_byte_order(gguf::TypeId::IQ2_XXS));
    CHECK_FALSE(quant::can_swap_byte_order(gguf::TypeId::IQ4_XS));
}

namespace {

// ggml's reference rounding of one legacy block (the published formulas): the error it
// leaves. Symmetric (Q4_0 / Q5_0, `half` 8 or 16): d = the signed largest-magnitude value /
// -half, codes (x / d + half + 0.5) truncated, at most 2 half - 1. Affine (Q4_1 / Q5_1, `top`
// 15 or 31): d = (max - min) / top, codes ((x - min) / d + 0.5) truncated, at most top; d and
// the minimum stored as f16.
double reference_block_error(const float* x, bool affine, int range) {
    double err = 0;
    if (!affine) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j)
            if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
        const float d = max / static_cast<float>(-range), id = d != 0 ? 1.0f / d : 0.0f;
        const float stored = quant::f16_to_f32(quant::f32_to_f16(d));
        for (int j = 0; j < 32; ++j) {
            const int q = std::min(2 * range - 1, static_cast<int>(static_cast<int8_t>(x[j] * id + static_cast<float>(range) + 0.5f)));
            const double e = static_cast<double>(x[j]) - static_cast<double>(stored) * (q - range);
            err += e * e;
        }
        return err;
    }
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; ++j) min = std::min(min, x[j]), max = std::max(max, x[j]);
    const float d = (max - min) / static_cast<float>(range), id = d != 0 ? 1.0f / d : 0.0f;
    const float sd = quant::f16_to_f32(quant::f32_to_f16(d)), sm = quant::f16_to_f32(quant::f32_to_f16(min));
    for (int j = 0; j < 32; ++j) {
        const int q = std::min(range, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
        const double e = static_cast<double>(x[j]) - (static_cast<double>(sd) * q + sm);
        err += e * e;
    }
    return err;
}

}  // namespace

TEST_CASE("a block's scale starts from its first value of largest magnitude, and an affine block's minimum is its first least value") {
    // Q4_0, fast: the scales tried send the first value of largest magnitude to code -8 or 7.
    // With -2 first and +2 later, d = -2 / 7 < 0 fits both exactly (d = 0.25 clips +2); with
    // +2 first, d = 2 / 7 > 0 does. A search that took the other one picks the other sign.
    const auto q4_0_scale = [](float first, float later) {
        std::vector<float> x(32, 0.0f);
        x[3] = first;
        x[10] = later;
        std::vector<uint8_t> b(quant::row_bytes(quant::TypeId::Q4_0, 32));
        quant::quantize(quant::TypeId::Q4_0, x, 32, {}, b, 0, quant::Effort::Fast);
        return quant::f16_to_f32(static_cast<uint16_t>(b[0] | b[1] << 8));
    };
    CHECK(q4_0_scale(-2.0f, 2.0f) < 0);
    CHECK(q4_0_scale(2.0f, -2.0f) > 0);
    // Q4_1, fast: the minimum is stored as found. Among equal zeros the first one's sign stays
    // (std::min keeps its first argument on a tie), so the f16 field says which came first.
    const auto q4_1_min_bits = [](float a, float b) {
        std::vector<float> x(32);
        for (int i = 0; i < 32; ++i) x[i] = 0.25f * static_cast<float>(i + 1);  // no zeros but the two below
        x[5] = a;
        x[20] = b;
        std::vector<uint8_t> out(quant::row_bytes(quant::TypeId::Q4_1, 32));
        quant::quantize(quant::TypeId::Q4_1, x, 32, {}, out, 0, quant::Effort::Fast);
        return static_cast<uint16_t>(out[2] | out[3] << 8);
    };
    CHECK(q4_1_min_bits(-0.0f, 0.0f) == 0x8000);
    CHECK(q4_1_min_bits(0.0f, -0.0f) == 0x0000);
}

TEST_CASE("--effort fast on the legacy types: no block has more error than ggml's reference rounding; default and best differ from it") {
    constexpr int64_t kRows = 64, kCols = 512;
    std::mt19937 rng(21);
    std::normal_distribution<float> normal(0, 1);
    std::vector<float> x(kRows * kCols);
    for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % 97 == 0 ? 8.0f : 0.02f);  // with outliers
    struct Type {
        quant::TypeId id;
        bool affine;
        int range;
    };
    for (const Type t : {Type{quant::TypeId::Q4_0, false, 8}, Type{quant::TypeId::Q5_0, false, 16}, Type{quant::TypeId::Q4_1, true, 15},
                         Type{quant::TypeId::Q5_1, true, 31}}) {
        CAPTURE(gguf::type_info(t.id).name);
        REQUIRE(static_cast<bool>(quant::traits(t.id)->fast));
        REQUIRE(static_cast<bool>(quant::traits(t.id)->best));
        std::vector<uint8_t> fast(quant::row_bytes(t.id, kCols) * kRows), other(fast.size());
        quant::quantize(t.id, x, kCols, {}, fast, 0, quant::Effort::Fast);
        std::vector<float> y(x.size());
        quant::dequantize(t.id, fast, y);
        size_t worse = 0;
        for (size_t b = 0; b < x.size(); b += 32) {
            double ours = 0;
            for (size_t j = b; j < b + 32; ++j) ours += (static_cast<double>(x[j]) - y[j]) * (static_cast<double>(x[j]) - y[j]);
            // The nearest code for the stored scale, decided by x / d in floats: within rounding of the reference's.
            if (ours > reference_block_error(x.data() + b, t.affine, t.range) * (1 + 1e-6) + 1e-18) ++worse;
        }
        CHECK(worse == 0);
        quant::quantize(t.id, x, kCols, {}, other, 0, quant::Effort::Default);
        CHECK(other != fast);
        std::vector<uint8_t> best(fast.size());
        quant::quantize(t.id, x, kCols, {}, best, 0, quant::Effort::Best);
        CHECK(best != fast);
        // Types without a choice quantize alike at every effort.
        std::vector<uint8_t> a(quant::row_bytes(quant::TypeId::Q6_K, kCols) * kRows), c(a.size());
        quant::quantize(quant::TypeId::Q6_K, x, kCols, {}, a, 0, quant::Effort::Fast);
        quant::quantize(quant::TypeId::Q6_K, x, kCols, {}, c, 0, quant::Effort::Default);
        CHECK(a == c);
    }
    CHECK(quant::effort_from_name("fast") == quant::Effort::Fast);
    CHECK(!quant::effort_from_name("quick"));
}

// Q8_0 without importance weights: fast writes llama.cpp's rounding (its largest magnitude to
// 127, codes rounded with the unrounded scale); the default searches scales around that one in
// the fits' weights without importance, sqrt(sigma^2 + x^2) with sigma^2 the row's mean square,
// and its starts include the rounding's stored scale with the nearest codes for it, so no block
// may come out with more error in those weights than the rounding's (up to float sums), and best
// no more than the default in total.
TEST_CASE("Q8_0 without importance: fast is llama.cpp's rounding; the default and best search, no block worse than the rounding in the fits' weights") {
    constexpr int64_t kRows = 48, kCols = 1024;
    std::mt19937 rng(8);
    std::student_t_distribution<float> heavy(4);
    std::vector<float> x(kRows * kCols);
    for (size_t i = 0; i < x.size(); ++i) x[i] = heavy(rng) * 0.02f * (1.0f + static_cast<float>(i / kCols % 5));
    const size_t bytes = quant::row_bytes(quant::TypeId::Q8_0, kCols) * kRows;
    std::vector<uint8_t> fast(bytes), def(bytes), best(bytes);
    quant::quantize(quant::TypeId::Q8_0, x, kCols, {}, fast, 0, quant::Effort::Fast);
    quant::quantize(quant::TypeId::Q8_0, x, kCols, {}, def, 0, quant::Effort::Default);
    quant::quantize(quant::TypeId::Q8_0, x, kCols, {}, best, 0, quant::Effort::Best);
    // The rounding, block by block, as llama.cpp writes it.
    for (size_t b = 0; b < x.size() / 32; ++b) {
        const float* v = x.data() + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        const auto& blk = reinterpret_cast<const quant::BlockQ8_0*>(fast.data())[b];
        CHECK(static_cast<uint16_t>(blk.d[0] | blk.d[1] << 8) == quant::f32_to_f16(d));
        for (int j = 0; j < 32; ++j) CHECK(blk.qs[j] == static_cast<int8_t>(std::round(v[j] * id)));
    }
    std::vector<float> yf(x.size()), yd(x.size()), yb(x.size());
    quant::dequantize(quant::TypeId::Q8_0, fast, yf);
    quant::dequantize(quant::TypeId::Q8_0, def, yd);
    quant::dequantize(quant::TypeId::Q8_0, best, yb);
    size_t worse = 0, lower = 0;
    double total_fast = 0, total_default = 0, total_best = 0, plain_fast = 0, plain_default = 0;
    for (int64_t r = 0; r < kRows; ++r) {
        const float* row = x.data() + r * kCols;
        double sigma2 = 0;
        for (int64_t j = 0; j < kCols; ++j) sigma2 += static_cast<double>(row[j]) * row[j];
        sigma2 /= kCols;
        for (int64_t b = 0; b < kCols; b += 32) {
            double ef = 0, ed = 0, eb = 0;
            for (int64_t j = b; j < b + 32; ++j) {
                const size_t i = static_cast<size_t>(r * kCols + j);
                const double w = std::sqrt(sigma2 + static_cast<double>(x[i]) * x[i]);
                const double df = x[i] - static_cast<double>(yf[i]), dd = x[i] - static_cast<double>(yd[i]), db = x[i] - static_cast<double>(yb[i]);
                ef += w * df * df;
                ed += w * dd * dd;
                eb += w * db * db;
                plain_fast += df * df;
                plain_default += dd * dd;
            }
            if (ed > ef * (1 + 1e-5)) ++worse;
            if (ed < ef * (1 - 1e-3)) ++lower;
            total_fast += ef;
            total_default += ed;
            total_best += eb;
        }
    }
    MESSAGE("Q8_0 without importance, weighted error / the rounding's: default " << total_default / total_fast << ", best " << total_best / total_fast
            << "; plain: default " << plain_default / plain_fast << "; blocks lower by 0.1%: " << lower << " of " << x.size() / 32);
    CHECK(worse == 0);
    CHECK(lower > x.size() / 32 / 2);
    CHECK(total_best <= total_default);
    CHECK(plain_default < plain_fast);
}

// The grid i-quants' searches run many entries side by side (grid_fit.cpp); they must pick
// what a plain scan over the entries picks, ties going to the first. These hashes are the
// bytes the scalar search wrote (b64b63d) for rows made from integers alone (exact floats on
// any compiler), so a change in the search's choices, or in its tie-breaking, shows here.
namespace {

// Rows built from integers only (the same floats on every compiler and machine): a sum of
// three uniform integers (bell-shaped), one value in 97 four times wider. The last row takes
// five levels only, with weights equal over each 8 columns, so that grid entries that are
// permutations of each other tie exactly there. With `signed_zeros`, a fifth of the third
// row's values are zeros of either sign. And weights from 1/8 to 8, equal over each 8. Rows
// `cols` wide, every value times `scale` (a power of 2 keeps the floats exact).
struct IntegerRows {
    static constexpr int kRows = 4;
    int width;
    std::vector<float> x, w;
    explicit IntegerRows(bool signed_zeros, int cols = 2816, float scale = 1)
        : width(cols), x(static_cast<size_t>(kRows) * static_cast<size_t>(cols)), w(static_cast<size_t>(cols)) {
        auto mix = [](uint64_t z) {  // splitmix64
            z += 0x9E3779B97F4A7C15ull;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            return z ^ (z >> 31);
        };
        for (size_t i = 0; i < x.size(); ++i) {
            const uint64_t r = mix(i);
            const int v = static_cast<int>(r % 2001) + static_cast<int>((r >> 16) % 2001) + static_cast<int>((r >> 32) % 2001) - 3000;
            x[i] = static_cast<float>(v) * ((r >> 48) % 97 == 0 ? 4e-5f : 1e-5f);
            if (i >= 3u * width) x[i] = static_cast<float>(static_cast<int>(r % 5) - 2) * 1e-3f;
            if (signed_zeros && i >= 2u * width && i < 3u * width && (r >> 40) % 5 == 0) x[i] = (r >> 20) & 1 ? -0.0f : 0.0f;
            x[i] *= scale;
        }
        for (int i = 0; i < width; ++i) w[static_cast<size_t>(i)] = static_cast<float>(1 + mix(1000000 + static_cast<uint64_t>(i / 8)) % 64) / 8.0f;
    }
    // FNV-1a of the rows quantized to `type`: the fits' bytes, with least-squares scales
    // (ScaleFit::Default's scales on the 1- and 2-bit grid i-quants: the unbiased-scales test).
    uint64_t hash(gguf::TypeId type, bool weighted, quant::Effort effort = quant::Effort::Default) const {
        std::vector<uint8_t> q(row_bytes(type, width) * kRows);
        quantize(type, x, width, weighted ? std::span<const float>(w) : std::span<const float>(), q, 0, effort, quant::ScaleFit::LeastSquares);
        uint64_t h = 1469598103934665603ull;
        for (uint8_t b : q) {
            h ^= b;
            h *= 1099511628211ull;
        }
        return h;
    }
};

// Forces one grid search (quant::testing::force_grid_search) while it lives.
struct ForcedGridSearch {
    explicit ForcedGridSearch(quant::testing::GridSearchWay way) { quant::testing::force_grid_search(way); }
    ~ForcedGridSearch() { quant::testing::force_grid_search(quant::testing::GridSearchWay::AsEffortSays); }
    ForcedGridSearch(const ForcedGridSearch&) = delete;
    ForcedGridSearch& operator=(const ForcedGridSearch&) = delete;
};

// The wide search's bytes (b64b63d's), the narrow one's (pinned when it came, 2026-12-04) and
// each type's default's: the narrow search's on the IQ2 and IQ3 types, the ternary one's on
// IQ1_S and IQ1_M (2026-12-05; before, their default was the wide search). These pins, and the
// legacy, k-quant and eight-lane ones below, were taken with importance x sqrt(sigma^2 + x^2)
// on every type, which quant::testing::ImportanceSquareRoot brings back: they still show that
// the searches choose what they chose.
struct GridPins {
    const char* name;
    uint64_t wide, narrow, by_default;
};
constexpr GridPins kGridPins[] = {
    {"iq2_xxs", 0x930191181be9f8f5ull, 0xfaae175c5a34ecd2ull, 0xfaae175c5a34ecd2ull},
    {"iq2_xs", 0x40126c21fab09f7dull, 0x3f12e686df967240ull, 0x3f12e686df967240ull},
    {"iq2_s", 0x12ff6d82ed559d8eull, 0x1894e0f67063a51full, 0x1894e0f67063a51full},
    {"iq3_xxs", 0x669e15fb10bcbc1full, 0xb9600b6a7db396d1ull, 0xb9600b6a7db396d1ull},
    {"iq3_s", 0xbffdf1379add71b5ull, 0x77598e4058bfa465ull, 0x77598e4058bfa465ull},
    {"iq1_s", 0x8357faaa124d7b7bull, 0x3ed10ece79072740ull, 0x66ec3d7320d92146ull},
    {"iq1_m", 0xd36b429435c94816ull, 0x1389be0d84e3a0b1ull, 0x61a9690d10531917ull},
};

}  // namespace

TEST_CASE("the grid i-quants write the bytes of the plain one-entry-at-a-time search") {
    const IntegerRows rows(false);
    // The wide search, which those bytes were written with.
    const ForcedGridSearch wide(quant::testing::GridSearchWay::Wide);
    const quant::testing::ImportanceSquareRoot square_root;
    for (const GridPins& p : kGridPins) {
        const std::string name = p.name;
        CAPTURE(name);
        CHECK(rows.hash(*gguf::type_from_name(name), true) == p.wide);
    }
}

// A change in the narrow search's choices, or in the default's, shows here; the default of the
// IQ2 and IQ3 types is the narrow search, of IQ1_S and IQ1_M the ternary one.
TEST_CASE("the grid i-quants' narrow search writes the bytes it was pinned with, and each type's default is its search") {
    const IntegerRows rows(false);
    const quant::testing::ImportanceSquareRoot square_root;
    for (const GridPins& p : kGridPins) {
        const std::string name = p.name;
        CAPTURE(name);
        const gguf::TypeId type = *gguf::type_from_name(name);
        CHECK(rows.hash(type, true) == p.by_default);
        const ForcedGridSearch narrow(quant::testing::GridSearchWay::Narrow);
        CHECK(rows.hash(type, true) == p.narrow);
    }
}

// gguf requant warns that --effort changes nothing where no tensor's type has that choice
// (requant/src/run.cpp reads Traits::fast_changes and best_changes); the flags must say what
// the quantizers do: Q4_K's and Q5_K's best is their default with importance weights (since
// 2026-12-05), the legacy types' fast only without them.
TEST_CASE("Traits::fast_changes and best_changes say whether each effort writes other bytes than the default, without and with importance") {
    const IntegerRows rows(true);
    int compared = 0, differing = 0;
    for (const gguf::TypeInfo& info : gguf::all_types()) {
        if (info.retired || !quant::can_quantize(info.id)) continue;
        const quant::Traits* t = quant::traits(info.id);
        if (!t->fast && !t->best) continue;
        const std::string name(info.name);
        CAPTURE(name);
        for (const bool weighted : {false, true}) {
            if (!weighted && quant::needs_importance(info.id)) continue;
            CAPTURE(weighted);
            const uint64_t plain = rows.hash(info.id, weighted);
            for (const quant::Effort e : {quant::Effort::Fast, quant::Effort::Best}) {
                if (!(e == quant::Effort::Fast ? t->fast : t->best)) continue;
                const bool flag = (e == quant::Effort::Fast ? t->fast_changes : t->best_changes)[weighted ? 1 : 0];
                const bool differs = rows.hash(info.id, weighted, e) != plain;
                CAPTURE(static_cast<int>(e));
                CHECK(differs == flag);
                ++compared;
                differing += differs;
            }
        }
    }
    // 4 legacy types and Q8_0 x 2 efforts x 2, Q2_K, Q4_K and Q5_K's best x 2, the grid
    // i-quants' best with importance (and without on IQ2_S, IQ3_XXS, IQ3_S, IQ1_M's); 6 of them
    // write the default's bytes: fast with importance on the 4 legacy types, Q4_K's and Q5_K's
    // best with importance.
    CHECK(compared == 37);
    CHECK(differing == 31);
    MESSAGE("efforts compared with the default: " << compared << ", writing other bytes: " << differing);
}

// --effort best runs the type's default search (the narrow one, IQ1's ternary one) and the wide
// one and keeps, per super-block, the fit of less error in the fits' own weights (importance x
// (sigma^2 + x^2)^(1/4), sigma^2 the row's mean square). Rows of gaussian values, some with
// heavy tails, and log-normal importance: no super-block of best has more of that error than
// the default or the wide search's (within float rounding of the weights, which this test
// computes in double), and each search wins somewhere.
TEST_CASE("the grid i-quants' --effort best keeps the better of the default and the wide search in every super-block") {
    constexpr int kCols = 2816, kRows = 4;
    std::mt19937 rng(23);
    std::normal_distribution<float> normal(0, 1);
    std::vector<float> x(static_cast<size_t>(kCols) * kRows), imp(kCols);
    for (size_t i = 0; i < x.size(); ++i) {
        const float z = normal(rng);
        x[i] = i / kCols < 2 ? 0.02f * z : 0.02f * z / std::max(0.2f, std::fabs(normal(rng)));  // rows 2, 3: heavy tails
    }
    for (float& v : imp) v = std::exp(normal(rng));
    std::vector<double> w(x.size());
    for (int r = 0; r < kRows; ++r) {
        double sigma2 = 0;
        for (int c = 0; c < kCols; ++c) sigma2 += static_cast<double>(x[r * kCols + c]) * x[r * kCols + c];
        sigma2 /= kCols;
        for (int c = 0; c < kCols; ++c) w[r * kCols + c] = imp[c] * std::sqrt(std::sqrt(sigma2 + static_cast<double>(x[r * kCols + c]) * x[r * kCols + c]));
    }
    for (const GridPins& p : kGridPins) {
        const std::string name = p.name;
        CAPTURE(name);
        const gguf::TypeId type = *gguf::type_from_name(name);
        REQUIRE(static_cast<bool>(quant::traits(type)->best));
        std::vector<uint8_t> by_default(row_bytes(type, kCols) * kRows), wide(by_default.size()), best(by_default.size());
        // The fits as they choose (least-squares scales: the default's moved scales of the 1-
        // and 2-bit grid i-quants come after the choice).
        quantize(type, x, kCols, imp, best, 0, quant::Effort::Best, quant::ScaleFit::LeastSquares);
        quantize(type, x, kCols, imp, by_default, 0, quant::Effort::Default, quant::ScaleFit::LeastSquares);
        {
            const ForcedGridSearch forced(quant::testing::GridSearchWay::Wide);
            quantize(type, x, kCols, imp, wide, 0, quant::Effort::Default, quant::ScaleFit::LeastSquares);
        }
        std::vector<float> yn(x.size()), yw(x.size()), yb(x.size());
        quant::dequantize(type, by_default, yn);
        quant::dequantize(type, wide, yw);
        quant::dequantize(type, best, yb);
        const size_t block = gguf::type_info(type).type_size;
        int worse = 0, from_default = 0, from_wide = 0, neither = 0;
        for (size_t b = 0; b < x.size() / 256; ++b) {
            double en = 0, ew = 0, eb = 0;
            for (size_t i = 256 * b; i < 256 * (b + 1); ++i) {
                en += w[i] * (x[i] - static_cast<double>(yn[i])) * (x[i] - static_cast<double>(yn[i]));
                ew += w[i] * (x[i] - static_cast<double>(yw[i])) * (x[i] - static_cast<double>(yw[i]));
                eb += w[i] * (x[i] - static_cast<double>(yb[i])) * (x[i] - static_cast<double>(yb[i]));
            }
            if (eb > std::min(en, ew) * (1 + 1e-5)) ++worse;
            const auto bytes = [&](const std::vector<uint8_t>& q) { return std::vector<uint8_t>(q.begin() + b * block, q.begin() + (b + 1) * block); };
            const bool differ = bytes(by_default) != bytes(wide);
            if (differ && bytes(best) == bytes(by_default)) ++from_default;
            if (differ && bytes(best) == bytes(wide)) ++from_wide;
            if (bytes(best) != bytes(by_default) && bytes(best) != bytes(wide)) ++neither;
        }
        CHECK(worse == 0);
        CHECK(neither == 0);
        CHECK(from_default > 0);
        CHECK(from_wide > 0);
    }
}

// The grid searches take an entry from the lattice of grid points only where a bound on the
// scan's float error proves it the scan's choice (grid_fit.cpp). Rows that make that proof
// hard: values exactly on the midpoints between grid values at the scales tried, few
// distinct values (exact ties), zero weights, values whose errors fall below float's normal
// range, and values whose errors overflow it. The lattice must change no byte.
TEST_CASE("the grid i-quants write the same bytes with the lattice as with a scan of every entry") {
    constexpr int kWidth = 1024, kRows = 7;
    std::vector<float> x(static_cast<size_t>(kWidth) * kRows), w(kWidth);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0, 1);
    for (int r = 0; r < kRows; ++r)
        for (int i = 0; i < kWidth; ++i) {
            float& v = x[static_cast<size_t>(r * kWidth + i)];
            const float sign = rng() % 2 ? -1.0f : 1.0f;
            switch (r) {
            case 0:  // grid values and their midpoints (IQ3: 4 + 8k, IQ2: 8, 25, 43, IQ1: +-1 +-1/8), on a scale
                v = sign * static_cast<float>(1 + rng() % 64) * 0.5f * 1e-3f;
                break;
            case 1:
                v = sign * static_cast<float>(std::array{8.0f, 16.5f, 25.0f, 34.0f, 43.0f}[rng() % 5]) * 1e-3f;
                break;
            case 2:  // few values: ties
                v = static_cast<float>(static_cast<int>(rng() % 7) - 3) * 1e-2f;
                break;
            case 3:  // errors below float's normal range
                v = normal(rng) * 1e-30f;
                break;
            case 4:  // errors near the top of float's range
                v = normal(rng) * 3e17f;
                break;
            case 5:  // and past it
                v = normal(rng) * 1.5e18f;
                break;
            default:
                v = normal(rng) * (i % 61 == 0 ? 0.2f : 0.02f);
            }
        }
    for (int i = 0; i < kWidth; ++i) w[static_cast<size_t>(i)] = i % 5 == 0 ? 0.0f : static_cast<float>(1 + rng() % 16) / 4;
    for (const char* name : {"iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"}) {
        CAPTURE(name);
        const gguf::TypeId type = *gguf::type_from_name(name);
        for (int r = 0; r < kRows; ++r) {
            CAPTURE(r);
            const std::span<const float> row(x.data() + static_cast<size_t>(r) * kWidth, kWidth);
            std::vector<uint8_t> with(row_bytes(type, kWidth)), without(with.size());
            quantize(type, row, kWidth, w, with);
            quant::testing::use_grid_lattice(false);
            quantize(type, row, kWidth, w, without);
            quant::testing::use_grid_lattice(true);
            CHECK(with == without);
        }
    }
}

// The lattice's proof, one group at a time: targets near a random grid entry (each value
// times up to 2.5% either way), and in every other group one of them a few float steps from
// the midpoint between its grid value and the next, where the exact errors of two points
// differ by less than the scan's float rounding, so that only the bounds keep the lattice on
// the scan's side of the tie. Wherever the fast pass or the search answers, it answers as
// the scan: the same entry and the same error bits.
TEST_CASE("the grid lattice answers as the scan of every entry, at ties within float rounding") {
    using quant::testing::GridWay;
    const quant::IqGrids& g = quant::host_grids();
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> unit(0, 1);
    struct Case {
        gguf::TypeId type;
        int part, k, entries;
        std::vector<float> values;  // ascending
    };
    const Case cases[] = {
        {gguf::TypeId::IQ2_XXS, 0, 8, quant::kIQ2XXSGridSize, {8, 25, 43}},
        {gguf::TypeId::IQ2_XS, 0, 8, quant::kIQ2XSGridSize, {8, 25, 43}},
        {gguf::TypeId::IQ2_S, 0, 8, quant::kIQ2SGridSize, {8, 25, 43}},
        {gguf::TypeId::IQ3_XXS, 0, 4, quant::kIQ3XXSGridSize, {4, 12, 20, 28, 36, 44, 52, 62}},
        {gguf::TypeId::IQ3_S, 0, 4, quant::kIQ3SGridSize, {1, 3, 5, 7, 9, 11, 13, 15}},
        {gguf::TypeId::IQ1_S, 0, 8, quant::kIQ1SGridSize, {-0.875f, 0.125f, 1.125f}},
        {gguf::TypeId::IQ1_S, 1, 8, quant::kIQ1SGridSize, {-1.125f, -0.125f, 0.875f}},
    };
    for (const Case& c : cases) {
        const std::string name(gguf::type_info(c.type).name);
        CAPTURE(name);
        CAPTURE(c.part);
        auto value = [&](int e, int j) {  // coordinate j of grid entry e, as the search sees it
            switch (c.type) {
            case gguf::TypeId::IQ2_XXS: return static_cast<float>((g.iq2xxs[e] >> (8 * j)) & 0xff);
            case gguf::TypeId::IQ2_XS: return static_cast<float>((g.iq2xs[e] >> (8 * j)) & 0xff);
            case gguf::TypeId::IQ2_S: return static_cast<float>((g.iq2s[e] >> (8 * j)) & 0xff);
            case gguf::TypeId::IQ3_XXS: return static_cast<float>((g.iq3xxs[e] >> (8 * j)) & 0xff);
            case gguf::TypeId::IQ3_S: return static_cast<float>((g.iq3s[e] >> (8 * j)) & 0xff);
            default: return static_cast<float>(static_cast<int8_t>(g.iq1s[e] >> (8 * j))) + (c.part ? -0.125f : 0.125f);
            }
        };
        int settled = 0, searched = 0, at_ties = 0, one_away = 0, near = 0;
        constexpr int kTries = 4000;
        for (int t = 0; t < kTries; ++t) {
            const float dl = std::ldexp(0.5f + unit(rng), -10);
            const int e = static_cast<int>(rng() % static_cast<unsigned>(c.entries));
            std::vector<float> a(static_cast<size_t>(c.k)), w(a.size());
            for (int j = 0; j < c.k; ++j) {
                a[static_cast<size_t>(j)] = dl * value(e, j) * (1 + 0.05f * (unit(rng) - 0.5f));
                w[static_cast<size_t>(j)] = rng() % 9 == 0 ? 0.0f : 0.25f + unit(rng);
            }
            const bool tie = t % 3 != 0;
            if (t % 3 == 2) {
                // A tie between two points one change from a nearest point that is no entry:
                // coordinates j1 and j2 each 30% of the way to another value, weighted so that
                // both changes cost the same, then j2 moved a few float steps.
                const int j1 = static_cast<int>(rng() % static_cast<unsigned>(c.k)), j2 = (j1 + 1 + static_cast<int>(rng() % static_cast<unsigned>(c.k - 1))) % c.k;
                std::vector<float> p(static_cast<size_t>(c.k));
                for (int j = 0; j < c.k; ++j) p[static_cast<size_t>(j)] = value(e, j);
                auto other = [&](float x) {  // a neighbouring grid value
                    const size_t i = static_cast<size_t>(std::find(c.values.begin(), c.values.end(), x) - c.values.begin());
                    return c.values[i + 1 < c.values.size() && (i == 0 || rng() % 2) ? i + 1 : i - 1];
                };
                const float q1 = p[static_cast<size_t>(j1)];
                p[static_cast<size_t>(j1)] = other(q1);  // the nearest point: e with j1 changed
                const float q2 = other(p[static_cast<size_t>(j2)]);
                std::vector<float> second = p;
                second[static_cast<size_t>(j2)] = q2;
                auto is_entry = [&](const std::vector<float>& point) {
                    for (int f = 0; f < c.entries; ++f) {
                        int j = 0;
                        while (j < c.k && value(f, j) == point[static_cast<size_t>(j)]) ++j;
                        if (j == c.k) return true;
                    }
                    return false;
                };
                if (!is_entry(p) && is_entry(second)) {
                    for (int j = 0; j < c.k; ++j) a[static_cast<size_t>(j)] = dl * p[static_cast<size_t>(j)];
                    const float d1 = q1 - p[static_cast<size_t>(j1)], d2 = q2 - p[static_cast<size_t>(j2)];
                    a[static_cast<size_t>(j1)] = dl * (p[static_cast<size_t>(j1)] + 0.3f * d1);
                    a[static_cast<size_t>(j2)] = dl * (p[static_cast<size_t>(j2)] + 0.3f * d2);
                    w[static_cast<size_t>(j1)] = 0.5f + unit(rng);
                    w[static_cast<size_t>(j2)] = w[static_cast<size_t>(j1)] * (d1 * d1) / (d2 * d2);
                    for (int step = static_cast<int>(rng() % 9) - 4; step != 0; step += step > 0 ? -1 : 1)
                        a[static_cast<size_t>(j2)] = std::nextafter(a[static_cast<size_t>(j2)], step > 0 ? 1.0f : -1.0f);
                }
            } else if (tie) {
                const int j = static_cast<int>(rng() % static_cast<unsigned>(c.k));
                const size_t i = static_cast<size_t>(std::find(c.values.begin(), c.values.end(), value(e, j)) - c.values.begin());
                REQUIRE(i < c.values.size());
                const size_t other = i + 1 < c.values.size() ? i + 1 : i - 1;
                float mid = dl * ((c.values[i] + c.values[other]) / 2);
                for (int step = static_cast<int>(rng() % 7) - 3; step != 0; step += step > 0 ? -1 : 1)
                    mid = std::nextafter(mid, step > 0 ? 1.0f : -1.0f);
                a[static_cast<size_t>(j)] = mid;
            }
            float v_scan = 0, v = 0;
            const int scan = quant::testing::grid_entry(c.type, c.part, a, w, dl, GridWay::Scan, &v_scan);
            for (GridWay way : {GridWay::Settle, GridWay::Search, GridWay::Near}) {
                const int found = quant::testing::grid_entry(c.type, c.part, a, w, dl, way, &v);
                if (found < 0) continue;
                (way == GridWay::Settle ? settled : way == GridWay::Search ? searched : near)++;
                at_ties += tie && way != GridWay::Near;
                one_away += way == GridWay::Settle && t % 3 == 2;
                if (found != scan || std::bit_cast<uint32_t>(v) != std::bit_cast<uint32_t>(v_scan)) {
                    CAPTURE(t);
                    CAPTURE(static_cast<int>(way));
                    CHECK(found == scan);
                    CHECK(v == v_scan);
                }
            }
        }
        // The lattice answers most groups, ties included, so the comparison above is not empty.
        CHECK(settled > kTries / 8);
        CHECK(searched > kTries / 2);
        CHECK(at_ties > kTries / 4);
        CHECK(one_away > kTries / 20);
        CHECK(near > kTries / 8);
        // The fast pass also settles groups whose nearest entries are one or two changes from
        // their nearest point (grid_entry's Settle allows both on every grid; the quantizers
        // on IQ1's): groups of values anywhere in the grid's range, so that the nearest point
        // is mostly no entry, against the scan; some answers two changes away, some at ties
        // (two values on midpoints).
        int settled_off_grid = 0, two_away = 0, near_off_grid = 0;
        for (int t = 0; t < kTries; ++t) {
            const float dl = std::ldexp(0.5f + unit(rng), -10);
            std::vector<float> a(static_cast<size_t>(c.k)), w(a.size());
            for (int j = 0; j < c.k; ++j) {
                a[static_cast<size_t>(j)] = dl * (c.values.front() - 0.3f + (c.values.back() - c.values.front() + 0.6f) * unit(rng));
                w[static_cast<size_t>(j)] = rng() % 30 == 0 ? 0.0f : 0.25f + unit(rng);
            }
            if (t % 4 == 3)  // two coordinates on midpoints: equal costs either way
                for (int m = 0; m < 2; ++m) {
                    const size_t j = static_cast<size_t>(rng() % static_cast<unsigned>(c.k)), i = rng() % (c.values.size() - 1);
                    a[j] = dl * ((c.values[i] + c.values[i + 1]) / 2);
                }
            float v_scan = 0, v = 0;
            const int scan = quant::testing::grid_entry(c.type, c.part, a, w, dl, GridWay::Scan, &v_scan);
            // The near entries of the nearest point (IQ3_S's and IQ2_S's grids) answer as the scan.
            if (const int at = quant::testing::grid_entry(c.type, c.part, a, w, dl, GridWay::Near, &v); at >= 0) {
                CAPTURE(t);
                CHECK(at == scan);
                CHECK(std::bit_cast<uint32_t>(v) == std::bit_cast<uint32_t>(v_scan));
                ++near_off_grid;
            }
            const int found = quant::testing::grid_entry(c.type, c.part, a, w, dl, GridWay::Settle, &v);
            if (found < 0) continue;
            CAPTURE(t);
            CHECK(found == scan);
            CHECK(std::bit_cast<uint32_t>(v) == std::bit_cast<uint32_t>(v_scan));
            ++settled_off_grid;
            int changed = 0;  // coordinates of the answer off their nearest value
            for (int j = 0; j < c.k; ++j) {
                float nearest = c.values.front();
                for (float x : c.values)
                    if (std::fabs(a[static_cast<size_t>(j)] - dl * x) < std::fabs(a[static_cast<size_t>(j)] - dl * nearest)) nearest = x;
                changed += value(found % c.entries, j) != nearest;  // (IQ1 part 1: entries 2048 on)
            }
            two_away += changed == 2;
        }
        MESSAGE(name << " part " << c.part << ": the fast pass settled " << settled_off_grid << " of " << kTries
                     << " groups anywhere in the range, " << two_away << " of them two changes from their nearest point");
        CHECK(settled_off_grid > kTries / 10);
        CHECK(two_away > kTries / 100);
        // On IQ3_S's and IQ2_S's grids the near entries settle most groups anywhere in the range
        // (the nearest point is mostly no entry there); elsewhere only those whose nearest point
        // is one.
        MESSAGE(name << " part " << c.part << ": the near entries settled " << near_off_grid << " of those groups");
        if (c.type == gguf::TypeId::IQ3_S || c.type == gguf::TypeId::IQ2_S) CHECK(near_off_grid > kTries / 2);
    }
}

// The near-entry lists, point by point: for every point of IQ3_S's and IQ2_S's lattices, groups
// of values inside its cell (each coordinate up to 45% of the way to either neighbouring
// value, and past the end values where the cell is open) with random weights, answered by the
// point's list as the scan answers them. Every such group is answered (no point lacks its
// list), so a list that lost an entry which wins anywhere in its cell fails here.
TEST_CASE("the near entries of every lattice point answer as the scan, all over the point's cell") {
    using quant::testing::GridWay;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> unit(0, 1);
    struct Case {
        gguf::TypeId type;
        int k;
        std::vector<float> values;
    };
    const Case cases[] = {
        {gguf::TypeId::IQ3_S, 4, {1, 3, 5, 7, 9, 11, 13, 15}},
        {gguf::TypeId::IQ2_S, 8, {8, 25, 43}},
    };
    for (const Case& c : cases) {
        const std::string name(gguf::type_info(c.type).name);
        CAPTURE(name);
        const int nv = static_cast<int>(c.values.size());
        int points = 1;
        for (int j = 0; j < c.k; ++j) points *= nv;
        int groups = 0, answered = 0;
        for (int pt = 0; pt < points; ++pt)
            for (int sample = 0; sample < 2; ++sample) {
                const float dl = std::ldexp(0.5f + unit(rng), -8);
                std::vector<float> a(static_cast<size_t>(c.k)), w(a.size());
                for (int j = 0, r = pt; j < c.k; ++j, r /= nv) {
                    const int i = r % nv;
                    const float below = i > 0 ? c.values[static_cast<size_t>(i - 1)] : c.values[0] - 2 * (c.values[1] - c.values[0]);
                    const float above = i + 1 < nv ? c.values[static_cast<size_t>(i + 1)] : c.values.back() + 2 * (c.values.back() - c.values[static_cast<size_t>(nv - 2)]);
                    const float u = 0.9f * unit(rng) - 0.45f;
                    const float x = c.values[static_cast<size_t>(i)] + (u < 0 ? -u * (below - c.values[static_cast<size_t>(i)]) : u * (above - c.values[static_cast<size_t>(i)]));
                    a[static_cast<size_t>(j)] = dl * x;
                    w[static_cast<size_t>(j)] = 0.25f + 2 * unit(rng);
                }
                float v_scan = 0, v = 0;
                const int scan = quant::testing::grid_entry(c.type, 0, a, w, dl, GridWay::Scan, &v_scan);
                const int found = quant::testing::grid_entry(c.type, 0, a, w, dl, GridWay::Near, &v);
                ++groups;
                if (found < 0) continue;
                ++answered;
                if (found != scan || std::bit_cast<uint32_t>(v) != std::bit_cast<uint32_t>(v_scan)) {
                    CAPTURE(pt);
                    CHECK(found == scan);
                    CHECK(v == v_scan);
                }
            }
        MESSAGE(name << ": " << answered << " of " << groups << " groups answered by the near entries");
        CHECK(answered == groups);
    }
}

// IQ1's fast pass takes the entries one or two changes from a group's nearest point from a
// list per point, on lanes (Lattice::two_away); the scalar step it replaced stays for the
// other grids. On both of IQ1's parts, for groups anywhere in the grid's range (the nearest
// point mostly no entry) and at ties (values on midpoints; pairs of changes that cost the
// same to a few float steps), the two settle the same groups with the same entry and error
// bits.
TEST_CASE("IQ1's one-change step on lanes settles what the scalar step settles, with its answers") {
    using quant::testing::GridWay;
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> unit(0, 1);
    const std::vector<float> part_values[2] = {{-0.875f, 0.125f, 1.125f}, {-1.125f, -0.125f, 0.875f}};
    for (int part = 0; part < 2; ++part) {
        const std::vector<float>& values = part_values[part];
        int settled = 0, scalar_settled = 0;
        constexpr int kTries = 6000;
        for (int t = 0; t < kTries; ++t) {
            const float dl = std::ldexp(0.5f + unit(rng), -10);
            std::vector<float> a(8), w(8);
            for (size_t j = 0; j < 8; ++j) {
                a[j] = dl * (values.front() - 0.3f + (values.back() - values.front() + 0.6f) * unit(rng));
                w[j] = rng() % 30 == 0 ? 0.0f : 0.25f + unit(rng);
            }
            if (t % 3 == 1)  // two coordinates on midpoints
                for (int m = 0; m < 2; ++m) {
                    const size_t j = rng() % 8, i = rng() % 2;
                    a[j] = dl * ((values[i] + values[i + 1]) / 2);
                }
            if (t % 3 == 2) {  // two coordinates the same weighted cost from another value, a few float steps apart
                const size_t j1 = rng() % 8, j2 = (j1 + 1 + rng() % 7) % 8;
                for (size_t j : {j1, j2}) {
                    const size_t i = rng() % 2;
                    a[j] = dl * (values[i] + 0.3f * (values[i + 1] - values[i]));
                }
                w[j2] = w[j1];
                for (int step = static_cast<int>(rng() % 9) - 4; step != 0; step += step > 0 ? -1 : 1)
                    a[j2] = std::nextafter(a[j2], step > 0 ? 1.0f : -1.0f);
            }
            float v_lanes = 0, v_scalar = 0;
            const int lanes = quant::testing::grid_entry(gguf::TypeId::IQ1_S, part, a, w, dl, GridWay::Settle, &v_lanes);
            quant::testing::use_two_away_lists(false);
            const int scalar = quant::testing::grid_entry(gguf::TypeId::IQ1_S, part, a, w, dl, GridWay::Settle, &v_scalar);
            quant::testing::use_two_away_lists(true);
            if (lanes != scalar || (lanes >= 0 && std::bit_cast<uint32_t>(v_lanes) != std::bit_cast<uint32_t>(v_scalar))) {
                CAPTURE(part);
                CAPTURE(t);
                CHECK(lanes == scalar);
                CHECK(v_lanes == v_scalar);
            }
            settled += lanes >= 0;
            scalar_settled += scalar >= 0;
        }
        MESSAGE("IQ1 part " << part << ": the lanes settled " << settled << " of " << kTries << " groups, the scalar step " << scalar_settled);
        CHECK(settled > kTries / 5);
    }
}

// The fits' passes run on lanes, inlined per block size, with the best codes kept, tried
// scales remembered and min/max and sums written out in a fixed order; none of that may
// change a bit. The hashes were made with 14db0a7's plain fits (one call per pass, scalar
// extremes, codes recomputed for the best scale), but Q6_K's and Q4_0's default: their searches
// changed on 2026-12-04 (Q6_K's sub-blocks Search{6, 0} and codes nudged by two, Q4_0 one refit
// from each start; with importance two again since 2026-12-05, the bytes first pinned), the ternary types' (fit_ternary, 2026-12-05), Q8_0's with importance on 2026-12-05 (Search{3, 0, bound_refits}; its
// earlier search, with the mirror-image starts dropped, still wrote 0xbb7e995d80850080) and
// without it the same day (the search replaced llama.cpp's rounding, which is its fast effort now
// and keeps its earlier pins), and
// Q5_K's (Search{2, 2} and the super-block refit, 2026-12-05; before: 0x1e6179fad25afce5,
// 0x2195b518ef4b66cd; with importance --effort best's Search{8, 2} and two refits the same
// day, as Q4_K's with importance), and Q4_1's and Q5_1's without importance (one refit from three starts,
// 2026-12-05; before: 0xc660998b5c448935, 0x02166814d3a03df1), and Q4_K's (the wide re-pick of
// its sub-blocks' scale and minimum codes, 2026-12-06), and their new hashes are the lanes' output, whose block fits
// test_quant_fits.cpp compares with the one-block fit.
TEST_CASE("the legacy, k-quant and codebook fits write the bytes of the unvectorized fits") {
    const IntegerRows rows(true);
    const quant::testing::ImportanceSquareRoot square_root;  // the weighted pins
    struct Expected {
        const char* name;
        uint64_t plain, weighted, fast;  // fast: 0 where the type has no fast search
    };
    const Expected expected[] = {
        {"q4_0", 0x5e5ee86e5e4cd0c1ull, 0xb3e82c8edd99416aull, 0xc943f9e7bac17abcull},  // Q4_0's one-refit default (2026-12-04); with importance two refits again (2026-12-05: 14db0a7's bytes, as first pinned; one refit wrote 0x3517001fb463b160)
        {"q4_1", 0xe4e6e9a8c0a7b61eull, 0x79eb1c1b63b11390ull, 0x588f07560104ca37ull},
        {"q5_0", 0x3f81e054ad8be89bull, 0x014fb6ae75eddf95ull, 0xda74107059ddeb6dull},
        {"q5_1", 0x640a2a0969b714d3ull, 0x2b674d31a21ba357ull, 0xde25d1b2b3c8d9c8ull},
        {"q8_0", 0x39fb9c65242d01a9ull, 0x6d4c56f624500df1ull, 0xfa45b9f55203c6e5ull},  // Q8_0's bound-refit search (2026-12-05), without importance too (fast: the rounding)
        {"q2_K", 0x460e129b1e4d5fcaull, 0x41a66a35c3c9d9adull, 0},  // the wide re-pick (2026-12-06, before: 0x0b69c04cf15640a5, 0x6e8546e8964e85e4)
        {"q3_K", 0xe149a85e27e5e750ull, 0x9449eaf852599367ull, 0},
        {"q4_K", 0x2db57dfdf15a51b3ull, 0xf8f949cea8bb02c7ull, 0},  // the wide re-pick (2026-12-06, before: 0x99f8bc32e89ee166, 0x825da35c99b7f130); with importance --effort best's {8, 2} (2026-12-05, before: 0xa4318c1dedeb9bf8)
        {"q5_K", 0xf55022ec04eb01cdull, 0x15c587c1d64966ceull, 0},  // Q5_K's Search{2, 2} and super-block refit (2026-12-05); with importance --effort best's {8, 2} (2026-12-05, before: 0xe05d859cacc882b4)
        {"q6_K", 0xbeb43e988ff57737ull, 0x283708b4d4b33d84ull, 0},  // Q6_K's wider search (2026-12-04)
        {"iq4_nl", 0x1d6b7d2dd5d2df69ull, 0x52fc821b1728156bull, 0},  // IQ4's third start (2026-12-05; before: plain 0x07c5f26c1e2ca2f4, weighted 0xd9cb7d27d8bae9bb)
        {"iq4_xs", 0xee1d0e6fba863f90ull, 0x8336e475a029a3e4ull, 0},  // IQ4's third start (2026-12-05; before: plain 0xdbcdfd1e044b7af8, weighted 0x33ac1191bbb44291)
        {"tq1_0", 0x7e7fb9f55dd12084ull, 0xa66c55abe8059d8aull, 0},  // the ternary fit (fit_ternary, 2026-12-05)
        {"tq2_0", 0xb3b7305edf318421ull, 0x0d6f9a66687328e7ull, 0},
    };
    for (const Expected& e : expected) {
        const std::string name = e.name;
        CAPTURE(name);
        const auto type = *gguf::type_from_name(name);
        CHECK(rows.hash(type, false) == e.plain);
        CHECK(rows.hash(type, true) == e.weighted);
        if (e.fast) CHECK(rows.hash(type, false, quant::Effort::Fast) == e.fast);
    }
}

// With an importance matrix every fit weighs a value by importance x (sigma^2 + x^2)^(1/4)
// (Q4_K too since 2026-12-05; it took the square root before), without one by sqrt(sigma^2 +
// x^2) on every type (quant/src/fit.h). So the square root forced on every type
// (quant::testing::importance_square_root) changes the bytes of every type that takes
// importance, and of none without importance. test_quant_fits checks the weights themselves;
// test_ref that the fourth root lowers the weighted RMSE.
TEST_CASE("with importance the fits weigh by the fourth root of sigma^2 + x^2, without by the square root") {
    const IntegerRows rows(true);
    int changed = 0;
    for (const gguf::TypeInfo& info : gguf::all_types()) {
        if (info.retired || !quant::can_quantize(info.id)) continue;
        const gguf::TypeId type = info.id;
        const std::string name(info.name);
        CAPTURE(name);
        const bool plain_too = !quant::needs_importance(type);
        const uint64_t weighted = rows.hash(type, true), plain = plain_too ? rows.hash(type, false) : 0;
        uint64_t weighted_sqrt = 0, plain_sqrt = 0;
        {
            const quant::testing::ImportanceSquareRoot square_root;
            weighted_sqrt = rows.hash(type, true);
            plain_sqrt = plain_too ? rows.hash(type, false) : 0;
        }
        CHECK(plain == plain_sqrt);
        const bool takes_weights = info.quantized && type != gguf::TypeId::Q1_0;  // Q1_0: signs and one scale
        if (!takes_weights) CHECK(weighted == weighted_sqrt);
        else {
            CHECK(weighted != weighted_sqrt);
            ++changed;
        }
    }
    CHECK(changed == 24);  // 10 legacy and k-quant, 9 i-quant, 2 ternary, 2 microscaling types and Q2_0
}

// The fits run eight blocks side by side (fit_symmetric8 and the rest): a row whose block
// count is not a multiple of eight leaves idle lanes, and tiny values give scales that are f16
// subnormals (or round to 0), which the lanes round as the scalar f16 conversion does. The
// hashes were made with 16d65ab's library, which fitted one block at a time.
TEST_CASE("the fits of eight blocks at once write the bytes of one block at a time, on partial groups and subnormal scales") {
    struct Expected {
        const char* name;
        int cols;
        float scale;
        uint64_t plain, weighted, fast;  // fast: 0 where the type has no fast search
    };
    const float tiny = 0x1p-12f;
    const Expected expected[] = {
        {"q4_0", 2848, 1, 0x31c432be616e3463ull, 0x10a10c6ee85381daull, 0xf6db485252c1312dull},  // as above (weighted: 16d65ab's bytes again; one refit wrote 0x5976267439f167a8)
        {"q5_0", 2848, 1, 0x853fb1b7703f1100ull, 0xd617144ae50392fcull, 0x17edb1a3e7a6d7a6ull},
        {"q4_0", 2848, tiny, 0x5388edf39e7fa1e4ull, 0x84b670c13beca0c4ull, 0x17e45b715989391aull},  // as above (weighted: 16d65ab's bytes again; one refit wrote 0xfbc36ff66f6dcbda)
        {"q5_0", 2848, tiny, 0xbcd42c6718f8832aull, 0x4438027e736b9914ull, 0x9da690b5cf37d45eull},
        {"q8_0", 2848, 1, 0x24ee7b7b3833cc29ull, 0xc72888b7a1dfc8e7ull, 0x2f95e37864ebdb91ull},  // as above (weighted before: 0x90bd8c8f400df540)
        {"q4_1", 2848, 1, 0x069330118d596d75ull, 0xa9922d94139fb113ull, 0xe11439396ce26f8dull},
        {"q5_1", 2848, 1, 0x5eb75e61f331f9acull, 0x7a17d982d13866afull, 0x25c25782bc4eb197ull},
        {"q4_1", 2848, tiny, 0xe2ae13f80479ea82ull, 0xa11035331a881671ull, 0x99da4345274b7665ull},
        {"q5_1", 2848, tiny, 0x6a209c13607e6db0ull, 0xb4768b636846d7c2ull, 0xceed88b2573750b1ull},
        {"q8_0", 2848, tiny, 0xde8936ee430dbf3dull, 0xde8936ee430dbf3dull, 0x9f7f040bd981bbc6ull},  // scales of a few f16 subnormal steps: the same choice whatever the weights
        {"iq4_nl", 2848, 1, 0xb3836c7c84c0ed33ull, 0x0b155e5933da8eb8ull, 0},  // IQ4's third start (2026-12-05; before: plain 0x375e3639c5103fc1, weighted 0x5d7e0f5b483989ea)
        {"iq4_nl", 2848, tiny, 0xa8ab4549d208de8full, 0x42e7939eb34ff149ull, 0},  // IQ4's third start (2026-12-05; before: plain 0xc129799854c4713c, weighted 0x07e431f7eb61cf72)
        {"iq4_xs", 2560, 1, 0x26c4a36fcb3be7cbull, 0x660a637b653a26f6ull, 0},  // IQ4's third start (2026-12-05; before: plain 0xd9e6a4f87b510c68, weighted 0x2adf13afd92b8e21)
        {"iq4_xs", 2560, tiny, 0x069889da31b4bed3ull, 0x26619175d3bfa553ull, 0},  // IQ4's third start (2026-12-05, weighted before: 0x996095a52841d353)
        {"q2_K", 2816, tiny, 0xd69ce6de4c192786ull, 0x373c22dca9cae4cbull, 0},  // the wide re-pick (2026-12-06, before: 0x19be92bc6ec2c69e, 0xbb50a103d2eb3628)
        {"q3_K", 2816, tiny, 0x5b0deada1414a70eull, 0xbc102cb9e37722c2ull, 0},
        {"q4_K", 2816, tiny, 0x98921ec6db53fd63ull, 0xdb9001712b9e1abcull, 0},  // the wide re-pick (2026-12-06, before: 0x040e9153f26a0eab, 0x4f93a0b3122f24e2); weighted: {8, 2} with importance (2026-12-05, before: 0x63d637ba4394ff5f)
        {"q5_K", 2816, tiny, 0x1a4c1caa0b94f9c4ull, 0xbe682ea7fac98a0aull, 0},  // as above (before: 0xb7e84dbfc151e07c, 0x1a8347ecb0e3748c; weighted before {8, 2}: 0x63ebf29fd1b183fb)
        {"q6_K", 2816, tiny, 0xb9e72ca3b0877ca3ull, 0x0e426e5731bbb923ull, 0},  // as above
    };
    for (const Expected& e : expected) {
        const std::string name = e.name;
        const IntegerRows rows(true, e.cols, e.scale);
        const quant::testing::ImportanceSquareRoot square_root;  // the weighted pins
        CAPTURE(name);
        CAPTURE(e.cols);
        CAPTURE(e.scale);
        const auto type = *gguf::type_from_name(name);
        CHECK(rows.hash(type, false) == e.plain);
        CHECK(rows.hash(type, true) == e.weighted);
        if (e.fast) CHECK(rows.hash(type, false, quant::Effort::Fast) == e.fast);
    }
}

// The AVX-512 paths (sixteen blocks a register for the k-quant and legacy fits, one block at
// a time for Q4_0/Q5_0's fast effort, the wider grid scan) must write what the AVX2 paths
// write, on the blocks that send a fit down its rare paths too: all zeros, one value, a
// constant, values below f16's range (a scale of 0 or one whose inverse overflows), values
// beyond it, exact halves between codes, and ordinary values with outliers. Each row mixes
// them block by block, so that some lanes of a register take the rare path and others not.
TEST_CASE("every type writes the same bytes on the AVX-512 paths as without them") {
    if (!quant::testing::use_avx512(true)) {
        WARN_MESSAGE(false, "this CPU has no AVX-512: the AVX-512 paths cannot run here, so this comparison did not run");
        return;
    }
    constexpr int kWidth = 2816, kRows = 4;  // 11 super-blocks a row: the k-quants' last sub-blocks take the eight-lane path
    std::vector<float> x(static_cast<size_t>(kWidth) * kRows), w(kWidth);
    std::mt19937 rng(23);
    std::normal_distribution<float> normal(0, 1);
    for (int r = 0; r < kRows; ++r)
        for (int i = 0; i < kWidth; ++i) {
            const int block = i / 32 + r;  // the kinds shift from row to row
            float& v = x[static_cast<size_t>(r * kWidth + i)];
            switch (block % 10) {
            case 0: v = 0; break;
            case 1: v = i % 32 == 7 ? -0.25f : 0.0f; break;
            case 2: v = 0.125f; break;
            case 3: v = normal(rng) * 1e-9f; break;  // f16 scales underflow
            case 4: v = normal(rng) * 1e-42f; break;  // float subnormals: 1 / d overflows
            case 5: v = normal(rng) * 3e6f; break;  // scales past f16's largest
            case 6: v = static_cast<float>(static_cast<int>(rng() % 15) - 7) * 0.5f; break;  // halves between codes
            case 7: v = static_cast<float>(static_cast<int>(rng() % 3) - 1) * 1e-2f; break;  // ties
            default: v = normal(rng) * (i % 61 == 0 ? 0.5f : 0.02f);
            }
        }
    for (int i = 0; i < kWidth; ++i) w[static_cast<size_t>(i)] = i % 7 == 0 ? 0.0f : static_cast<float>(1 + rng() % 16) / 4;
    int compared = 0;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        if (!t.quantized || t.retired || !can_quantize(t.id) || kWidth % t.block_size) continue;
        CAPTURE(t.name);
        for (const bool weighted : {false, true}) {
            if (!weighted && needs_importance(t.id)) continue;
            CAPTURE(weighted);
            for (const quant::Effort effort : quant::kEfforts) {
                CAPTURE(quant::effort_name(effort));
                std::vector<uint8_t> wide(row_bytes(t.id, kWidth) * kRows), narrow(wide.size());
                const std::span<const float> imp = weighted ? std::span<const float>(w) : std::span<const float>();
                quantize(t.id, x, kWidth, imp, wide, 0, effort);
                quant::testing::use_avx512(false);
                quantize(t.id, x, kWidth, imp, narrow, 0, effort);
                quant::testing::use_avx512(true);
                CHECK(wide == narrow);
                ++compared;
            }
        }
    }
    CHECK(compared > 100);
}

// ScaleFit::Unbiased (gguf requant --unbiased-scales): the least-squares fit's codes and sub-block
// scales, each block's f16 scale fields multiplied by c = sum x x / sum x y, so that the
// dequantized block y keeps sum x y = sum x x up to the f16 rounding of its fields.
// ScaleFit::Default: the same with c^p, p = default_scale_power: 1/2 on IQ1_S, IQ1_M, IQ2_XXS and
// IQ2_XS (halfway), 1/4 on IQ2_S, the least-squares bytes on every other type.
TEST_CASE("unbiased scales: every block keeps the source's projection, only its f16 scale fields differ from the least-squares bytes; by default the 1- and 2-bit grid i-quants' go part of the way") {
    constexpr int kWidth = 2048, kRows = 2;
    std::vector<float> x(static_cast<size_t>(kWidth) * kRows), w(kWidth);
    std::mt19937 rng(41);
    std::normal_distribution<float> normal(0, 1);
    for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % 53 == 0 ? 0.2f : 0.02f) + (i >= kWidth / 2 && i < kWidth ? 0.01f : 0.0f);  // row 0's second half off zero: the minimum terms matter
    std::fill(x.begin() + kWidth, x.begin() + kWidth + 256, 0.0f);  // row 1's first 256 values: no projection to keep
    for (int i = 0; i < kWidth; ++i) w[static_cast<size_t>(i)] = static_cast<float>(1 + rng() % 16) / 4;
    for (const ScaleFit mode : {ScaleFit::Unbiased, ScaleFit::Default}) {
    const bool halfway = mode == ScaleFit::Default;  // part of the way: c^p, p = default_scale_power
    CAPTURE(halfway);
    int rescaled_types = 0, kept_types = 0;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        if (!t.quantized || t.retired || !can_quantize(t.id) || kWidth % t.block_size) continue;
        CAPTURE(t.name);
        const Traits& tr = *traits(t.id);
        int fields = 0;
        while (fields < 4 && tr.scales[fields].kind != ScaleKind::None) ++fields;
        const double power = halfway ? default_scale_power(t.id) : 1.0;
        const bool all_f16 = scale_fit_applies(t.id) && power > 0;
        const std::span<const float> imp = needs_importance(t.id) ? std::span<const float>(w) : std::span<const float>();
        std::vector<uint8_t> ls(row_bytes(t.id, kWidth) * kRows), unb(ls.size());
        quantize(t.id, x, kWidth, imp, ls, 0, Effort::Default, ScaleFit::LeastSquares);
        quantize(t.id, x, kWidth, imp, unb, 0, Effort::Default, mode);
        if (!all_f16 || fields == 0) {  // MXFP4, NVFP4, the ternary and Q1_0/Q2_0 formats (by default all but the five): as they were
            CHECK(ls == unb);
            ++kept_types;
            continue;
        }
        ++rescaled_types;
        std::vector<float> y_ls(t.block_size), y_unb(t.block_size);
        double worst = 0, xx_all = 0, xy_ls_all = 0, xy_unb_all = 0;
        // A field's f16 bits: two bytes, or IQ1_M's top nibbles of four u16 words (whose other
        // bits, the sub-block scales, must stay as they were).
        const auto bits_of = [&](int f, const uint8_t* block) {
            const uint8_t* at = block + tr.scales[f].offset;
            return tr.scales[f].kind == ScaleKind::F16Nibbles ? quant::iq1_m_d_bits(at) : static_cast<uint16_t>(at[0] | at[1] << 8);
        };
        const auto field_bits = [&](uint32_t k) {  // the bits of byte k that belong to a scale field
            uint8_t mask = 0;
            for (int f = 0; f < fields; ++f) {
                const uint32_t o = tr.scales[f].offset;
                if (tr.scales[f].kind == ScaleKind::F16Nibbles) mask |= k >= o && k < o + 8 && (k - o) % 2 == 1 ? 0xf0 : 0;
                else mask |= k >= o && k < o + 2 ? 0xff : 0;
            }
            return mask;
        };
        for (size_t b = 0; b < ls.size() / t.type_size; ++b) {
            CAPTURE(b);
            const uint8_t* bl = ls.data() + b * t.type_size;
            const uint8_t* bu = unb.data() + b * t.type_size;
            for (uint32_t k = 0; k < t.type_size; ++k) REQUIRE((bl[k] & ~field_bits(k)) == (bu[k] & ~field_bits(k)));
            dequantize(t.id, {bl, t.type_size}, y_ls);
            dequantize(t.id, {bu, t.type_size}, y_unb);
            const float* xb = x.data() + b * t.block_size;
            double xx = 0, xy_ls = 0, xy_unb = 0;
            for (uint32_t j = 0; j < t.block_size; ++j) {
                xx += static_cast<double>(xb[j]) * xb[j];
                xy_ls += static_cast<double>(xb[j]) * y_ls[j];
                xy_unb += static_cast<double>(xb[j]) * y_unb[j];
            }
            // Every field times c as computed from the least-squares block (all of them, or none
            // where c is out of range or a field would not be finite).
            const double full = xx / xy_ls, c = power == 1 ? full : power == 0.5 ? std::sqrt(full) : std::sqrt(std::sqrt(full));
            REQUIRE((power == 1 || power == 0.5 || power == 0.25));
            bool apply = xy_ls > 0 && full > 0.5 && full < 2;
            uint16_t expected[4];
            for (int f = 0; f < fields; ++f) {
                expected[f] = f32_to_f16(static_cast<float>(f16_to_f32(bits_of(f, bl)) * c));
                apply = apply && std::isfinite(f16_to_f32(expected[f]));
            }
            for (int f = 0; f < fields; ++f) {
                const std::string field = tr.scales[f].name;
                CAPTURE(field);
                REQUIRE(bits_of(f, bu) == (apply ? expected[f] : bits_of(f, bl)));
            }
            if (xx == 0) {  // the zero block: nothing to keep, nothing changed
                CHECK(std::equal(bl, bl + t.type_size, bu));
                continue;
            }
            // Unbiased: the whole projection; part of the way: the least-squares share of it to the power 1 - p.
            worst = std::max(worst, std::fabs(xy_unb / xx - std::pow(xy_ls / xx, 1 - power)));
            xx_all += xx;
            xy_ls_all += xy_ls;
            xy_unb_all += xy_unb;
        }
        MESSAGE(t.name, ": least squares keeps ", xy_ls_all / xx_all, " of the projection, ", std::string(halfway ? "by default " : "unbiased "), xy_unb_all / xx_all,
                " (worst block ", worst, ")");
        // One f16 field is within 2^-11 of its exact value; d and dmin (or m) round apart and
        // their terms partly cancel, so a block of an affine kind may miss by a few times that.
        CHECK(worst <= (fields == 1 ? 1.0e-3 : 1.0e-2));
        if (halfway) {  // closer to the whole projection than least squares, not past it
            CHECK(std::fabs(xy_unb_all / xx_all - 1) < std::fabs(xy_ls_all / xx_all - 1));
            CHECK((xy_unb_all / xx_all - 1) * (xy_ls_all / xx_all - 1) >= 0);
        } else {
            CHECK(std::fabs(xy_unb_all / xx_all - 1) <= 1.0e-3);
        }
    }
    if (halfway) {
        CHECK(rescaled_types == 5);  // IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S
    } else {
        CHECK(rescaled_types == 19);  // Q4_0 ... Q8_0, Q2_K ... Q6_K, the IQ types
        CHECK(kept_types == 6);  // MXFP4, NVFP4, TQ1_0, TQ2_0, Q1_0, Q2_0
    }
    }
}
