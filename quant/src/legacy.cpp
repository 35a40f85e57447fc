// The legacy block formats: 32 values per block, one f16 scale (and for the _1 kinds an f16
// minimum), 4, 5 or 8 bits per value.
#include "bytes.h"
#include "family.h"

namespace quant::detail {

// Q4_0: value = d x (q - 8), q a 4-bit code. Codes 0-15 of the block are the low nibbles
// of qs[0..15], codes 16-31 the high nibbles.
struct BlockQ4_0 {
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: value = d x q + m.
struct BlockQ4_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: value = d x (q - 16), q a 5-bit code: low 4 bits in nibbles as in Q4_0, the fifth
// bit of code j in bit j of the little-endian u32 qh.
struct BlockQ5_0 {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: value = d x q + m, codes as in Q5_0.
struct BlockQ5_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: value = d x q, q a signed byte.
struct BlockQ8_0 {
    uint8_t d[2];
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

namespace {

void dequantize_q4_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ4_0* b = blocks<BlockQ4_0>(src); n-- > 0; ++b, y += 32) {
        const float d = half(b->d);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>((b->qs[j] & 0x0f) - 8) * d;
            y[j + 16] = static_cast<float>((b->qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_q4_1(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ4_1* b = blocks<BlockQ4_1>(src); n-- > 0; ++b, y += 32) {
        const float d = half(b->d), m = half(b->m);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(b->qs[j] & 0x0f) * d + m;
            y[j + 16] = static_cast<float>(b->qs[j] >> 4) * d + m;
        }
    }
}

// The 5-bit codes j and j + 16 of a Q5 block.
inline int q5_low(const uint8_t* qs, uint32_t qh, int j) { return (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4); }
inline int q5_high(const uint8_t* qs, uint32_t qh, int j) { return (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4); }

void dequantize_q5_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ5_0* b = blocks<BlockQ5_0>(src); n-- > 0; ++b, y += 32) {
        const float d = half(b->d);
        const uint32_t qh = u32le(b->qh);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(q5_low(b->qs, qh, j) - 16) * d;
            y[j + 16] = static_cast<float>(q5_high(b->qs, qh, j) - 16) * d;
        }
    }
}

void dequantize_q5_1(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ5_1* b = blocks<BlockQ5_1>(src); n-- > 0; ++b, y += 32) {
        const float d = half(b->d), m = half(b->m);
        const uint32_t qh = u32le(b->qh);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(q5_low(b->qs, qh, j)) * d + m;
            y[j + 16] = static_cast<float>(q5_high(b->qs, qh, j)) * d + m;
        }
    }
}

void dequantize_q8_0(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ8_0* b = blocks<BlockQ8_0>(src); n-- > 0; ++b, y += 32) {
        const float d = half(b->d);
        for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b->qs[j]) * d;
    }
}

}  // namespace

void register_legacy(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::Q4_0)].dequantize = dequantize_q4_0;
    t[static_cast<uint32_t>(TypeId::Q4_1)].dequantize = dequantize_q4_1;
    t[static_cast<uint32_t>(TypeId::Q5_0)].dequantize = dequantize_q5_0;
    t[static_cast<uint32_t>(TypeId::Q5_1)].dequantize = dequantize_q5_1;
    t[static_cast<uint32_t>(TypeId::Q8_0)].dequantize = dequantize_q8_0;
}

}  // namespace quant::detail
