// K-quants (Q2_K Q3_K Q4_K Q5_K Q6_K), IQ4_XS and Q8_K, AVX-512 path (F/BW/VL/DQ/VNNI).
//
// Dequantization equals quant/decode.h bit for bit, as on the AVX2 path (kquants_avx2.cpp):
// the decoder's float operations in its order. Where a sub-block has few levels the results
// dl x level - ml are computed once per sub-block and the codes pick among them (vpermps
// reads the low 3 or 4 bits of each index, vpermt2ps 5), which gives the same bits: Q2_K
// (4 levels) and Q3_K (8) eight lanes at a time, Q4_K, Q5_K and IQ4_XS sixteen; Q6_K and Q8_K
// convert each code and multiply, sixteen lanes at a time. vcvtph2ps quiets a signalling
// NaN scale, which cannot show: every use of a scale is a product, which quiets it the same way.
//
// Dot products with Q8_K activations: unsigned weight codes x signed activation codes into
// i16 pairs (vpmaddubsw), then the sub-block scales into i32 lanes with VNNI (vpdpwssd);
// IQ4_XS's signed levels go through vpdpbusd with levels + 128 (the offset taken back with
// the activation sums). One float multiply-add per block; lanes are summed at the end, in a
// fixed order. Q3_K, Q6_K and IQ4_XS take 64 codes a step; Q2_K, Q4_K and Q5_K 32, which
// measured faster on Zen 4: there 512-bit operations take two passes, so they only save
// instructions, and a 64-byte load of the activations (which start 4 bytes into each
// 292-byte block) straddles two cache lines in 15 blocks of 16. Those three dot products, the
// Q2_K and Q3_K dequantization and the scale unpacking are the code of kquants_simd.h, which
// the AVX2 path shares, compiled here with AVX-512 flags (EVEX, vpdpwssd, vpternlogd).
#include <immintrin.h>

#include <cstdint>

#include "kquants_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockIQ4_XS;
using quant::BlockQ2_K;
using quant::BlockQ3_K;
using quant::BlockQ4_K;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_K;

// ---- Fields and small helpers ----------------------------------------------------------

__m512i load64(const void* p) { return _mm512_loadu_si512(p); }
// 32 bytes in both halves of a register.
__m512i load32x2(const void* p) { return _mm512_broadcast_i64x4(load32(p)); }

// 16 signed bytes as floats.
__m512 i8x16_to_float(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

// 64 signed codes (bytes) times dl[sub + 0..3] (one per 16), to y[0..63]: dl x float(code).
void store_scaled64(__m512i codes, const float* dl, float* y) {
    _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_set1_ps(dl[0]), i8x16_to_float(_mm512_castsi512_si128(codes))));
    _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_set1_ps(dl[1]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 1))));
    _mm512_storeu_ps(y + 32, _mm512_mul_ps(_mm512_set1_ps(dl[2]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 2))));
    _mm512_storeu_ps(y + 48, _mm512_mul_ps(_mm512_set1_ps(dl[3]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 3))));
}

// Per-qword shift counts: `low` for the low 256 bits, `high` for the high.
__m512i counts(int low, int high) { return _mm512_setr_epi64(low, low, low, low, high, high, high, high); }

// A vpermw index putting 16-bit lane w_i in every 16-bit lane of 128-bit lane i.
__m512i spread_words(int w0, int w1, int w2, int w3) {
    const int a = 0x10001 * w0, b = 0x10001 * w1, c = 0x10001 * w2, d = 0x10001 * w3;
    return _mm512_setr_epi32(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d);
}

// Q3_K codes of one half block, plane pair `pair` (planes 2 pair and 2 pair + 1: values
// 64 pair .. 64 pair + 63 of the half) as q + 4 in 0-7: 2 bits of qs, the hmask bit
// (bit 4 half + plane of hmask[l]) as bit 2. `q` and `hmask` hold their 32 bytes twice.
__m512i q3_k_codes(__m512i q, __m512i hmask, int half, int pair) {
    const int plane = 2 * pair, bit = 4 * half + plane;
    const __m512i low2 = _mm512_and_si512(_mm512_srlv_epi64(q, counts(2 * plane, 2 * plane + 2)), _mm512_set1_epi8(3));
    // Rotating a qword left by 2 - bit (mod 64) moves bit `bit` of each byte to its bit 2.
    const __m512i high = _mm512_rolv_epi64(hmask, counts((2 - bit) & 63, (1 - bit) & 63));
    return _mm512_ternarylogic_epi32(low2, high, _mm512_set1_epi8(4), 0xf8);  // low2 | (high & 4)
}

// The 6-bit codes of one half of a Q6_K block as unsigned bytes: values 0-63 of the half
// (low nibbles of ql[0..63], topped with bit pairs 0 and 1 of qh[0..31]) and 64-127 (high
// nibbles, bit pairs 2 and 3).
void q6_k_codes(const uint8_t* ql, const uint8_t* qh, __m512i& first, __m512i& second) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), top = _mm512_set1_epi8(0x30);
    const __m512i l = load64(ql), h = load32x2(qh);
    // Pair k of qh moved to bits 4-5 (qword shifts: the bits kept come from the same byte).
    first = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_and_si512(_mm512_sllv_epi64(h, counts(4, 2)), top));
    second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4), _mm512_and_si512(_mm512_srlv_epi64(h, counts(0, 2)), top));
}

// ---- Dequantization --------------------------------------------------------------------

// Q4_K and Q5_K: 8 sub-blocks of 32; qh is nullptr for Q4_K.
template <bool kFifthBit> void dequantize_k4(float d, float dmin, const uint8_t* packed, const uint8_t* qs, const uint8_t* qh, float* y) {
    uint64_t scales, mins;
    k4_unpack(packed, scales, mins);
    alignas(32) float dl[8], ml[8];
    _mm256_store_ps(dl, _mm256_mul_ps(_mm256_set1_ps(d), u8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(scales)))));
    _mm256_store_ps(ml, _mm256_mul_ps(_mm256_set1_ps(dmin), u8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(mins)))));
    const __m512 levels = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 levels_high = _mm512_add_ps(levels, _mm512_set1_ps(16));
    // The fifth bits of values l = 0-15 and 16-31 of each 32, moved to bit 4 + (sub-block).
    __m512i high[2] = {};
    if constexpr (kFifthBit) {
        high[0] = _mm512_slli_epi32(_mm512_cvtepu8_epi32(load16(qh)), 4);
        high[1] = _mm512_slli_epi32(_mm512_cvtepu8_epi32(load16(qh + 16)), 4);
    }
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32) {
        const __m512i codes[2] = {_mm512_cvtepu8_epi32(load16(qs)), _mm512_cvtepu8_epi32(load16(qs + 16))};
        for (int nibble = 0; nibble < 2; ++nibble) {
            const int sub = 2 * chunk + nibble;
            const __m512 dv = _mm512_set1_ps(dl[sub]), mv = _mm512_set1_ps(ml[sub]);
            const __m512 table = _mm512_sub_ps(_mm512_mul_ps(dv, levels), mv);
            float* out = y + 32 * sub;
            if constexpr (kFifthBit) {
                const __m512 table_high = _mm512_sub_ps(_mm512_mul_ps(dv, levels_high), mv);
                for (int g = 0; g < 2; ++g) {
                    const __m512i q = nibble ? _mm512_srli_epi32(codes[g], 4) : codes[g];
                    const __m512i h = _mm512_srli_epi32(high[g], sub);  // bit `sub` of qh[l] at bit 4
                    const __m512i index = _mm512_ternarylogic_epi32(q, h, _mm512_set1_epi32(0x10), 0xd8);  // bit 4 from h, the rest from q
                    _mm512_storeu_ps(out + 16 * g, _mm512_permutex2var_ps(table, index, table_high));
                }
            } else {
                for (int g = 0; g < 2; ++g)
                    _mm512_storeu_ps(out + 16 * g, _mm512_permutexvar_ps(nibble ? _mm512_srli_epi32(codes[g], 4) : codes[g], table));
            }
        }
    }
}

void dequantize_q6_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
    const __m512i offset = _mm512_set1_epi8(32);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ6_K& b = blocks[i];
        const __m512 d = _mm512_set1_ps(half_to_float(b.d));
        alignas(64) float dl[16];  // d x scale, the decoder's first product
        _mm512_store_ps(dl, _mm512_mul_ps(d, i8x16_to_float(load16(b.scales))));
        for (int half = 0; half < 2; ++half) {
            __m512i first, second;
            q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, first, second);
            store_scaled64(_mm512_sub_epi8(first, offset), dl + 8 * half, y + 128 * half);
            store_scaled64(_mm512_sub_epi8(second, offset), dl + 8 * half + 4, y + 128 * half + 64);
        }
    }
}

void dequantize_iq4_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockIQ4_XS*>(src);
    const __m512 levels = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(load16(kIq4Levels)));
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockIQ4_XS& b = blocks[i];
        const __m256 d = _mm256_set1_ps(half_to_float(b.d));
        alignas(32) float dl[8];
        _mm256_store_ps(dl, _mm256_mul_ps(d, i8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(iq4_xs_scales(b))))));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m512 table = _mm512_mul_ps(_mm512_set1_ps(dl[ib]), levels);
            const __m512i codes = _mm512_cvtepu8_epi32(load16(b.qs + 16 * ib));
            _mm512_storeu_ps(y, _mm512_permutexvar_ps(codes, table));
            _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table));
        }
    }
}

void dequantize_q8_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ8_K& b = blocks[i];
        const __m512 d = _mm512_set1_ps(f32_field(b.d));
        for (int j = 0; j < 256; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(i8x16_to_float(load16(b.qs + j)), d));
    }
}

// ---- Dot products with Q8_K ------------------------------------------------------------

// Q3_K and Q6_K: the unsigned codes of half a block, two groups of 64 in value order.
void k16_codes(const BlockQ3_K& b, int half, __m512i codes[2]) {
    const __m512i q = load32x2(b.qs + 32 * half), hmask = load32x2(b.hmask);
    for (int pair = 0; pair < 2; ++pair) codes[pair] = q3_k_codes(q, hmask, half, pair);
}
void k16_codes(const BlockQ6_K& b, int half, __m512i codes[2]) { q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, codes[0], codes[1]); }

// Q3_K and Q6_K, 64 codes a step: sixteen signed scales of 16 values; the codes taken
// unsigned, their offset's share (k16_offsets) taken back once per block.
template <class Block> float dot_k16(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const Block*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const Block& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(k16_scales(b));
        const __m512i scales = _mm512_castsi256_si512(scales16);
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), k16_offsets<Block>(scales16, a)));
        for (int half = 0; half < 2; ++half) {
            __m512i codes[2];
            k16_codes(b, half, codes);
            for (int g = 0; g < 2; ++g) {
                const __m512i p = _mm512_maddubs_epi16(codes[g], load64(a.qs + 128 * half + 64 * g));
                const int sub = 8 * half + 4 * g;
                sum = _mm512_dpwssd_epi32(sum, p, _mm512_permutexvar_epi16(spread_words(sub, sub + 1, sub + 2, sub + 3), scales));
            }
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(b.d) * f32_field(a.d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

float dot_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    // Levels + 128 as unsigned bytes, for vpdpbusd; the 128 x (activation sums) is taken back below.
    const __m512i levels = _mm512_broadcast_i32x4(_mm_add_epi8(load16(kIq4Levels), _mm_set1_epi8(-128)));
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i spread[4] = {
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5), _mm512_setr_epi32(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7)};
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockIQ4_XS& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m128i scales8 = _mm_cvtsi64_si128(static_cast<int64_t>(iq4_xs_scales(b)));
        const __m512i scales32 = _mm512_castsi256_si512(_mm256_cvtepi8_epi32(scales8));
        // 128 x scale x (activation sum) per sub-block of 32 (two 16s, the scale twice).
        const __m256i offsets = _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(scales8, scales8))), 7);
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offsets));
        for (int ib = 0; ib < 8; ib += 2) {
            // Sub-blocks ib and ib + 1 in value order: low nibbles of 16 bytes, high nibbles,
            // then the next 16 bytes likewise.
            const __m512i q = _mm512_castsi256_si512(load32(b.qs + 16 * ib));
            const __m512i codes = _mm512_and_si512(_mm512_srlv_epi64(_mm512_shuffle_i64x2(q, q, 0x50), _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), low4);
            const __m512i dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(levels, codes), load64(a.qs + 32 * ib));
            sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(dots, _mm512_permutexvar_epi32(spread[ib / 2], scales32)));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(b.d) * f32_field(a.d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

}  // namespace

void add_kquants(detail::Table& t) {
    t.set_dequantize(TypeId::Q2_K, dequantize_q2_k);
    t.set_dequantize(TypeId::Q3_K, dequantize_q3_k);
    t.set_dequantize(TypeId::Q4_K, dequantize_k4_blocks<BlockQ4_K, dequantize_k4<false>>);
    t.set_dequantize(TypeId::Q5_K, dequantize_k4_blocks<BlockQ5_K, dequantize_k4<true>>);
    t.set_dequantize(TypeId::Q6_K, dequantize_q6_k);
    t.set_dequantize(TypeId::IQ4_XS, dequantize_iq4_xs);
    t.set_dequantize(TypeId::Q8_K, dequantize_q8_k);
    t.set_dot(TypeId::Q2_K, dot_q2_k);
    t.set_dot(TypeId::Q3_K, dot_k16<BlockQ3_K>);
    t.set_dot(TypeId::Q4_K, dot_k4<BlockQ4_K>);
    t.set_dot(TypeId::Q5_K, dot_k4<BlockQ5_K>);
    t.set_dot(TypeId::Q6_K, dot_k16<BlockQ6_K>);
    t.set_dot(TypeId::IQ4_XS, dot_iq4_xs);
}

}  // namespace kernels::avx512
