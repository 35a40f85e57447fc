// legacy, avx2 path: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 IQ4_NL.
//
// Each type gives a block's 32 codes as bytes in value order (the signed value for the
// symmetric kinds, the unsigned code for the _1 kinds); dequantization turns them into the
// decoder's float products, dot products multiply them with the activation codes
// (vpmaddubsw, unsigned times signed) and scale each block's integer sum by dw x dx.
//
// Dequantization equals quant/decode.h bit for bit: each value is the same float product
// (and for the _1 kinds the same sum) as the decoder's. vcvtph2ps quiets a signalling-NaN
// scale, which the decoder keeps, but every value is a product with the scale and the
// multiply quiets it there too, so the bits agree.
#include <immintrin.h>

#include <cstdint>

#include "legacy_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx2 {

namespace {

using gguf::TypeId;

// ---- Codes --------------------------------------------------------------------------------

// The 4-bit codes of 16 bytes of nibbles: low nibbles (codes 0-15), then high (16-31).
__m256i nibbles(const uint8_t* qs) {
    const __m256i z = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(z, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
}

// 0x10 in byte j where bit j of the 32 bits is set: Q5's fifth bit.
__m256i fifth_bits(const uint8_t* qh) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load_u32(qh))),
                                               _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

__m256i iq4_levels(__m256i codes) {
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels))), codes);
}

// Per type: block bytes; where d, m sit; codes(block): the 32 codes as bytes; kSigned
// whether they are signed values (else unsigned codes, less kOffset for the value);
// kScaleFirst (non-affine formats) whether the decoder writes d x value (IQ4_NL's dl x level)
// rather than value x d.
struct Q4_0 {
    static constexpr int kBytes = 18, kOffset = 8;
    static constexpr bool kSigned = false, kAffine = false, kScaleFirst = false;
    static __m256i codes(const uint8_t* b) { return nibbles(b + 2); }
};
struct Q4_1 {
    static constexpr int kBytes = 20, kOffset = 0;
    static constexpr bool kSigned = false, kAffine = true;
    static __m256i codes(const uint8_t* b) { return nibbles(b + 4); }
};
struct Q5_0 {
    static constexpr int kBytes = 22, kOffset = 16;
    static constexpr bool kSigned = false, kAffine = false, kScaleFirst = false;
    static __m256i codes(const uint8_t* b) { return _mm256_or_si256(nibbles(b + 6), fifth_bits(b + 2)); }
};
struct Q5_1 {
    static constexpr int kBytes = 24, kOffset = 0;
    static constexpr bool kSigned = false, kAffine = true;
    static __m256i codes(const uint8_t* b) { return _mm256_or_si256(nibbles(b + 8), fifth_bits(b + 4)); }
};
template <int Bytes> struct Q8 {
    static constexpr int kBytes = Bytes, kOffset = 0;
    static constexpr bool kSigned = true, kAffine = false, kScaleFirst = false;
    static __m256i codes(const uint8_t* b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + Bytes - 32)); }
};
struct IQ4_NL {
    static constexpr int kBytes = 18, kOffset = 0;
    static constexpr bool kSigned = true, kAffine = false, kScaleFirst = true;
    static __m256i codes(const uint8_t* b) { return iq4_levels(nibbles(b + 2)); }
};

// ---- Dequantization ---------------------------------------------------------------------

// 8 signed bytes (the low 8 of v) as floats.
__m256 floats8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

template <class T> void dequantize(const uint8_t* src, float* y, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; ++b, src += T::kBytes, y += 32) {
        __m256i q = T::codes(src);
        if constexpr (T::kOffset != 0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(T::kOffset));  // values fit a signed byte
        const __m256 d = _mm256_set1_ps(half_to_float(src));
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m256 v[4] = {floats8(lo), floats8(_mm_unpackhi_epi64(lo, lo)), floats8(hi), floats8(_mm_unpackhi_epi64(hi, hi))};
        if constexpr (T::kAffine) {
            const __m256 m = _mm256_set1_ps(half_to_float(src + 2));
            for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(v[k], d), m));
        } else if constexpr (T::kScaleFirst) {
            for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, v[k]));  // dl x level, as decode.h
        } else {
            for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(v[k], d));
        }
    }
}

// ---- Dot products -----------------------------------------------------------------------

// The 8 lane sums of a block's codes times the activation codes xq (signed bytes).
template <class T> [[gnu::always_inline]] inline __m256i block_sums(const uint8_t* w, __m256i xq) {
    const __m256i q = T::codes(w);
    __m256i pairs;
    if constexpr (T::kSigned) {  // |q| unsigned times x with q's sign
        pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xq, q));
    } else {
        pairs = _mm256_maddubs_epi16(q, xq);  // at most 2 x 31 x 127: no saturation
        if constexpr (T::kOffset != 0) pairs = _mm256_sub_epi16(pairs, _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), xq));
    }
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// The f16 field at byte 0 of 8 blocks, Stride bytes apart, as floats (gathered by scalar
// loads: the vector units are the bottleneck).
template <int Stride> __m256 fields8(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(f16_fields4<Stride>(p + 4 * Stride)), static_cast<int64_t>(f16_fields4<Stride>(p))));
}
__m256 lane(__m256 v, int i) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i)); }

// Sum over blocks of dw x dx x (sum of code products), the scales of 8 blocks converted at
// once. The affine kinds (value dw x q + m) take, per lane, t = dw x (sum of q x c) + m x
// (sum of c): m x (sum of c) is exact (11 + 10 bits), so t is one rounding of the lane's
// exact sum of w x c, then dx x t is added. (dw x dx and m x dx apart would cancel after
// rounding: large errors where a block's values straddle zero.)
template <class T> [[gnu::always_inline]] inline __m256 block(const uint8_t* w, const uint8_t* x, __m256 dw, __m256 m, __m256 dx, __m256 acc) {
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 2));
    const __m256 s = _mm256_cvtepi32_ps(block_sums<T>(w, xq));
    if constexpr (T::kAffine) {
        const __m256i c = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), xq), _mm256_set1_epi16(1));
        return _mm256_fmadd_ps(_mm256_fmadd_ps(s, dw, _mm256_mul_ps(_mm256_cvtepi32_ps(c), m)), dx, acc);
    } else {
        return _mm256_fmadd_ps(s, dw, acc);  // dw: dw x dx
    }
}

template <class T> float dot(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    constexpr int kW = T::kBytes, kX = kQ8_0Bytes;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t b = 0;
    for (; b + 8 <= n_blocks; b += 8, w += 8 * kW, x += 8 * kX) {
        const __m256 dw = fields8<kW>(w), dx = fields8<kX>(x);
        if constexpr (T::kAffine) {
            const __m256 m = fields8<kW>(w + 2);
            for (int i = 0; i < 8; ++i) acc[i & 1] = block<T>(w + i * kW, x + i * kX, lane(dw, i), lane(m, i), lane(dx, i), acc[i & 1]);
        } else {
            const __m256 d = _mm256_mul_ps(dw, dx);
            for (int i = 0; i < 8; ++i) acc[i & 1] = block<T>(w + i * kW, x + i * kX, lane(d, i), d, d, acc[i & 1]);
        }
    }
    for (; b < n_blocks; ++b, w += kW, x += kX) {
        const __m256 dw = _mm256_set1_ps(half_to_float(w)), dx = _mm256_set1_ps(half_to_float(x));
        if constexpr (T::kAffine) {
            acc[b & 1] = block<T>(w, x, dw, _mm256_set1_ps(half_to_float(w + 2)), dx, acc[b & 1]);
        } else {
            acc[b & 1] = block<T>(w, x, _mm256_mul_ps(dw, dx), dx, dx, acc[b & 1]);
        }
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

}  // namespace

void add_legacy(detail::Table& t) {
    t.set_dequantize(TypeId::Q4_0, dequantize<Q4_0>);
    t.set_dequantize(TypeId::Q4_1, dequantize<Q4_1>);
    t.set_dequantize(TypeId::Q5_0, dequantize<Q5_0>);
    t.set_dequantize(TypeId::Q5_1, dequantize<Q5_1>);
    t.set_dequantize(TypeId::Q8_0, dequantize<Q8<kQ8_0Bytes>>);
    t.set_dequantize(TypeId::Q8_1, dequantize<Q8<kQ8_1Bytes>>);
    t.set_dequantize(TypeId::IQ4_NL, dequantize<IQ4_NL>);
    t.set_dot(TypeId::Q4_0, dot<Q4_0>);
    t.set_dot(TypeId::Q4_1, dot<Q4_1>);
    t.set_dot(TypeId::Q5_0, dot<Q5_0>);
    t.set_dot(TypeId::Q5_1, dot<Q5_1>);
    t.set_dot(TypeId::Q8_0, dot<Q8<kQ8_0Bytes>>);
    t.set_dot(TypeId::IQ4_NL, dot<IQ4_NL>);
}

}  // namespace kernels::avx2
