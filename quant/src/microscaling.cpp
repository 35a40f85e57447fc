// Microscaling formats: FP4 (E2M1) values sharing a power-of-two (E8M0) or small-float
// (E4M3) scale.
#include <algorithm>
#include <array>
#include <cmath>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

namespace {

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
    using K = ScaleKind;
    add_block_type<BlockMXFP4>(t, quantize_mxfp4, {{K::E8M0, offsetof(BlockMXFP4, e), "e"}});
    add_block_type<BlockNVFP4>(t, quantize_nvfp4, {{K::UE4M3, offsetof(BlockNVFP4, d) + 0, "d[0]"}, {K::UE4M3, offsetof(BlockNVFP4, d) + 1, "d[1]"}, {K::UE4M3, offsetof(BlockNVFP4, d) + 2, "d[2]"}, {K::UE4M3, offsetof(BlockNVFP4, d) + 3, "d[3]"}});
}

}  // namespace quant::detail
