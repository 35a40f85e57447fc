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
#include <immintrin.h>

#include <cstdint>

#include "microscaling_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockMXFP4;
using quant::BlockNVFP4;
using quant::BlockQ8_0;

constexpr int kQ8Bytes = sizeof(BlockQ8_0);

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
            const __m512i codes = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_set1_epi64x(static_cast<int64_t>(load_u64(b->qs + 8 * s)))), shifts);
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(codes, fp4_table(ue4m3_half(b->d[s]))));
        }
}

// The doubled FP4 levels' magnitudes by code (bits 0-2; bit 3 is the sign).
__m128i fp4_magnitudes() { return _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12); }

// Pairwise sums of level x x into 16 i32, for FP4 codes (bits 0-3 of each byte) and 8-bit
// activations x.
__m512i dot_codes(__m512i codes, __m512i x) {
    const __m512i magnitude = _mm512_broadcast_i32x4(fp4_magnitudes());
    const __mmask64 negative = _mm512_test_epi8_mask(codes, _mm512_set1_epi8(8));
    const __m512i signed_x = _mm512_mask_sub_epi8(x, negative, _mm512_setzero_si512(), x);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(magnitude, codes), signed_x);
}
__m256i dot_codes(__m256i codes, __m256i x) {
    const __m256i magnitude = _mm256_broadcastsi128_si256(fp4_magnitudes());
    const __mmask32 negative = _mm256_test_epi8_mask(codes, _mm256_set1_epi8(8));
    const __m256i signed_x = _mm256_mask_sub_epi8(x, negative, _mm256_setzero_si256(), x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_shuffle_epi8(magnitude, codes), signed_x);
}

// The product of each of 4 blocks' halved E8M0 scale with its activation block's f16 scale:
// d x 2^(e - 128), rounded once as the float product is.
__m128 mxfp4_scales4(const BlockMXFP4* b, const BlockQ8_0* a) {
    const __m128i e = _mm_setr_epi32(b[0].e, b[1].e, b[2].e, b[3].e);
    return _mm_scalef_ps(f16_fields4_ps<kQ8Bytes>(a->d), _mm_cvtepi32_ps(_mm_sub_epi32(e, _mm_set1_epi32(128))));
}

// The codes of two blocks: low nibbles then high nibbles of each.
__m512i mxfp4_codes2(const BlockMXFP4* b) {
    const __m512i shifts = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs));
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(q0)), _mm256_broadcastsi128_si256(q1), 1);
    return _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(0x0f));
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
        const __m512i s01 = dot_codes(mxfp4_codes2(b), load_2x32(a[0].qs, a[1].qs));
        const __m512i s23 = dot_codes(mxfp4_codes2(b + 2), load_2x32(a[2].qs, a[3].qs));
        acc[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), _mm512_permutexvar_ps(first, scales), acc[0]);
        acc[1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s23), _mm512_permutexvar_ps(second, scales), acc[1]);
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
constexpr Runs kMxfp4Codes = runs16(sizeof(BlockMXFP4), 1, 4 * sizeof(BlockMXFP4) - 64);
constexpr Runs kXLow = runs16(kQ8Bytes, 2, 64), kXHigh = runs16(kQ8Bytes, 18 - 8, 64);  // kXHigh from x + 8
static_assert(kMxfp4Codes.ok && kXLow.ok && kXHigh.ok);

template <const Runs& R> [[gnu::always_inline]] inline __attribute__((target("avx512vbmi"))) __m512i pick(const uint8_t* p, int second) {
    return _mm512_permutex2var_epi8(_mm512_loadu_si512(p), _mm512_loadu_si512(R.index), _mm512_loadu_si512(p + second));
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
    const __m512i magnitude = _mm512_broadcast_i32x4(fp4_magnitudes());
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
        acc = _mm512_fmadd_ps(small_to_float(s), _mm512_scalef_ps(f16_fields16<kQ8Bytes>(x), exponent), acc);
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
        const __m512i xs = load_2x32(a[0].qs, a[1].qs);
        const __m128 scales = nvfp4_scales(*b, a);
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
