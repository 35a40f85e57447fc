// Ternary and 1-2 bit formats: TQ1_0, TQ2_0 (values -d, 0, +d), Q1_0 (+-d), Q2_0.
#include "bytes.h"
#include "family.h"

namespace quant::detail {

// TQ1_0: 256 ternary digits, five per byte in qs and four per byte in qh, value =
// d x (digit - 1). A byte holds its digits as a fraction: digit k of byte b is
// ((b x 3^k mod 256) x 3) >> 8. qs is read as 32 bytes x 5 digits, then 16 bytes x 5,
// then qh's 4 bytes x 4, each pass over the bytes taking one digit position.
struct BlockTQ1_0 {
    uint8_t qs[48];
    uint8_t qh[4];
    uint8_t d[2];
};
static_assert(sizeof(BlockTQ1_0) == 54);

// TQ2_0: 256 values of 2 bits, value = d x (code - 1); each 32 bytes hold 4 planes of 32.
struct BlockTQ2_0 {
    uint8_t qs[64];
    uint8_t d[2];
};
static_assert(sizeof(BlockTQ2_0) == 66);

// Q1_0: 128 values, value = +d where bit j % 8 of qs[j / 8] is set, else -d.
struct BlockQ1_0 {
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ1_0) == 18);

// Q2_0: 64 values of 2 bits, value j = d x (code - 1), code in bits 2(j % 4) of qs[j / 4].
struct BlockQ2_0 {
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ2_0) == 18);

namespace {

constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};

// The digit selected by multiplying byte b by 3^k.
inline int ternary_digit(uint8_t b, int k) {
    const uint8_t q = static_cast<uint8_t>(b * kPow3[k]);
    return (static_cast<uint16_t>(q) * 3) >> 8;
}

void dequantize_tq1_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockTQ1_0* b = blocks<BlockTQ1_0>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        auto pass = [&](const uint8_t* bytes, int count, int digits) {
            for (int k = 0; k < digits; ++k)
                for (int m = 0; m < count; ++m) *y++ = static_cast<float>(ternary_digit(bytes[m], k) - 1) * d;
        };
        pass(b->qs, 32, 5);
        pass(b->qs + 32, 16, 5);
        pass(b->qh, 4, 4);
    }
}

void dequantize_tq2_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockTQ2_0* b = blocks<BlockTQ2_0>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        for (int j = 0; j < 64; j += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(((b->qs[j + m] >> shift) & 3) - 1) * d;
    }
}

void dequantize_q1_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ1_0* b = blocks<BlockQ1_0>(src); n-- > 0; ++b, y += 128) {
        const float d = half(b->d);
        for (int j = 0; j < 128; ++j) y[j] = (b->qs[j / 8] >> (j % 8)) & 1 ? d : -d;
    }
}

void dequantize_q2_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ2_0* b = blocks<BlockQ2_0>(src); n-- > 0; ++b, y += 64) {
        const float d = half(b->d);
        for (int j = 0; j < 64; ++j) y[j] = static_cast<float>(((b->qs[j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
    }
}

}  // namespace

void register_ternary(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::TQ1_0)].dequantize = dequantize_tq1_0;
    t[static_cast<uint32_t>(TypeId::TQ2_0)].dequantize = dequantize_tq2_0;
    t[static_cast<uint32_t>(TypeId::Q1_0)].dequantize = dequantize_q1_0;
    t[static_cast<uint32_t>(TypeId::Q2_0)].dequantize = dequantize_q2_0;
}

}  // namespace quant::detail
