// floats, avx512 path: F32, F16 and BF16 tensors; f32 to f16 / bf16; the f32 dot product; and
// the quantization of activations (Q8_0, Q8_1, Q8_K, F16, BF16), each equal to the scalar
// path (quant/decode.h, quant::f32_to_f16 / f32_to_bf16, scalar.cpp) bit for bit.
//
// Tails shorter than a vector use masked loads and stores, so every count is served.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "floats_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;

__mmask16 tail16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

// ---- f32 to f16 / bf16 ------------------------------------------------------------------

// vcvtps2ph rounding to nearest even is quant::f32_to_f16 exactly (checked for all 2^32
// inputs): subnormal results rounded, overflow to infinity, NaN quieted with the top 10
// mantissa bits kept.
void to_f16(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), kNearest);
        const __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(x + i + 16), kNearest);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), a);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i + 16), b);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
        _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), kNearest));
    }
}

// Round to nearest even on the bits (vcvtneps2bf16 would flush subnormal inputs to zero):
// bits + 0x7fff + (bit 16), top half; NaN keeps its top bits and is quieted (| 0x40).
__m512i bf16_bits(__m512 v) {
    const __m512i x = _mm512_castps_si512(v);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), odd), 16);
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
}

void to_bf16(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512i a = bf16_bits(_mm512_loadu_ps(x + i));
        const __m512i b = bf16_bits(_mm512_loadu_ps(x + i + 16));
        // Words 0..15 from a then b, in order: the low halves of each dword.
        const __m512i idx = _mm512_set_epi16(62, 60, 58, 56, 54, 52, 50, 48, 46, 44, 42, 40, 38, 36, 34, 32, 30, 28, 26, 24, 22, 20, 18, 16, 14,
                                             12, 10, 8, 6, 4, 2, 0);
        _mm512_storeu_si512(y + i, _mm512_permutex2var_epi16(a, idx, b));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
        _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtepi32_epi16(bf16_bits(_mm512_maskz_loadu_ps(m, x + i))));
    }
}

// ---- Dequantization ---------------------------------------------------------------------

// 16 halves to floats as quant::half_bits_to_float: vcvtph2ps, except that it quiets
// signalling NaNs (quiet bit 0x200 clear), which the reference keeps: clear the float's quiet
// bit again for those lanes.
__m512 halves_to_floats(__m256i h) {
    const __m512 f = _mm512_cvtph_ps(h);
    const __mmask16 nan = _mm256_cmpgt_epu16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7fff)), _mm256_set1_epi16(0x7c00));
    const __mmask16 signalling = _mm256_mask_testn_epi16_mask(nan, h, _mm256_set1_epi16(0x200));
    return _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(f), signalling, _mm512_castps_si512(f), _mm512_set1_epi32(0x00400000)));
}

void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(dst + i, halves_to_floats(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i))));
        _mm512_storeu_ps(dst + i + 16, halves_to_floats(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i + 32))));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, halves_to_floats(_mm256_maskz_loadu_epi16(m, src + 2 * i)));
    }
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i)));
        const __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i + 32)));
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(a, 16));
        _mm512_storeu_si512(dst + i + 16, _mm512_slli_epi32(b, 16));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
        const __m512i a = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + 2 * i));
        _mm512_mask_storeu_epi32(dst + i, m, _mm512_slli_epi32(a, 16));
    }
}

// ---- Dot products -----------------------------------------------------------------------

// Four accumulators of 16 lanes, summed in a fixed order: deterministic for any alignment.
float sum_accumulators(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float dot_f32(const float* a, const float* b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : tail16(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return sum_accumulators(s0, s1, s2, s3);
}

// F16 weights with F16 activations: both converted (NaN quieting does not matter here), 8
// at a time: on Zen 4 two 256-bit vcvtph2ps run faster than one 512-bit.
float dot_f16(const uint8_t* w, const uint8_t* x, int64_t n) {
    auto load = [](const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k) s[k] = _mm256_fmadd_ps(load(w + 2 * i + 16 * k), load(x + 2 * i + 16 * k), s[k]);
    for (; i < n; i += 8) {
        const __mmask8 m = n - i >= 8 ? __mmask8(0xff) : static_cast<__mmask8>((1u << (n - i)) - 1);
        s[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, w + 2 * i)), _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, x + 2 * i)), s[0]);
    }
    const __m256 t = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
    return _mm512_reduce_add_ps(_mm512_insertf32x8(_mm512_setzero_ps(), t, 0));
}

// BF16 without AVX512_BF16: a bf16 is the top half of a float, so interleaving zero words
// below each gives floats; both sides are interleaved alike, so the pairs still meet.
float dot_bf16(const uint8_t* w, const uint8_t* x, int64_t n) {
    const __m512i zero = _mm512_setzero_si512();
    auto lo = [&](__m512i v) { return _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, v)); };
    auto hi = [&](__m512i v) { return _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, v)); };
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i a = _mm512_loadu_si512(w + 2 * i), b = _mm512_loadu_si512(x + 2 * i);
        const __m512i c = _mm512_loadu_si512(w + 2 * i + 64), d = _mm512_loadu_si512(x + 2 * i + 64);
        s0 = _mm512_fmadd_ps(lo(a), lo(b), s0);
        s1 = _mm512_fmadd_ps(hi(a), hi(b), s1);
        s2 = _mm512_fmadd_ps(lo(c), lo(d), s2);
        s3 = _mm512_fmadd_ps(hi(c), hi(d), s3);
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
        const __m512i a = _mm512_maskz_loadu_epi16(m, w + 2 * i), b = _mm512_maskz_loadu_epi16(m, x + 2 * i);
        s0 = _mm512_fmadd_ps(lo(a), lo(b), s0);
        s1 = _mm512_fmadd_ps(hi(a), hi(b), s1);
    }
    return sum_accumulators(s0, s1, s2, s3);
}

// With AVX512_BF16: vdpbf16ps multiplies 32 pairs and adds them into 16 lanes.
__attribute__((target("avx512bf16"))) float dot_bf16_native(const uint8_t* w, const uint8_t* x, int64_t n) {
    auto load = [](const uint8_t* p) { return (__m512bh)_mm512_loadu_si512(p); };
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        s0 = _mm512_dpbf16_ps(s0, load(w + 2 * i), load(x + 2 * i));
        s1 = _mm512_dpbf16_ps(s1, load(w + 2 * i + 64), load(x + 2 * i + 64));
        s2 = _mm512_dpbf16_ps(s2, load(w + 2 * i + 128), load(x + 2 * i + 128));
        s3 = _mm512_dpbf16_ps(s3, load(w + 2 * i + 192), load(x + 2 * i + 192));
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
        s0 = _mm512_dpbf16_ps(s0, (__m512bh)_mm512_maskz_loadu_epi16(m, w + 2 * i), (__m512bh)_mm512_maskz_loadu_epi16(m, x + 2 * i));
    }
    return sum_accumulators(s0, s1, s2, s3);
}

// ---- Activations: scalar.cpp's quantization, 16 lanes at a time -------------------------

// max|x| over the vectors as scalar.cpp's std::max(amax, |x|): a NaN never enters (maxps
// returns its second operand, the running maximum, when either is NaN).
__m512 running_max(__m512 v, __m512 amax) { return _mm512_max_ps(_mm512_abs_ps(v), amax); }

// round_half_away(v) as scalar.cpp computes it (truncate |v|, add one when the dropped part
// is >= 0.5, negate when v < 0), in 32-bit integers that wrap as the scalar ones do; the
// caller keeps the low byte, as the scalar int8 cast does.
__m512i round_half_away(__m512 v) {
    const __m512 a = _mm512_abs_ps(v);
    const __m512i t = _mm512_cvttps_epi32(a);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, _mm512_cvtepi32_ps(t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i r = _mm512_mask_add_epi32(t, up, t, _mm512_set1_epi32(1));
    const __mmask16 negative = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_sub_epi32(r, negative, _mm512_setzero_si512(), r);
}

// The 32 codes of a block of 32 floats (d and its inverse from scale_of) as bytes.
__m256i codes32(const float* x, float inverse) {
    const __m512 id = _mm512_set1_ps(inverse);
    const __m128i a = _mm512_cvtepi32_epi8(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(x), id)));
    const __m128i b = _mm512_cvtepi32_epi8(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(x + 16), id)));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

float amax32(const float* x) {
    return _mm512_reduce_max_ps(running_max(_mm512_loadu_ps(x + 16), running_max(_mm512_loadu_ps(x), _mm512_setzero_ps())));
}

// Lane b: the maximum of the 16 lanes of v[b] (a transposing tree: pairs of vectors
// merged by vpermt2ps, halving the lanes per vector each level). Max is exact and the
// lanes hold no NaN, so the order does not matter.
__m512 lane_maxima(__m512 (&v)[16]) {
    // Level with runs of s lanes: output lane j takes lanes (j / s) x 2s + j % s and s more
    // of the pair (indices 16-31: the second vector).
    const __m512i runs[4] = {_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                             _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27),
                             _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29),
                             _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)};
    for (int level = 0, s = 8, n = 16; level < 4; ++level, s /= 2, n /= 2) {
        const __m512i lo = runs[level], hi = _mm512_add_epi32(lo, _mm512_set1_epi32(s));
        for (int k = 0; k < n / 2; ++k)
            v[k] = _mm512_max_ps(_mm512_permutex2var_ps(v[2 * k], lo, v[2 * k + 1]), _mm512_permutex2var_ps(v[2 * k], hi, v[2 * k + 1]));
    }
    return v[0];
}

// Q8_0 activations 16 blocks a step (quantize_q8_0 in floats_simd.h), their f16 scales d and
// inverses 1 / d: the maxima by a transposing tree, d and 1 / d by two vector divisions (IEEE
// division: the scalar path's bits), the 16 f16 scales converted at once.
[[gnu::always_inline]] inline void q8_0_scales16(const float* x, uint16_t* half, float* inverse) {
    __m512 m[16];
    for (int k = 0; k < 16; ++k) m[k] = running_max(_mm512_loadu_ps(x + 32 * k + 16), running_max(_mm512_loadu_ps(x + 32 * k), _mm512_setzero_ps()));
    const __m512 d = _mm512_div_ps(lane_maxima(m), _mm512_set1_ps(127.0f));
    const __mmask16 nonzero = _mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    _mm512_store_ps(inverse, _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0f), d));
    _mm256_store_si256(reinterpret_cast<__m256i*>(half), _mm512_cvtps_ph(d, kNearest));
}

// Q8_K activations (quantize_q8_k in floats_simd.h): max |x| of a block's 256 values, then
// its codes and the sums of each 16.
[[gnu::always_inline]] inline float amax256(const float* x) {
    __m512 m0 = _mm512_setzero_ps(), m1 = m0;
    for (int j = 0; j < 256; j += 32) {
        m0 = running_max(_mm512_loadu_ps(x + j), m0);
        m1 = running_max(_mm512_loadu_ps(x + j + 16), m1);
    }
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

[[gnu::always_inline]] inline void q8_k_codes(const float* x, float id, quant::BlockQ8_K& b) {
    const __m512 inverse = _mm512_set1_ps(id);
    __m512i sums[4];
    for (int k = 0; k < 4; ++k) {  // 64 codes: groups 4k .. 4k + 3
        auto group = [&](int g) { return _mm512_cvtepi32_epi8(round_half_away(_mm512_mul_ps(_mm512_loadu_ps(x + 64 * k + 16 * g), inverse))); };
        __m512i q = _mm512_castsi128_si512(group(0));
        q = _mm512_inserti32x4(q, group(1), 1);
        q = _mm512_inserti32x4(q, group(2), 2);
        q = _mm512_inserti32x4(q, group(3), 3);
        _mm512_storeu_si512(b.qs + 64 * k, q);
        // Sums of (code + 128) over each 8 bytes: qwords 2g and 2g + 1 hold group 4k + g.
        sums[k] = _mm512_sad_epu8(_mm512_xor_si512(q, _mm512_set1_epi8(-128)), _mm512_setzero_si512());
    }
    // Lane g of a: [group g, group 4 + g]; of c: [group 8 + g, group 12 + g].
    const __m512i a = _mm512_add_epi64(_mm512_unpacklo_epi64(sums[0], sums[1]), _mm512_unpackhi_epi64(sums[0], sums[1]));
    const __m512i c = _mm512_add_epi64(_mm512_unpacklo_epi64(sums[2], sums[3]), _mm512_unpackhi_epi64(sums[2], sums[3]));
    // Group g < 4 is word 8g of a, group 4 + g word 8g + 4; groups 8..15 likewise in c (words 32..63).
    const __m512i order = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 52, 44, 36, 56, 48, 40, 32, 28, 20, 12, 4, 24,
                                           16, 8, 0);
    const __m512i words = _mm512_sub_epi16(_mm512_permutex2var_epi16(a, order, c), _mm512_set1_epi16(16 * 128));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.bsums), _mm512_castsi512_si256(words));
}

}  // namespace

void add_floats(detail::Table& t) {
    t.to_f16 = to_f16;
    t.to_bf16 = to_bf16;
    t.dot_f32 = dot_f32;
    t.set_dequantize(TypeId::F32, dequantize_f32);
    t.set_dequantize(TypeId::F16, dequantize_f16);
    t.set_dequantize(TypeId::BF16, dequantize_bf16);
    t.set_dot(TypeId::F32, dot_f32_blocks<dot_f32>);
    t.set_dot(TypeId::F16, dot_f16);
    t.set_dot(TypeId::BF16, detail::cpu_has_avx512_bf16() ? dot_bf16_native : dot_bf16);
    t.set_quantize(TypeId::Q8_0, quantize_q8_0<16, q8_0_scales16, amax32, codes32>);
    t.set_quantize(TypeId::Q8_1, quantize_q8_1<amax32, codes32>);
    t.set_quantize(TypeId::Q8_K, quantize_q8_k<amax256, q8_k_codes>);
    t.set_quantize(TypeId::F16, half_activations<to_f16>);
    t.set_quantize(TypeId::BF16, half_activations<to_bf16>);
}

}  // namespace kernels::avx512
