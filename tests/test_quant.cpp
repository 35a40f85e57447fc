// quant/: conversions and block formats checked on hand-made blocks (no reference data).
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <stdexcept>
#include <vector>

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
