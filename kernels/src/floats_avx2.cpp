// floats, avx2 path: F32, F16 and BF16 tensors; f32 to f16 / bf16; the f32 dot product; and
// the quantization of activations (Q8_0, Q8_1, Q8_K, F16, BF16), each equal to the scalar
// path (quant/decode.h, quant::f32_to_f16 / f32_to_bf16, scalar.cpp) bit for bit.
//
// Tails shorter than a vector go through a zero-padded copy (AVX2 has no 16-bit masked
// loads), converted by the same vector code.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "floats_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx2 {

namespace {

using gguf::TypeId;

// Runs `body(x, y, count)` on full groups of `Group` elements in place and on the tail
// through padded copies of `Group` elements (x and y element types From and To).
template <int Group, class From, class To, class Body> void with_tail(const From* x, To* y, int64_t n, Body body) {
    const int64_t full = n / Group * Group;
    body(x, y, full);
    if (full == n) return;
    From xin[Group] = {};
    To yout[Group];
    std::memcpy(xin, x + full, static_cast<size_t>(n - full) * sizeof(From));
    body(xin, yout, int64_t{Group});
    std::memcpy(y + full, yout, static_cast<size_t>(n - full) * sizeof(To));
}

// ---- f32 to f16 / bf16 ------------------------------------------------------------------

// vcvtps2ph rounding to nearest even is quant::f32_to_f16 exactly (checked for all 2^32
// inputs): subnormal results rounded, overflow to infinity, NaN quieted with the top 10
// mantissa bits kept.
void to_f16(const float* x, uint16_t* y, int64_t n) {
    with_tail<8>(x, y, n, [](const float* in, uint16_t* out, int64_t count) {
        for (int64_t i = 0; i < count; i += 8)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), kNearest));
    });
}

// Round to nearest even on the bits (as quant::f32_to_bf16): bits + 0x7fff + (bit 16), top
// half; NaN keeps its top bits and is quieted (| 0x40).
__m256i bf16_bits(__m256 v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), odd), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

void to_bf16(const float* x, uint16_t* y, int64_t n) {
    with_tail<16>(x, y, n, [](const float* in, uint16_t* out, int64_t count) {
        for (int64_t i = 0; i < count; i += 16) {
            const __m256i packed = _mm256_packus_epi32(bf16_bits(_mm256_loadu_ps(in + i)), bf16_bits(_mm256_loadu_ps(in + i + 8)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(packed, 0xd8));
        }
    });
}

// ---- Dequantization ---------------------------------------------------------------------

// 8 halves to floats as quant::half_bits_to_float: vcvtph2ps, except that it quiets
// signalling NaNs (quiet bit 0x200 clear), which the reference keeps: where a result is NaN
// and the half's quiet bit was clear, clear the float's quiet bit again.
__m256 requiet(__m256 f, __m128i h) {
    const __m256 nan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
    const __m256i quiet_clear = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_cvtepu16_epi32(h), _mm256_set1_epi32(0x200)), _mm256_setzero_si256());
    const __m256i flip = _mm256_and_si256(_mm256_and_si256(_mm256_castps_si256(nan), quiet_clear), _mm256_set1_epi32(0x00400000));
    return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(f), flip));
}

// 32 halves at a time; the NaN repair only when one of them is NaN.
void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
    with_tail<32>(reinterpret_cast<const uint16_t*>(src), dst, n, [](const uint16_t* in, float* out, int64_t count) {
        for (int64_t i = 0; i < count; i += 32) {
            __m128i h[4];
            __m256 f[4];
            for (int k = 0; k < 4; ++k) {
                h[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i + 8 * k));
                f[k] = _mm256_cvtph_ps(h[k]);
            }
            const __m256 any = _mm256_or_ps(_mm256_cmp_ps(f[0], f[1], _CMP_UNORD_Q), _mm256_cmp_ps(f[2], f[3], _CMP_UNORD_Q));
            if (!_mm256_testz_ps(any, any))
                for (int k = 0; k < 4; ++k) f[k] = requiet(f[k], h[k]);
            for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + i + 8 * k, f[k]);
        }
    });
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
    with_tail<8>(reinterpret_cast<const uint16_t*>(src), dst, n, [](const uint16_t* in, float* out, int64_t count) {
        for (int64_t i = 0; i < count; i += 8) {
            const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_slli_epi32(v, 16));
        }
    });
}

// ---- Dot products -----------------------------------------------------------------------

// Four accumulators of 8 lanes, summed in a fixed order: deterministic for any alignment.
struct Sums {
    __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float total() const {
        return hsum(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
    }
};

float dot_f32(const float* a, const float* b, int64_t n) {
    Sums s;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; ++k) s.s[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k), s.s[k]);
    for (; i < n; i += 8) {
        const int64_t left = n - i < 8 ? n - i : 8;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        s.s[0] = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s.s[0]);
    }
    return s.total();
}

// 16-bit rows: whole groups of 32 values in place, the rest through zero-padded copies.
template <class Group> float dot_16bit(const uint8_t* w, const uint8_t* x, int64_t n, Group group) {
    Sums s;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) group(w + 2 * i, x + 2 * i, s);
    if (i < n) {
        uint8_t wt[64] = {}, xt[64] = {};
        std::memcpy(wt, w + 2 * i, static_cast<size_t>(n - i) * 2);
        std::memcpy(xt, x + 2 * i, static_cast<size_t>(n - i) * 2);
        group(wt, xt, s);
    }
    return s.total();
}

float dot_f16(const uint8_t* w, const uint8_t* x, int64_t n) {
    return dot_16bit(w, x, n, [](const uint8_t* wp, const uint8_t* xp, Sums& s) {
        for (int k = 0; k < 4; ++k) {
            const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp + 16 * k)));
            const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xp + 16 * k)));
            s.s[k] = _mm256_fmadd_ps(a, b, s.s[k]);
        }
    });
}

// A bf16 is the top half of a float, so interleaving zero words below each gives floats;
// both sides are interleaved alike, so the pairs still meet.
float dot_bf16(const uint8_t* w, const uint8_t* x, int64_t n) {
    return dot_16bit(w, x, n, [](const uint8_t* wp, const uint8_t* xp, Sums& s) {
        const __m256i zero = _mm256_setzero_si256();
        for (int k = 0; k < 2; ++k) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 32 * k));
            const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32 * k));
            s.s[2 * k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, a)), _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, b)),
                                         s.s[2 * k]);
            s.s[2 * k + 1] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, a)),
                                             _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, b)), s.s[2 * k + 1]);
        }
    });
}

// ---- Activations: scalar.cpp's quantization, 8 lanes at a time --------------------------

// max|x| as scalar.cpp's std::max(amax, |x|): a NaN never enters (maxps returns its second
// operand, the running maximum, when either is NaN).
__m256 running_max(__m256 v, __m256 amax) { return _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), amax); }

float horizontal_max(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// round_half_away(v) as scalar.cpp computes it (truncate |v|, add one when the dropped part
// is >= 0.5, negate when v < 0), in 32-bit integers that wrap as the scalar ones do.
__m256i round_half_away(__m256 v) {
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
    const __m256i t = _mm256_cvttps_epi32(a);
    const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(_mm256_sub_ps(a, _mm256_cvtepi32_ps(t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ));
    const __m256i r = _mm256_sub_epi32(t, up);
    const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_sub_epi32(_mm256_xor_si256(r, negative), negative);
}

// The low bytes of 32 codes (4 x 8 lanes), in order: the scalar int8 cast.
__m256i low_bytes(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
    const __m256i byte = _mm256_set1_epi32(0xff);
    const __m256i a = _mm256_packus_epi32(_mm256_and_si256(r0, byte), _mm256_and_si256(r1, byte));
    const __m256i b = _mm256_packus_epi32(_mm256_and_si256(r2, byte), _mm256_and_si256(r3, byte));
    return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

float amax32(const float* x) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 32; j += 8) m = running_max(_mm256_loadu_ps(x + j), m);
    return horizontal_max(m);
}

__m256i codes32(const float* x, float inverse) {
    const __m256 id = _mm256_set1_ps(inverse);
    auto code = [&](int j) { return round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + j), id)); };
    return low_bytes(code(0), code(8), code(16), code(24));
}

// Lane b: the maximum of the 8 lanes of v[b] (a transposing tree of in-lane shuffles, then
// 128-bit halves). Max is exact and the lanes hold no NaN, so the order does not matter.
__m256 lane_maxima(__m256 (&v)[8]) {
    __m256 t[4], u[2];
    for (int k = 0; k < 4; ++k) t[k] = _mm256_max_ps(_mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]));
    for (int k = 0; k < 2; ++k)  // blocks 4k..4k + 3 in lanes 0-3, and again in lanes 4-7
        u[k] = _mm256_max_ps(_mm256_shuffle_ps(t[2 * k], t[2 * k + 1], 0x44), _mm256_shuffle_ps(t[2 * k], t[2 * k + 1], 0xee));
    return _mm256_max_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), _mm256_permute2f128_ps(u[0], u[1], 0x31));
}

// Q8_0 activations 8 blocks a step (quantize_q8_0 in floats_simd.h), their f16 scales d and
// inverses 1 / d: the maxima by a transposing tree, d and 1 / d by two vector divisions (IEEE
// division: the scalar path's bits), the 8 f16 scales converted at once.
[[gnu::always_inline]] inline void q8_0_scales8(const float* x, uint16_t* half, float* inverse) {
    __m256 m[8];
    for (int k = 0; k < 8; ++k) {
        m[k] = _mm256_setzero_ps();
        for (int j = 0; j < 32; j += 8) m[k] = running_max(_mm256_loadu_ps(x + 32 * k + j), m[k]);
    }
    const __m256 d = _mm256_div_ps(lane_maxima(m), _mm256_set1_ps(127.0f));
    const __m256 nonzero = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    _mm256_store_ps(inverse, _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d), nonzero));
    _mm_store_si128(reinterpret_cast<__m128i*>(half), _mm256_cvtps_ph(d, kNearest));
}

// Q8_K activations (quantize_q8_k in floats_simd.h): max |x| of a block's 256 values, then
// its codes and the sums of each 16.
[[gnu::always_inline]] inline float amax256(const float* x) {
    __m256 m0 = _mm256_setzero_ps(), m1 = m0;
    for (int j = 0; j < 256; j += 16) {
        m0 = running_max(_mm256_loadu_ps(x + j), m0);
        m1 = running_max(_mm256_loadu_ps(x + j + 8), m1);
    }
    return horizontal_max(_mm256_max_ps(m0, m1));
}

[[gnu::always_inline]] inline void q8_k_codes(const float* x, float id, quant::BlockQ8_K& b) {
    __m256i pairs[4];  // chunks 2k and 2k + 1: qwords [group 4k, group 4k + 2 | 4k + 1, 4k + 3]
    for (int k = 0; k < 4; ++k) {
        const __m256i q0 = codes32(x + 64 * k, id), q1 = codes32(x + 64 * k + 32, id);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + 64 * k), q0);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + 64 * k + 32), q1);
        const __m256i s0 = biased_sums(q0), s1 = biased_sums(q1);
        pairs[k] = _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
    }
    // Dwords [g0, g4, g2, g6 | g1, g5, g3, g7] and [g8, g12, g10, g14 | g9, g13, g11, g15].
    const __m256i u = _mm256_or_si256(pairs[0], _mm256_slli_epi64(pairs[1], 32));
    const __m256i v = _mm256_or_si256(pairs[2], _mm256_slli_epi64(pairs[3], 32));
    // Words [g0 g4 g2 g6 g8 g12 g10 g14 | g1 g5 g3 g7 g9 g13 g11 g15], then each half in
    // group order [g0 g2 g4 ... | g1 g3 g5 ...], then interleaved.
    __m256i w = _mm256_sub_epi16(_mm256_packus_epi32(u, v), _mm256_set1_epi16(16 * 128));
    const __m128i order = _mm_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15);
    w = _mm256_shuffle_epi8(w, _mm256_broadcastsi128_si256(order));
    const __m128i even = _mm256_castsi256_si128(w), odd = _mm256_extracti128_si256(w, 1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.bsums), _mm_unpacklo_epi16(even, odd));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.bsums + 16), _mm_unpackhi_epi16(even, odd));
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
    t.set_dot(TypeId::BF16, dot_bf16);
    t.set_quantize(TypeId::Q8_0, quantize_q8_0<8, q8_0_scales8, amax32, codes32>);
    t.set_quantize(TypeId::Q8_1, quantize_q8_1<amax32, codes32>);
    t.set_quantize(TypeId::Q8_K, quantize_q8_k<amax256, q8_k_codes>);
    t.set_quantize(TypeId::F16, half_activations<to_f16>);
    t.set_quantize(TypeId::BF16, half_activations<to_bf16>);
}

}  // namespace kernels::avx2
