// The i-quants. This file holds the two built on a non-uniform 16-value table, IQ4_NL and
// IQ4_XS; the grid-based ones (IQ1, IQ2, IQ3) join it with their grids.
#include "bytes.h"
#include "family.h"

namespace quant::detail {

// The 16 levels of IQ4_NL and IQ4_XS codes (ggml's kvalues_iq4nl), denser near zero.
constexpr int8_t kIQ4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// IQ4_NL: 32 values, value = d x level(code); codes as Q4_0's nibbles.
struct BlockIQ4_NL {
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// IQ4_XS: 256 values in 8 sub-blocks of 32 with 6-bit scales (stored plus 32): low 4 bits
// in the nibbles of scales_l, high 2 bits in scales_h (u16 little-endian, 2 bits per
// sub-block). value = d x (scale - 32) x level(code), codes as IQ4_NL per 32.
struct BlockIQ4_XS {
    uint8_t d[2];
    uint8_t scales_h[2];
    uint8_t scales_l[4];
    uint8_t qs[128];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

namespace {

inline void iq4_32(float dl, const uint8_t* qs, float* y) {
    for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(kIQ4Levels[qs[j] & 0x0f]);
        y[j + 16] = dl * static_cast<float>(kIQ4Levels[qs[j] >> 4]);
    }
}

void dequantize_iq4_nl(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ4_NL* b = blocks<BlockIQ4_NL>(src); n-- > 0; ++b, y += 32) iq4_32(half(b->d), b->qs, y);
}

void dequantize_iq4_xs(const uint8_t* src, float* y, int64_t n) {
    for (const BlockIQ4_XS* b = blocks<BlockIQ4_XS>(src); n-- > 0; ++b) {
        const float d = half(b->d);
        const uint16_t scales_h = u16le(b->scales_h);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int low = (b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const int high = (scales_h >> (2 * ib)) & 3;
            iq4_32(d * static_cast<float>((low | high << 4) - 32), b->qs + 16 * ib, y);
        }
    }
}

}  // namespace

void register_iquants(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::IQ4_NL)].dequantize = dequantize_iq4_nl;
    t[static_cast<uint32_t>(TypeId::IQ4_XS)].dequantize = dequantize_iq4_xs;
}

}  // namespace quant::detail
