// The k-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each sub-block with
// its own scale (and minimum) stored in a few bits, scaled again by the block's f16 d (and
// dmin).
#include "bytes.h"
#include "family.h"

namespace quant::detail {

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble the sub-block's scale, high nibble its
// minimum; value = d x scale x q - dmin x min, q a 2-bit code. qs holds the codes of each
// half (128 values) as four 2-bit planes of 32 bytes.
struct BlockQ2_K {
    uint8_t scales[16];
    uint8_t qs[64];
    uint8_t d[2];
    uint8_t dmin[2];
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16, 6-bit signed scales (stored minus 32) packed into 12 bytes;
// value = d x (scale - 32) x (q - 4 if the code's hmask bit is clear else q), q 2 bits
// laid out as in Q2_K.
struct BlockQ3_K {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32 with 6-bit scales and minimums packed into 12 bytes;
// value = d x scale x q - dmin x min, q 4 bits: each 64 values are the low nibbles then the
// high nibbles of 32 bytes.
struct BlockQ4_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: as Q4_K with a fifth bit per value in qh: bit 2k of qh[l] for value l of the k-th
// 64, low nibble half; bit 2k + 1 for the high nibble half.
struct BlockQ5_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; value = d x scale x (q - 32), q 6
// bits: low 4 in ql, high 2 in qh.
struct BlockQ6_K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ6_K) == 210);

namespace {

void dequantize_q2_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ2_K* b = blocks<BlockQ2_K>(src); n-- > 0; ++b) {
        const float d = half(b->d), dmin = half(b->dmin);
        const uint8_t* q = b->qs;
        int sub = 0;
        for (int half_block = 0; half_block < 2; ++half_block, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 per 2-bit plane
                    const uint8_t sc = b->scales[sub++];
                    const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

// The sixteen 6-bit Q3_K scales: bytes 0-7 hold their low nibbles (scales 0-7 in the low
// halves, 8-15 in the high halves), bytes 8-11 their top two bits (scale i's in bits
// 2 x (i / 4) of byte 8 + i % 4).
void q3_k_scales(const uint8_t* packed, int (&out)[16]) {
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? packed[i] & 0x0f : packed[i - 8] >> 4;
        const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (low | high << 4) - 32;
    }
}

void dequantize_q3_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ3_K* b = blocks<BlockQ3_K>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        int scales[16];
        q3_k_scales(b->scales, scales);
        const uint8_t* q = b->qs;
        uint8_t mask = 1;
        int sub = 0;
        for (int half_block = 0; half_block < 2; ++half_block, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, mask = static_cast<uint8_t>(mask << 1)) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d * static_cast<float>(scales[sub++]);
                    for (int l = 16 * part; l < 16 * part + 16; ++l) {
                        const int code = ((q[l] >> shift) & 3) - ((b->hmask[l] & mask) ? 0 : 4);
                        *y++ = dl * static_cast<float>(code);
                    }
                }
            }
        }
    }
}

// Scale and minimum j (0-7) of a Q4_K or Q5_K block: 6 bits each. For j < 4 they are the
// low 6 bits of bytes j and j + 4; for j >= 4 the low (scale) or high (min) nibble of byte
// j + 4, topped with the two high bits of byte j - 4 (scale) or j (min).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q4_K and Q5_K share everything but the fifth bit; qh is nullptr for Q4_K.
inline void dequantize_k4(float d, float dmin, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, float* y) {
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32) {  // 64 values: 32 low nibbles, then 32 high
        for (int nibble = 0; nibble < 2; ++nibble) {
            uint8_t sc, m;
            scale_min_k4(2 * chunk + nibble, scales, sc, m);
            const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
            const uint8_t bit = static_cast<uint8_t>(1u << (2 * chunk + nibble));
            for (int l = 0; l < 32; ++l) {
                int q = nibble ? qs[l] >> 4 : qs[l] & 0x0f;
                if (qh && (qh[l] & bit)) q += 16;
                *y++ = dl * static_cast<float>(q) - ml;
            }
        }
    }
}

void dequantize_q4_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ4_K* b = blocks<BlockQ4_K>(src); n-- > 0; ++b, y += 256)
        dequantize_k4(half(b->d), half(b->dmin), b->scales, b->qs, nullptr, y);
}

void dequantize_q5_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ5_K* b = blocks<BlockQ5_K>(src); n-- > 0; ++b, y += 256)
        dequantize_k4(half(b->d), half(b->dmin), b->scales, b->qs, b->qh, y);
}

void dequantize_q6_k(const uint8_t* src, float* y, int64_t n) {
    for (const BlockQ6_K* b = blocks<BlockQ6_K>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        const uint8_t* ql = b->ql;
        const uint8_t* qh = b->qh;
        const int8_t* sc = b->scales;
        for (int half_block = 0; half_block < 2; ++half_block, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

}  // namespace

void register_kquants(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::Q2_K)].dequantize = dequantize_q2_k;
    t[static_cast<uint32_t>(TypeId::Q3_K)].dequantize = dequantize_q3_k;
    t[static_cast<uint32_t>(TypeId::Q4_K)].dequantize = dequantize_q4_k;
    t[static_cast<uint32_t>(TypeId::Q5_K)].dequantize = dequantize_q5_k;
    t[static_cast<uint32_t>(TypeId::Q6_K)].dequantize = dequantize_q6_k;
}

}  // namespace quant::detail
