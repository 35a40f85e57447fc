// Ternary and 1-2 bit formats (TQ1_0, TQ2_0, Q1_0, Q2_0), AVX2 path.
//
// Dequantization: every value of these blocks is one of at most four floats per block
// (code - 1) x d, or +-d for Q1_0. Each block computes those few floats with the scalar
// decoder's own operation (float(code - 1) x d, one multiply, same operand order), then
// every output is a vpermps lookup of its code: the same bits as quant/decode.h by
// construction. Q1_0's values are d itself and its negation, not products, so d is built
// bit-exactly in integers (vcvtph2ps would quiet a signalling NaN) and -d is a sign flip.
//
// Dot products: codes expanded to bytes, integer products with the 8-bit activations
// (maddubs / madd), one float multiply-add per block or activation block.
#include <immintrin.h>

#include <cstdint>

#include "quant/blocks.h"
#include "table.h"
#include "ternary_simd.h"

namespace kernels::avx2 {

namespace {

using gguf::TypeId;

using quant::BlockQ1_0;
using quant::BlockQ2_0;
using quant::BlockQ8_0;
using quant::BlockQ8_K;
using quant::BlockTQ1_0;
using quant::BlockTQ2_0;

// 8 i16 pair sums to i32 (madd with ones).
__m256i widen_sum(__m256i v16) { return _mm256_madd_epi16(v16, _mm256_set1_epi16(1)); }

// Eight floats: table[index & 7] for the 8 bytes at p (the codes in the low bits).
void store_lookup8(float* y, __m256 table, __m256i index) { _mm256_storeu_ps(y, _mm256_permutevar8x32_ps(table, index)); }

// Stores the 32 floats table[digit] for the 32 byte digits of v.
void store_digits32(float* y, __m256 table, __m256i v) {
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    store_lookup8(y, table, _mm256_cvtepu8_epi32(lo));
    store_lookup8(y + 8, table, _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(lo, lo)));
    store_lookup8(y + 16, table, _mm256_cvtepu8_epi32(hi));
    store_lookup8(y + 24, table, _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(hi, hi)));
}

// ---- TQ1_0 -----------------------------------------------------------------------------

// The digits are read from bytes kept biased by 128 (q ^ 0x80, signed): multiplying by an
// odd power of 3 keeps the bias (3^k x 128 = 128 mod 256), and signed compares need it.
__m256i biased(__m256i q) { return _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))); }

// The ternary digit ((q x 3) >> 8) of each byte q (given biased): 0 below 86, 1 below 171,
// else 2.
__m256i top_digit(__m256i biased_q) {
    const __m256i ge86 = _mm256_cmpgt_epi8(biased_q, _mm256_set1_epi8(85 - 128));
    const __m256i ge171 = _mm256_cmpgt_epi8(biased_q, _mm256_set1_epi8(170 - 128));
    return _mm256_abs_epi8(_mm256_add_epi8(ge86, ge171));
}

// The 256 digits (0-2) of a TQ1_0 block, in value order, as 8 vectors of 32 bytes.
[[gnu::always_inline]] inline void tq1_digits(const BlockTQ1_0& b, __m256i (&out)[8]) {
    __m256i q = biased(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)));  // 32 bytes x 5 digits
    for (int k = 0; k < 5; ++k, q = times3(q)) out[k] = top_digit(q);
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 32));  // 16 bytes x 5 digits
    __m256i p = biased(_mm256_set_m128i(_mm_add_epi8(c, _mm_add_epi8(c, c)), c));  // digits 0 and 1
    out[5] = top_digit(p);
    p = times3(times3(p));  // digits 2 and 3
    out[6] = top_digit(p);
    // Digit 4 of those 16 bytes, then qh's 4 bytes x 4 digits (byte m's digit k at 4k + m).
    const __m128i c81 = _mm256_extracti128_si256(times3(times3(p)), 0);
    out[7] = top_digit(_mm256_set_m128i(tq1_qh_powers(load_u32(b.qh) ^ 0x80808080u), c81));
}

void dequantize_tq1_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m256 levels = _mm256_setr_ps(-1, 0, 1, 0, 0, 0, 0, 0);
    const auto* b = reinterpret_cast<const BlockTQ1_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 256) {
        const __m256 table = _mm256_mul_ps(levels, _mm256_set1_ps(half_to_float(b->d)));
        __m256i digits[8];
        tq1_digits(*b, digits);
        for (int k = 0; k < 8; ++k) store_digits32(y + 32 * k, table, digits[k]);
    }
}

// One block's sum of w x, as 8 float lanes times the block's scale.
[[gnu::always_inline]] inline __m256 tq1_block(const BlockTQ1_0& b, const BlockQ8_K& a, __m256 acc) {
    __m256i digits[8];
    tq1_digits(b, digits);
    __m256i sum16 = _mm256_setzero_si256();  // |sum| <= 8 x 2 x 2 x 127
    for (int k = 0; k < 8; ++k)
        sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(digits[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * k))));
    // sum (digit - 1) x: the activations' own sum from the block sums.
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
    const __m256i sum = _mm256_sub_epi32(widen_sum(sum16), widen_sum(bsums));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(q8_k_scale(b, a)), acc);
}

// ---- TQ2_0 -----------------------------------------------------------------------------

void dequantize_tq2_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m256 levels = _mm256_setr_ps(-1, 0, 1, 2, -1, 0, 1, 2);  // by code, index bits 0-2
    const auto* b = reinterpret_cast<const BlockTQ2_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 256) {
        const __m256 table = _mm256_mul_ps(levels, _mm256_set1_ps(half_to_float(b->d)));
        for (int j = 0; j < 64; j += 32)        // each 32 bytes: 4 planes of 32 values
            for (int m = 0; m < 32; m += 8) {  // 8 bytes at a time, all four planes
                const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + j + m)));
                float* out = y + 4 * j + m;
                store_lookup8(out, table, q);
                store_lookup8(out + 32, table, _mm256_srli_epi32(q, 2));
                store_lookup8(out + 64, table, _mm256_srli_epi32(q, 4));
                store_lookup8(out + 96, table, _mm256_srli_epi32(q, 6));
            }
    }
}

float dot_tq2_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockTQ2_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i sum16 = _mm256_setzero_si256();  // |sum| <= 8 x 2 x 3 x 127
        for (int j = 0; j < 2; ++j) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * j));
            const int8_t* xs = a->qs + 128 * j;
            const __m256i c0 = _mm256_and_si256(q, three), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 2), three);
            const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(q, 4), three), c3 = _mm256_and_si256(_mm256_srli_epi16(q, 6), three);
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(c0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs))));
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(c1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 32))));
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(c2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 64))));
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(c3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 96))));
        }
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums));
        const __m256i sum = _mm256_sub_epi32(widen_sum(sum16), widen_sum(bsums));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(q8_k_scale(*b, *a)), acc);
    }
    return hsum(acc);
}

// ---- Q1_0 ------------------------------------------------------------------------------

void dequantize_q1_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ1_0*>(src);
    const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    for (int64_t i = 0; i < n_blocks; ++i, ++b) {
        const __m256i d = _mm256_set1_epi32(static_cast<int>(half_to_float_bits(load_u16(b->d))));
        for (int c = 0; c < 4; ++c) {  // 32 values from 4 bytes; byte k's bit j is value 8k + j
            const __m256i bits = _mm256_set1_epi32(static_cast<int>(load_u32(b->qs + 4 * c)));
            for (int k = 0; k < 4; ++k, y += 8) {
                const __m256i select = _mm256_sllv_epi32(_mm256_set1_epi32(1 << (8 * k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(bits, select), select);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm256_xor_si256(d, _mm256_andnot_si256(set, sign)));
            }
        }
    }
}

// 32 bytes, 0xff where bit j of bytes 4s .. 4s + 3 of `bits` (16 bytes, in both lanes) is
// set (byte j), else 0.
__m256i bits_to_bytes(__m256i bits, int s) {
    const auto b = static_cast<int64_t>(0x0101010101010101) * (4 * s);
    const __m256i spread = _mm256_shuffle_epi8(bits, _mm256_setr_epi64x(b, b + 0x0101010101010101, b + 0x0202020202020202, b + 0x0303030303030303));
    const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

float dot_q1_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ1_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    const __m256i ones8 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, a += 4) {
        const __m256i bits = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));
        __m256i sums[4];  // 16 i16 pair sums per activation block, |sum| <= 2 x 127
        for (int s = 0; s < 4; ++s) {
            // The sign trick negates the activations where the bit is set: the scale is -d.
            const __m256i xs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[s].qs));
            sums[s] = _mm256_maddubs_epi16(ones8, _mm256_sign_epi8(xs, _mm256_or_si256(bits_to_bytes(bits, s), ones8)));
        }
        // Per lane: the 4 activation blocks' sums over that lane's 16 values, in order.
        const __m256i ones16 = _mm256_set1_epi16(1);
        const __m256i s01 = _mm256_madd_epi16(_mm256_hadd_epi16(sums[0], sums[1]), ones16);
        const __m256i s23 = _mm256_madd_epi16(_mm256_hadd_epi16(sums[2], sums[3]), ones16);
        const __m128 scales = _mm_mul_ps(f16_fields4_ps<sizeof(BlockQ8_0)>(a->d), _mm_set1_ps(-half_to_float(b->d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_hadd_epi32(s01, s23)), _mm256_set_m128(scales, scales), acc);
    }
    return hsum(acc);
}

// ---- Q2_0 ------------------------------------------------------------------------------

void dequantize_q2_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m256 levels = _mm256_setr_ps(-1, 0, 1, 2, -1, 0, 1, 2);
    const __m256i shifts = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const auto* b = reinterpret_cast<const BlockQ2_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b) {
        const __m256 table = _mm256_mul_ps(levels, _mm256_set1_ps(half_to_float(b->d)));
        for (int c = 0; c < 16; c += 2, y += 8)  // 8 values from each 2 bytes
            store_lookup8(y, table, _mm256_srlv_epi32(_mm256_set1_epi32(load_u16(b->qs + c)), shifts));
    }
}

// The 32 codes minus 1 of 8 bytes of Q2_0 (value j in bits 2 (j % 4) of byte j / 4), as
// signed bytes: each byte repeated 4 times, masked to its own field, and the field mapped
// to its value by a table lookup on the field's nibble.
__m256i q2_levels(const uint8_t* p) {
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<int64_t>(load_u64(p))),
                                               _mm256_setr_epi64x(0x0101010100000000, 0x0303030302020202, 0x0505050504040404, 0x0707070706060606));
    const __m256i field = _mm256_and_si256(spread, _mm256_set1_epi32(static_cast<int>(0xc0300c03u)));
    const __m256i nibble = _mm256_and_si256(_mm256_or_si256(field, _mm256_srli_epi16(field, 4)), _mm256_set1_epi8(0x0f));
    // nibble c, 4c, 8c, 12c (fields 0 and 2 give c, fields 1 and 3 give 4c) -> c - 1.
    const __m256i lut = _mm256_setr_epi8(-1, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, -1, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0);
    return _mm256_shuffle_epi8(lut, nibble);
}

float dot_q2_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ2_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n_blocks; ++i, ++b) {
        const float d = half_to_float(b->d);
        for (int s = 0; s < 2; ++s, ++a) {
            const __m256i v = q2_levels(b->qs + 8 * s);
            const __m256i xs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs));
            const __m256i sum = widen_sum(_mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(xs, v)));
            acc[s] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * half_to_float(a->d)), acc[s]);
        }
    }
    return hsum(_mm256_add_ps(acc[0], acc[1]));
}

}  // namespace

void add_ternary(detail::Table& t) {
    t.set_dequantize(TypeId::TQ1_0, dequantize_tq1_0);
    t.set_dot(TypeId::TQ1_0, dot_tq1_0<__m256, tq1_block>);
    t.set_dequantize(TypeId::TQ2_0, dequantize_tq2_0);
    t.set_dot(TypeId::TQ2_0, dot_tq2_0);
    t.set_dequantize(TypeId::Q1_0, dequantize_q1_0);
    t.set_dot(TypeId::Q1_0, dot_q1_0);
    t.set_dequantize(TypeId::Q2_0, dequantize_q2_0);
    t.set_dot(TypeId::Q2_0, dot_q2_0);
}

}  // namespace kernels::avx2
