// Ternary and 1-2 bit formats (TQ1_0, TQ2_0, Q1_0, Q2_0), AVX-512 path.
//
// Dequantization: every value of these blocks is one of at most four floats per block
// (code - 1) x d, or +-d for Q1_0. Each block computes those few floats with the scalar
// decoder's own operation (float(code - 1) x d, one multiply, same operand order), then
// every output is a 16-entry vpermps lookup of its code: the same bits as quant/decode.h by
// construction. Q1_0's values are d itself and its negation, not products, so d is built
// bit-exactly in integers (vcvtph2ps would quiet a signalling NaN) and -d is a sign flip,
// chosen per value by a mask register straight from the bits.
//
// Dot products: codes expanded to bytes, VNNI products (vpdpbusd) with the 8-bit
// activations, one float multiply-add per block.
#include <immintrin.h>

#include <cstdint>

#include "quant/blocks.h"
#include "table.h"
#include "ternary_simd.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockQ1_0;
using quant::BlockQ2_0;
using quant::BlockQ8_0;
using quant::BlockQ8_K;
using quant::BlockTQ1_0;
using quant::BlockTQ2_0;

// 16 floats a, then 16 floats b.
__m512 halves(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

// (code - 1) for codes 0-3, repeated so that only index bits 0-1 matter.
__m512 ternary_levels() { return _mm512_setr_ps(-1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2, -1, 0, 1, 2); }

// Stores the 64 floats table[digit] for the 64 byte digits of v.
void store_digits64(float* y, __m512 table, __m512i v) {
    _mm512_storeu_ps(y, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(v)), table));
    _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 1)), table));
    _mm512_storeu_ps(y + 32, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 2)), table));
    _mm512_storeu_ps(y + 48, _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(v, 3)), table));
}

// ---- TQ1_0 -----------------------------------------------------------------------------

// Byte-wise x 3 (mod 256), beside ternary_simd.h's 256-bit one.
using kernels::times3;
__m512i times3(__m512i q) { return _mm512_add_epi8(q, _mm512_add_epi8(q, q)); }

// The ternary digit ((q x 3) >> 8) of each byte: 0 below 86, 1 below 171, else 2.
__m512i top_digit(__m512i q) {
    const __m512i one = _mm512_set1_epi8(1);
    const __m512i digit = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(q, _mm512_set1_epi8(86)), one);
    return _mm512_mask_add_epi8(digit, _mm512_cmpge_epu8_mask(q, _mm512_set1_epi8(static_cast<char>(171))), digit, one);
}

// The 256 digits (0-2) of a TQ1_0 block, in value order, as 4 vectors of 64 bytes.
// Digit k of a byte is the top digit of byte x 3^k: the 32 bytes of qs x 3^0..3^4 give values
// 0-159, the next 16 bytes x 3^0..3^4 values 160-239, qh's 4 bytes x 3^0..3^3 the last 16
// (byte m's digit k at 240 + 4k + m).
[[gnu::always_inline]] inline void tq1_digits(const BlockTQ1_0& b, __m512i (&out)[4]) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
    const __m512i p01 = _mm512_inserti64x4(_mm512_castsi256_si512(q), times3(q), 1);  // q, 3q
    const __m512i p23 = times3(times3(p01));                                         // 9q, 27q
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 32));
    const __m256i c01 = _mm256_inserti128_si256(_mm256_castsi128_si256(c), _mm_add_epi8(c, _mm_add_epi8(c, c)), 1);  // c, 3c
    const __m256i c23 = times3(times3(c01));                                                                          // 9c, 27c
    const __m256i c4 = times3(c23);                                                                                    // (27c), 81c
    const __m256i c4h = _mm256_inserti128_si256(c4, tq1_qh_powers(load_u32(b.qh)), 0);  // 81c at the top: swap the lanes
    out[0] = top_digit(p01);
    out[1] = top_digit(p23);
    out[2] = top_digit(_mm512_inserti64x4(_mm512_castsi256_si512(times3(_mm512_extracti64x4_epi64(p23, 1))), c01, 1));
    out[3] = top_digit(_mm512_inserti64x4(_mm512_castsi256_si512(c23), _mm256_permute4x64_epi64(c4h, 0x4e), 1));
}

void dequantize_tq1_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockTQ1_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 256) {
        const __m512 table = _mm512_mul_ps(ternary_levels(), _mm512_set1_ps(half_to_float(b->d)));  // digit - 1 is code - 1
        __m512i digits[4];
        tq1_digits(*b, digits);
        for (int k = 0; k < 4; ++k) store_digits64(y + 64 * k, table, digits[k]);
    }
}

// One block's sum of w x, as 16 float lanes times the block's scale.
[[gnu::always_inline]] inline __m512 tq1_block(const BlockTQ1_0& b, const BlockQ8_K& a, __m512 acc) {
    __m512i digits[4];
    tq1_digits(b, digits);
    // sum (digit - 1) x: the activations' own sum from the block sums.
    __m512i sum = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums))));
    for (int k = 0; k < 4; ++k) sum = _mm512_dpbusd_epi32(sum, digits[k], _mm512_loadu_si512(a.qs + 64 * k));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(q8_k_scale(b, a)), acc);
}

// ---- TQ2_0 -----------------------------------------------------------------------------

void dequantize_tq2_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockTQ2_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b, y += 256) {
        const __m512 table = _mm512_mul_ps(ternary_levels(), _mm512_set1_ps(half_to_float(b->d)));
        for (int j = 0; j < 64; j += 32)         // each 32 bytes: 4 planes of 32 values
            for (int m = 0; m < 32; m += 16) {  // 16 bytes at a time, all four planes
                const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + j + m)));
                float* out = y + 4 * j + m;
                _mm512_storeu_ps(out, _mm512_permutexvar_ps(q, table));
                _mm512_storeu_ps(out + 32, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 2), table));
                _mm512_storeu_ps(out + 64, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table));
                _mm512_storeu_ps(out + 96, _mm512_permutexvar_ps(_mm512_srli_epi32(q, 6), table));
            }
    }
}

float dot_tq2_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockTQ2_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    const __m512i three = _mm512_set1_epi8(3);
    const __m512i shift01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i shift23 = _mm512_add_epi16(shift01, _mm512_set1_epi16(4));
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m512i sum = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->bsums))));
        for (int j = 0; j < 2; ++j) {  // 32 bytes: planes 0 and 1 are 64 values, planes 2 and 3 the next 64
            const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * j)));
            const int8_t* xs = a->qs + 128 * j;
            sum = _mm512_dpbusd_epi32(sum, _mm512_and_si512(_mm512_srlv_epi16(q, shift01), three), _mm512_loadu_si512(xs));
            sum = _mm512_dpbusd_epi32(sum, _mm512_and_si512(_mm512_srlv_epi16(q, shift23), three), _mm512_loadu_si512(xs + 64));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(q8_k_scale(*b, *a)), acc);
    }
    return hsum(acc);
}

// ---- Q1_0 ------------------------------------------------------------------------------

void dequantize_q1_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ1_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b) {
        const __m512i d = _mm512_set1_epi32(static_cast<int>(half_to_float_bits(load_u16(b->d))));
        const __m512i minus_d = _mm512_xor_si512(d, _mm512_set1_epi32(static_cast<int>(0x80000000u)));
        for (int c = 0; c < 16; c += 2, y += 16)  // bit j of the u16 at qs + c: value 8c + j
            _mm512_storeu_si512(y, _mm512_mask_blend_epi32(static_cast<__mmask16>(load_u16(b->qs + c)), minus_d, d));
    }
}

float dot_q1_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ1_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i first = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(2));
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < n_blocks; ++i, ++b, a += 4) {
        const __m512 scales = _mm512_castps128_ps512(_mm_mul_ps(f16_fields4_ps<sizeof(BlockQ8_0)>(a->d), _mm_set1_ps(half_to_float(b->d))));
        for (int p = 0; p < 2; ++p) {  // 64 values: two activation blocks
            const __m512i xs = load_2x32(a[2 * p].qs, a[2 * p + 1].qs);
            const auto clear = static_cast<__mmask64>(~load_u64(b->qs + 8 * p));  // -x where the bit is clear
            const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_mask_sub_epi8(xs, clear, _mm512_setzero_si512(), xs));
            acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_permutexvar_ps(p ? second : first, scales), acc[p]);
        }
    }
    return hsum(_mm512_add_ps(acc[0], acc[1]));
}

// ---- Q2_0 ------------------------------------------------------------------------------

void dequantize_q2_0(const uint8_t* src, float* y, int64_t n_blocks) {
    const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const auto* b = reinterpret_cast<const BlockQ2_0*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, ++b) {
        const __m512 table = _mm512_mul_ps(ternary_levels(), _mm512_set1_ps(half_to_float(b->d)));
        for (int c = 0; c < 16; c += 4, y += 16)  // 16 values from each 4 bytes
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(load_u32(b->qs + c))), shifts), table));
    }
}

float dot_q2_0(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* b = reinterpret_cast<const BlockQ2_0*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_0*>(x);
    // Value j is in bits 2 (j % 4) of byte j / 4: each byte repeated 4 times, masked to its
    // own field, and the field's nibble (c, 4c, c or 4c) mapped to |c - 1| by a table; the
    // activations negated where c is 0.
    const __m512i spread = _mm512_set4_epi32(0x03030303, 0x02020202, 0x01010101, 0x00000000);
    const __m512i lane_base = _mm512_setr_epi32(0, 0, 0, 0, 0x04040404, 0x04040404, 0x04040404, 0x04040404, 0x08080808, 0x08080808,
                                                0x08080808, 0x08080808, 0x0c0c0c0c, 0x0c0c0c0c, 0x0c0c0c0c, 0x0c0c0c0c);
    const __m512i index = _mm512_add_epi8(spread, lane_base);
    const __m512i fields = _mm512_set1_epi32(static_cast<int>(0xc0300c03u));
    const __m512i magnitude = _mm512_broadcast_i32x4(_mm_setr_epi8(1, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0));
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, a += 2) {
        const __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)));
        const __m512i field = _mm512_and_si512(_mm512_shuffle_epi8(q, index), fields);
        const __m512i nibble = _mm512_and_si512(_mm512_or_si512(field, _mm512_srli_epi16(field, 4)), low4);
        const __m512i xs = load_2x32(a[0].qs, a[1].qs);
        const __mmask64 zero_code = _mm512_testn_epi8_mask(nibble, nibble);
        const __m512i signed_x = _mm512_mask_sub_epi8(xs, zero_code, _mm512_setzero_si512(), xs);
        const __m512i sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(magnitude, nibble), signed_x);
        const float d = half_to_float(b->d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), halves(d * half_to_float(a[0].d), d * half_to_float(a[1].d)), acc);
    }
    return hsum(acc);
}

}  // namespace

void add_ternary(detail::Table& t) {
    t.set_dequantize(TypeId::TQ1_0, dequantize_tq1_0);
    t.set_dot(TypeId::TQ1_0, dot_tq1_0<__m512, tq1_block>);
    t.set_dequantize(TypeId::TQ2_0, dequantize_tq2_0);
    t.set_dot(TypeId::TQ2_0, dot_tq2_0);
    t.set_dequantize(TypeId::Q1_0, dequantize_q1_0);
    t.set_dot(TypeId::Q1_0, dot_q1_0);
    t.set_dequantize(TypeId::Q2_0, dequantize_q2_0);
    t.set_dot(TypeId::Q2_0, dot_q2_0);
}

}  // namespace kernels::avx512
