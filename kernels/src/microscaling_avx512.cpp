// Microscaling formats (MXFP4, NVFP4), AVX-512 path.
//
// Dequantization: a block (MXFP4) or sub-block (NVFP4) has 16 possible values, the FP4
// codes' doubled levels times the halved scale. Each one computes them with the scalar
// decoder's operation (float(level) x scale, same operand order) into a 16-float table, and
// each output is a vpermps lookup of its code: the same bits as quant/decode.h by
// construction. The scales are powers of two (E8M0) or small floats (UE4M3), never NaN, so
// they are built exactly in integers or read from a table made at compile time.
//
// Dot products: code magnitudes to bytes through a vpshufb table of the doubled levels, the
// activations negated where the code's sign bit is set, VNNI products (vpdpbusd); one float
// multiply-add per activation block.
// GCC 12 warns of "uninitialized" __Y inside its own AVX-512 intrinsics (its bug 105593,
// fixed in GCC 13); the values are the _mm512_undefined_*() the headers use on purpose.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockMXFP4;
using quant::BlockNVFP4;
using quant::BlockQ8_0;

float bits_to_float(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

float hsum(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// 2^(e - 128), the halved E8M0 scale: a normal float for e >= 2, else 2^-127 or 2^-128.
float e8m0_half(uint8_t e) { return bits_to_float(e >= 2 ? static_cast<uint32_t>(e - 1) << 23 : uint32_t{0x00200000} << e); }

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

float ue4m3_half(uint8_t x) { return kUe4m3Half.value[x & 0x7f]; }

// The doubled FP4 levels of codes 0-15 times scale (code 8 is +0). (Vector constants live in
// functions: a namespace-scope one would be initialized with AVX-512 at start-up, on any CPU.)
__m512 fp4_table(float scale) {
    return _mm512_mul_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12), _mm512_set1_ps(scale));
}

void dequantize_mxfp4(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 32) {
        const __m512 table = fp4_table(e8m0_half(b->e));
        const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));  // low nibbles index
        _mm512_storeu_ps(y, _mm512_permutexvar_ps(codes, table));
        _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table));
    }
}

void dequantize_nvfp4(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m512i shifts = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
    const auto* b = reinterpret_cast<const BlockNVFP4*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b)
        for (int s = 0; s < 4; ++s, y += 16) {  // 8 bytes: their low nibbles, then their high nibbles
            uint64_t q;
            std::memcpy(&q, b->qs + 8 * s, 8);
            const __m512i codes = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_set1_epi64x(static_cast<int64_t>(q))), shifts);
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(codes, fp4_table(ue4m3_half(b->d[s]))));
        }
}

// Pairwise sums of level x x into 16 i32, for FP4 codes (bits 0-3 of each byte) and 8-bit
// activations x.
__m512i dot_codes(__m512i codes, __m512i x) {
    const __m512i magnitude = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12));
    const __mmask64 negative = _mm512_test_epi8_mask(codes, _mm512_set1_epi8(8));
    const __m512i signed_x = _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(magnitude, codes), signed_x);
}
__m256i dot_codes(__m256i codes, __m256i x) {
    const __m256i magnitude = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12));
    const __mmask32 negative = _mm256_test_epi8_mask(codes, _mm256_set1_epi8(8));
    const __m256i signed_x = _mm256_mask_sub_epi8(x, negative, _mm256_setzero_si256(), x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_shuffle_epi8(magnitude, codes), signed_x);
}

// The product of each of 4 blocks' halved E8M0 scale with its activation block's f16 scale:
// d x 2^(e - 128), rounded once as the float product is.
__m128 mxfp4_scales4(const BlockMXFP4* b, const BlockQ8_0* a) {
    __m128i h = _mm_cvtsi32_si128(load_u16(a[0].d));
    h = _mm_insert_epi16(h, load_u16(a[1].d), 1);
    h = _mm_insert_epi16(h, load_u16(a[2].d), 2);
    h = _mm_insert_epi16(h, load_u16(a[3].d), 3);
    const __m128i e = _mm_setr_epi32(b[0].e, b[1].e, b[2].e, b[3].e);
    return _mm_scalef_ps(_mm_cvtph_ps(h), _mm_cvtepi32_ps(_mm_sub_epi32(e, _mm_set1_epi32(128))));
}

// The codes of two blocks: low nibbles then high nibbles of each.
__m512i mxfp4_codes2(const BlockMXFP4* b) {
    const __m512i shifts = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(q0)), _mm256_broadcastsi128_si256(q1), 1);
    return _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(0x0f));
}

__m512i load_x2(const BlockQ8_0* a) {  // the codes of two activation blocks
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[0].qs))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[1].qs)), 1);
}

float dot_mxfp4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    const __m512i first = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(2));
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 4 <= n_blocks; i += 4, b += 4, a += 4) {  // 4 blocks, two to a vector
        const __m512 scales = _mm512_castps128_ps512(mxfp4_scales4(b, a));
        acc[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_codes(mxfp4_codes2(b), load_x2(a))), _mm512_permutexvar_ps(first, scales), acc[0]);
        acc[1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_codes(mxfp4_codes2(b + 2), load_x2(a + 2))), _mm512_permutexvar_ps(second, scales), acc[1]);
    }
    __m256 tail = _mm256_setzero_ps();
    for (; i < n_blocks; ++i, ++b, ++a) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
        const __m256i codes = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
        const __m256i sum = dot_codes(codes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs)));
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(e8m0_half(b->e) * half_to_float(a->d)), tail);
    }
    return hsum(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_castps256_ps512(tail)));
}

// ---- MXFP4 sixteen blocks a step, with VBMI ---------------------------------------------
//
// Four blocks at a time, vpermt2b picks out of two 64-byte windows of them (never a byte past)
// each block's 16 bytes of codes into one vector, and likewise codes 0-15 and 16-31 of the
// four activation blocks: after vpdpbusd the lanes 4k..4k+3 hold block k's products, low and
// high nibbles alike. Four such groups' lanes are added up in integers to one lane per block,
// so 16 blocks take one conversion (exact, by 2^23) and one multiply-add by their scales,
// gathered with scalar loads and converted at once.

// Byte indices of vpermt2b: 16 bytes from byte `offset` of each of 4 blocks `stride` apart,
// out of windows at 0 and `second`. ok: every byte found.
struct Runs {
    uint8_t index[64];
    bool ok;
};
constexpr Runs runs16(int stride, int offset, int second) {
    Runs r{{}, true};
    for (int i = 0; i < 64; ++i) {
        const int at = i / 16 * stride + offset + i % 16;
        if (at < 64) {
            r.index[i] = static_cast<uint8_t>(at);
        } else if (at >= second && at < second + 64) {
            r.index[i] = static_cast<uint8_t>(64 + at - second);
        } else {
            r.ok = false;
        }
    }
    return r;
}
constexpr int kQ8Bytes = sizeof(BlockQ8_0);
constexpr Runs kMxfp4Codes = runs16(sizeof(BlockMXFP4), 1, 4 * sizeof(BlockMXFP4) - 64);
constexpr Runs kXLow = runs16(kQ8Bytes, 2, 64), kXHigh = runs16(kQ8Bytes, 18 - 8, 64);  // kXHigh from x + 8
static_assert(kMxfp4Codes.ok && kXLow.ok && kXHigh.ok);

template <const Runs& R> [[gnu::always_inline]] inline __attribute__((target("avx512vbmi"))) __m512i pick(const uint8_t* p, int second) {
    return _mm512_permutex2var_epi8(_mm512_loadu_si512(p), _mm512_loadu_si512(R.index), _mm512_loadu_si512(p + second));
}

// Lane b: the sum of lanes 4k..4k+3 of s[g], b = 4g + k (pairs added twice, across vpermt2d).
[[gnu::always_inline]] inline __m512i merge16(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
    const __m512i a = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29), b = _mm512_add_epi32(a, _mm512_set1_epi32(2));
    const __m512i s01 = _mm512_add_epi32(_mm512_permutex2var_epi32(s0, a, s1), _mm512_permutex2var_epi32(s0, b, s1));
    const __m512i s23 = _mm512_add_epi32(_mm512_permutex2var_epi32(s2, a, s3), _mm512_permutex2var_epi32(s2, b, s3));
    const __m512i c = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), d = _mm512_add_epi32(c, _mm512_set1_epi32(1));
    return _mm512_add_epi32(_mm512_permutex2var_epi32(s01, c, s23), _mm512_permutex2var_epi32(s01, d, s23));
}

// Exact for |s| < 2^22: 1.5 x 2^23 + s has unit steps.
[[gnu::always_inline]] inline __m512 to_float(__m512i s) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    return _mm512_sub_ps(_mm512_castsi512_ps(_mm512_add_epi32(s, _mm512_castps_si512(magic))), magic);
}

// The f16 scales of 16 activation blocks as floats (scalar loads: the vector units are the
// bottleneck).
[[gnu::always_inline]] inline uint64_t x_scales4(const BlockQ8_0* a) {
    return uint64_t{load_u16(a[0].d)} | uint64_t{load_u16(a[1].d)} << 16 | uint64_t{load_u16(a[2].d)} << 32 | uint64_t{load_u16(a[3].d)} << 48;
}
[[gnu::always_inline]] inline __m512 x_scales16(const BlockQ8_0* a) {
    return _mm512_cvtph_ps(_mm256_setr_epi64x(static_cast<int64_t>(x_scales4(a)), static_cast<int64_t>(x_scales4(a + 4)),
                                              static_cast<int64_t>(x_scales4(a + 8)), static_cast<int64_t>(x_scales4(a + 12))));
}
// The E8M0 bytes of 16 MXFP4 blocks (bytes 0, 17, 34, 51 of each group's first window).
struct ExponentPick {
    uint8_t index[64];
    constexpr ExponentPick() : index() {
        for (int i = 0; i < 8; ++i) index[i] = static_cast<uint8_t>((i >= 4 ? 64 : 0) + i % 4 * sizeof(BlockMXFP4));
    }
};
constexpr ExponentPick kExponents;
[[gnu::always_inline]] inline __attribute__((target("avx512vbmi"))) __m128i exponents16(const uint8_t* w) {
    constexpr int k = 4 * sizeof(BlockMXFP4);
    const __m512i index = _mm512_loadu_si512(kExponents.index);
    const __m512i a = _mm512_permutex2var_epi8(_mm512_loadu_si512(w), index, _mm512_loadu_si512(w + k));
    const __m512i b = _mm512_permutex2var_epi8(_mm512_loadu_si512(w + 2 * k), index, _mm512_loadu_si512(w + 3 * k));
    return _mm_unpacklo_epi64(_mm512_castsi512_si128(a), _mm512_castsi512_si128(b));
}

[[gnu::always_inline]] inline __attribute__((target("avx512vbmi"))) __m512i mxfp4_group(const uint8_t* w, const uint8_t* x) {
    const __m512i q = pick<kMxfp4Codes>(w, 4 * sizeof(BlockMXFP4) - 64);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i lo = _mm512_and_si512(q, low4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
    const __m512i xl = pick<kXLow>(x, 64), xh = pick<kXHigh>(x + 8, 64);
    const __m512i magnitude = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12));
    const __m512i eight = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
    const __m512i sxl = _mm512_mask_sub_epi8(xl, _mm512_test_epi8_mask(lo, eight), zero, xl);
    const __m512i sxh = _mm512_mask_sub_epi8(xh, _mm512_test_epi8_mask(hi, eight), zero, xh);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, _mm512_shuffle_epi8(magnitude, lo), sxl), _mm512_shuffle_epi8(magnitude, hi), sxh);
}

__attribute__((target("avx512vbmi"))) float dot_mxfp4_vbmi(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    constexpr int kW = sizeof(BlockMXFP4);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n_blocks; i += 16, w += 16 * kW, x += 16 * kQ8Bytes) {
        const __m512i s = merge16(mxfp4_group(w, x), mxfp4_group(w + 4 * kW, x + 4 * kQ8Bytes), mxfp4_group(w + 8 * kW, x + 8 * kQ8Bytes),
                                  mxfp4_group(w + 12 * kW, x + 12 * kQ8Bytes));
        const __m512 exponent = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(exponents16(w)), _mm512_set1_epi32(128)));
        // dx x 2^(e - 128), rounded once as the float product dx x (halved E8M0 scale) is.
        acc = _mm512_fmadd_ps(to_float(s), _mm512_scalef_ps(x_scales16(reinterpret_cast<const BlockQ8_0*>(x)), exponent), acc);
    }
    return hsum(acc) + dot_mxfp4(w, x, n_blocks - i);
}

float dot_nvfp4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockNVFP4*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    const __m512i shifts = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    const __m512i order = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);  // sub-block s: low nibbles of qs[8s..], then high
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i scale_index = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < n_blocks; ++i, ++b, a += 2) {
        const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs)));
        const __m512i codes = _mm512_permutexvar_epi64(order, _mm512_and_si512(_mm512_srlv_epi64(q, shifts), low4));
        const __m512i xs = load_x2(a);
        const float d0 = half_to_float(a[0].d), d1 = half_to_float(a[1].d);
        const __m128 scales = _mm_setr_ps(ue4m3_half(b->d[0]) * d0, ue4m3_half(b->d[1]) * d0, ue4m3_half(b->d[2]) * d1, ue4m3_half(b->d[3]) * d1);
        const __m512 scale = _mm512_permutexvar_ps(scale_index, _mm512_castps128_ps512(scales));
        acc[i & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_codes(codes, xs)), scale, acc[i & 1]);
    }
    return hsum(_mm512_add_ps(acc[0], acc[1]));
}

}  // namespace

void add_microscaling(detail::Table& t) {
    t.set_dequantize(TypeId::MXFP4, dequantize_mxfp4);
    t.set_dot(TypeId::MXFP4, detail::cpu_has_avx512_vbmi() ? dot_mxfp4_vbmi : dot_mxfp4);
    t.set_dequantize(TypeId::NVFP4, dequantize_nvfp4);
    t.set_dot(TypeId::NVFP4, dot_nvfp4);
}

}  // namespace kernels::avx512
