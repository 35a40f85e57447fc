// Microscaling formats: FP4 (E2M1) values sharing a power-of-two (E8M0) or small-float
// (E4M3) scale.
#include <algorithm>
#include <array>
#include <cmath>

#include "bytes.h"
#include "family.h"
#include "fit.h"

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

// FP4 codes as a codebook over the doubled values (codes 0 and 8 both mean 0).
constexpr float kFp4Values[15] = {-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12};
constexpr uint8_t kFp4Codes[15] = {15, 14, 13, 12, 11, 10, 9, 0, 1, 2, 3, 4, 5, 6, 7};
constexpr Levels kFp4 = {kFp4Values, kFp4Codes, 15};

float abs_max(const float* x, int n) {
    float m = 0;
    for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
    return m;
}

void pack_fp4(const uint8_t* index, int half, uint8_t* qs) {
    for (int j = 0; j < half; ++j) qs[j] = static_cast<uint8_t>(kFp4Codes[index[j]] | kFp4Codes[index[j + half]] << 4);
}

// MXFP4: the power of two that sends the largest value nearest the largest code, and its
// neighbours, tried.
void quantize_mxfp4(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockMXFP4, 32>(x, dst, n, imp, [](const float* xb, const float* w, BlockMXFP4& b) {
        float scales[4];
        uint8_t e[4], index[32];
        const float amax = abs_max(xb, 32);
        const int e0 = amax > 0 ? static_cast<int>(std::floor(std::log2(amax / 12.0f))) + 128 : 0;
        for (int k = 0; k < 4; ++k) {
            e[k] = static_cast<uint8_t>(std::clamp(e0 - 1 + k, 0, 254));
            scales[k] = e8m0_half(e[k]);
        }
        b.e = e[pick_scale(xb, w, 32, kFp4, scales, 4, index)];
        pack_fp4(index, 16, b.qs);
    });
}

// NVFP4: per 16 values, the UE4M3 scales around the one that sends the largest value to
// the largest code.
void quantize_nvfp4(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_blocks<BlockNVFP4, 64>(x, dst, n, imp, [](const float* xb, const float* w, BlockNVFP4& b) {
        for (int s = 0; s < 4; ++s) {
            const float* xs = xb + 16 * s;
            const float ideal = abs_max(xs, 16) / 12.0f;
            // The UE4M3 byte whose (halved) value is nearest the ideal scale (the first of two
            // as near): the values rise with the byte, so bisect a table of them.
            static const auto kScales = [] {
                std::array<float, 0x7f> t;
                for (int c = 0; c < 0x7f; ++c) t[static_cast<size_t>(c)] = ue4m3_half(static_cast<uint8_t>(c));
                return t;
            }();
            const auto above = std::lower_bound(kScales.begin(), kScales.end(), ideal);
            int nearest = static_cast<int>(above - kScales.begin());
            if (nearest == 0x7f || (nearest > 0 && ideal - kScales[static_cast<size_t>(nearest - 1)] <= kScales[static_cast<size_t>(nearest)] - ideal))
                --nearest;
            float scales[5];
            uint8_t bytes[5], index[16];
            for (int k = 0; k < 5; ++k) {
                bytes[k] = static_cast<uint8_t>(std::clamp(nearest - 2 + k, 0, 0x7e));
                scales[k] = ue4m3_half(bytes[k]);
            }
            b.d[s] = bytes[pick_scale(xs, w + 16 * s, 16, kFp4, scales, 5, index)];
            pack_fp4(index, 8, b.qs + 8 * s);
        }
    });
}

}  // namespace

void register_microscaling(TraitsTable& t) {
    set_type(t, TypeId::MXFP4, dequantize_mxfp4, quantize_mxfp4);
    set_type(t, TypeId::NVFP4, dequantize_nvfp4, quantize_nvfp4);
    using K = ScaleKind;
    set_scales(t, TypeId::MXFP4, {{K::E8M0, offsetof(BlockMXFP4, e), "e"}});
    set_scales(t, TypeId::NVFP4, {{K::UE4M3, offsetof(BlockNVFP4, d) + 0, "d[0]"}, {K::UE4M3, offsetof(BlockNVFP4, d) + 1, "d[1]"},
                                  {K::UE4M3, offsetof(BlockNVFP4, d) + 2, "d[2]"}, {K::UE4M3, offsetof(BlockNVFP4, d) + 3, "d[3]"}});
}

}  // namespace quant::detail
