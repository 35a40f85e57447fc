// Microscaling formats (MXFP4, NVFP4), AVX2 path.
//
// Dequantization: a block (MXFP4) or sub-block (NVFP4) has 16 possible values, the FP4
// codes' doubled levels times the halved scale. Each one computes them with the scalar
// decoder's operation (float(level) x scale, same operand order) into two 8-float tables,
// codes 0-7 and 8-15, and each output is a vpermps lookup in both and a blend on the code's
// sign bit: the same bits as quant/decode.h by construction. The scales are powers of two
// (E8M0) or small floats (UE4M3), never NaN, so they are built exactly in integers.
//
// Dot products: codes to signed bytes through a vpshufb table of the doubled levels, then
// |w| x (x with w's sign) by maddubs; one float multiply-add per activation block.
#include <immintrin.h>

#include <cstdint>

#include "microscaling_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx2 {

namespace {

using gguf::TypeId;

using quant::BlockMXFP4;
using quant::BlockNVFP4;
using quant::BlockQ8_0;

struct Fp4Table {
    __m256 positive, negative;
};
// The doubled FP4 levels of codes 0-7 and 8-15 (their negatives; code 8 is +0) times scale.
// (Vector constants live in functions: a namespace-scope one would be initialized with
// AVX instructions at start-up, on any CPU.)
Fp4Table fp4_table(float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    return {_mm256_mul_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 6, 8, 12), s), _mm256_mul_ps(_mm256_setr_ps(0, -1, -2, -3, -4, -6, -8, -12), s)};
}

// table[code] for 8 codes held in bits 0-3 of each dword (higher bits ignored).
__m256 lookup(const Fp4Table& t, __m256i codes) {
    const __m256 negative = _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28));  // the code's bit 3 on top
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.positive, codes), _mm256_permutevar8x32_ps(t.negative, codes), negative);
}

// 16 floats: the low nibbles of the 8 bytes at q, then their high nibbles.
void store_nibbles8(float* y, const Fp4Table& t, const uint8_t* q) {
    const __m256i codes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
    _mm256_storeu_ps(y, lookup(t, codes));
    _mm256_storeu_ps(y + 8, lookup(t, _mm256_srli_epi32(codes, 4)));
}

void dequantize_mxfp4(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 32) {
        const Fp4Table t = fp4_table(e8m0_half(b->e));
        const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs)));
        const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + 8)));
        _mm256_storeu_ps(y, lookup(t, lo));
        _mm256_storeu_ps(y + 8, lookup(t, hi));
        _mm256_storeu_ps(y + 16, lookup(t, _mm256_srli_epi32(lo, 4)));
        _mm256_storeu_ps(y + 24, lookup(t, _mm256_srli_epi32(hi, 4)));
    }
}

void dequantize_nvfp4(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockNVFP4*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b)
        for (int s = 0; s < 4; ++s, y += 16) store_nibbles8(y, fp4_table(ue4m3_half(b->d[s])), b->qs + 8 * s);
}

// The doubled FP4 levels of the codes in each byte of `codes` (0-15), as signed bytes.
__m256i levels_of(__m256i codes) {
    const __m256i levels = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,  //
                                            0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
    return _mm256_shuffle_epi8(levels, codes);
}

// Pairwise sums of w x x into 8 i32: w the signed levels, x the activations.
__m256i dot_bytes(__m256i w, __m256i x) {
    const __m256i sum16 = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));  // |sum| <= 2 x 12 x 127
    return _mm256_madd_epi16(sum16, _mm256_set1_epi16(1));
}

// e8m0_half of 4 exponents, built in integers as above.
__m128 e8m0_half4(__m128i e) {
    const __m128i normal = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
    const __m128i tiny = _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e);
    return _mm_castsi128_ps(_mm_blendv_epi8(tiny, normal, _mm_cmpgt_epi32(e, _mm_set1_epi32(1))));
}

// Sum over one block of level x x, as 8 i32.
__m256i mxfp4_block(const BlockMXFP4& b, const BlockQ8_0& a) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m256i codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low4), _mm_and_si128(q, low4));
    return dot_bytes(levels_of(codes), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
}

float dot_mxfp4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockMXFP4*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 4 <= n_blocks; i += 4, b += 4, a += 4) {
        const __m128 s = _mm_mul_ps(e8m0_half4(_mm_setr_epi32(b[0].e, b[1].e, b[2].e, b[3].e)), f16_fields4_ps<sizeof(BlockQ8_0)>(a->d));
        const __m256 scales = _mm256_castps128_ps256(s);
        for (int j = 0; j < 4; ++j)
            acc[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mxfp4_block(b[j], a[j])), _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(j)), acc[j & 1]);
    }
    for (; i < n_blocks; ++i, ++b, ++a)
        acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mxfp4_block(*b, *a)), _mm256_set1_ps(e8m0_half(b->e) * half_to_float(a->d)), acc[0]);
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

float dot_nvfp4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockNVFP4*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n_blocks; ++i, ++b, a += 2) {
        // Sub-block s is the low nibbles of qs[8s .. 8s + 7], then their high nibbles: per
        // lane, sub-blocks 0 and 2 in `first`, 1 and 3 in `second`.
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs));
        const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        const __m256i first = _mm256_unpacklo_epi64(lo, hi), second = _mm256_unpackhi_epi64(lo, hi);
        const __m256i x_first = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(a[1].qs), reinterpret_cast<const __m128i*>(a[0].qs));
        const __m256i x_second =
            _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(a[1].qs + 16), reinterpret_cast<const __m128i*>(a[0].qs + 16));
        const __m256i sum_first = dot_bytes(levels_of(first), x_first);     // 4 lanes each: sub-blocks 0, 2
        const __m256i sum_second = dot_bytes(levels_of(second), x_second);  // 1, 3
        const __m128 scales = nvfp4_scales(*b, a);
        const __m256 s = _mm256_set_m128(scales, scales);
        acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_first), _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2)), acc[0]);
        acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_second), _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3)), acc[1]);
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

}  // namespace

void add_microscaling(detail::Table& t) {
    t.set_dequantize(TypeId::MXFP4, dequantize_mxfp4);
    t.set_dot(TypeId::MXFP4, dot_mxfp4);
    t.set_dequantize(TypeId::NVFP4, dequantize_nvfp4);
    t.set_dot(TypeId::NVFP4, dot_nvfp4);
}

}  // namespace kernels::avx2
