// Microscaling formats: FP4 (E2M1) values sharing a power-of-two (E8M0) or small-float
// (E4M3) scale.
#include <cmath>

#include "bytes.h"
#include "family.h"

namespace quant::detail {

// The 16 FP4 (E2M1) codes, doubled so they are integers: code c is kFp4Doubled[c] / 2.
// (Codes 0-7: 0, 0.5, 1, 1.5, 2, 3, 4, 6; codes 8-15 their negatives.)
constexpr int8_t kFp4Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Half of an E8M0 scale 2^(e - 127), the halving undoing kFp4Doubled's doubling.
inline float e8m0_half(uint8_t e) { return std::ldexp(1.0f, static_cast<int>(e) - 128); }

// Half of an unsigned E4M3 scale: 4 exponent bits (bias 7) and 3 mantissa bits in the low
// 7 bits; bit 7 is ignored, and 0x7f (E4M3's NaN) scales to 0.
inline float ue4m3_half(uint8_t x) {
    x &= 0x7f;
    if (x == 0x7f) return 0.0f;
    const int exponent = x >> 3, mantissa = x & 7;
    if (exponent == 0) return std::ldexp(static_cast<float>(mantissa), -10);
    return std::ldexp(static_cast<float>(8 + mantissa), exponent - 11);
}

// MXFP4: 32 values; value j is e8m0(e) x fp4(low nibble of qs[j]), value j + 16 uses the
// high nibble.
struct BlockMXFP4 {
    uint8_t e;
    uint8_t qs[16];
};
static_assert(sizeof(BlockMXFP4) == 17);

// NVFP4: 64 values in 4 sub-blocks of 16, each with its own UE4M3 scale d[s]; sub-block s
// uses qs[8s .. 8s + 7]: low nibbles are its values 0-7, high nibbles 8-15.
struct BlockNVFP4 {
    uint8_t d[4];
    uint8_t qs[32];
};
static_assert(sizeof(BlockNVFP4) == 36);

namespace {

void dequantize_mxfp4(const uint8_t* src, float* y, int64_t n) {
    for (const BlockMXFP4* b = blocks<BlockMXFP4>(src); n-- > 0; ++b, y += 32) {
        const float d = e8m0_half(b->e);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(kFp4Doubled[b->qs[j] & 0x0f]) * d;
            y[j + 16] = static_cast<float>(kFp4Doubled[b->qs[j] >> 4]) * d;
        }
    }
}

void dequantize_nvfp4(const uint8_t* src, float* y, int64_t n) {
    for (const BlockNVFP4* b = blocks<BlockNVFP4>(src); n-- > 0; ++b) {
        for (int s = 0; s < 4; ++s, y += 16) {
            const float d = ue4m3_half(b->d[s]);
            const uint8_t* qs = b->qs + 8 * s;
            for (int j = 0; j < 8; ++j) {
                y[j] = static_cast<float>(kFp4Doubled[qs[j] & 0x0f]) * d;
                y[j + 8] = static_cast<float>(kFp4Doubled[qs[j] >> 4]) * d;
            }
        }
    }
}

}  // namespace

void register_microscaling(TraitsTable& t) {
    t[static_cast<uint32_t>(TypeId::MXFP4)].dequantize = dequantize_mxfp4;
    t[static_cast<uint32_t>(TypeId::NVFP4)].dequantize = dequantize_nvfp4;
}

}  // namespace quant::detail
