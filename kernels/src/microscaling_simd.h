// Microscaling code the AVX2 and AVX-512 paths share (microscaling_avx2.cpp,
// microscaling_avx512.cpp): the halved E8M0 and UE4M3 scales and NVFP4's per-sub-block
// products of scales. Included by those two files only; everything is in an anonymous
// namespace, so each compiles its own copy with its own flags (table.h's rule).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "simd.h"

namespace kernels {
namespace {

inline float bits_to_float(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// 2^(e - 128), the halved E8M0 scale: a normal float for e >= 2, else 2^-127 or 2^-128.
inline float e8m0_half(uint8_t e) { return bits_to_float(e >= 2 ? static_cast<uint32_t>(e - 1) << 23 : uint32_t{0x00200000} << e); }

// The halved UE4M3 scale of each code (bit 7 ignored; 0x7f, E4M3's NaN, scales to 0): for
// exponent bits e and mantissa m, m x 2^-10 when e is 0, else (8 + m) x 2^(e - 11).
struct Ue4m3Table {
    float value[128];
    constexpr Ue4m3Table() : value() {
        for (int x = 0; x < 127; ++x) {
            const int e = x >> 3, m = x & 7;
            float scale = 1.0f / 1024;  // 2^-10, then doubled up to 2^(e - 11)
            for (int k = 1; k < e; ++k) scale *= 2;
            value[x] = static_cast<float>(e ? 8 + m : m) * scale;
        }
        value[127] = 0.0f;
    }
};
constexpr Ue4m3Table kUe4m3Half;

inline float ue4m3_half(uint8_t x) { return kUe4m3Half.value[x & 0x7f]; }

// An NVFP4 block's 4 sub-block scales times the f16 scales of its two activation blocks
// (sub-blocks 0 and 1 with a[0], 2 and 3 with a[1]).
inline __m128 nvfp4_scales(const quant::BlockNVFP4& b, const quant::BlockQ8_0* a) {
    const float d0 = half_to_float(a[0].d), d1 = half_to_float(a[1].d);
    return _mm_setr_ps(ue4m3_half(b.d[0]) * d0, ue4m3_half(b.d[1]) * d0, ue4m3_half(b.d[2]) * d1, ue4m3_half(b.d[3]) * d1);
}

}  // namespace
}  // namespace kernels
