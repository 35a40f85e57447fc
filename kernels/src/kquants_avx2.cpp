// K-quants (Q2_K Q3_K Q4_K Q5_K Q6_K), IQ4_XS and Q8_K, AVX2 path.
//
// Dequantization equals quant/decode.h bit for bit: each value is the scalar decoder's float
// operations in its order (dl = d x scale and ml = dmin x min once per sub-block, then
// dl x q, minus ml), only eight lanes at a time. Where a sub-block has few levels (Q2_K 4,
// Q3_K 8) the eight results dl x level - ml are computed once and the codes pick among them
// (vpermps), which gives the same bits. The f16 scales are read with vcvtph2ps, which quiets
// a signalling NaN that the scalar half_bits_to_float keeps as it is; that cannot show,
// because every use of a scale is a product, and the product quiets it the same way.
//
// Dot products with Q8_K activations (f32 d, 256 int8 codes, 16 i16 sums of 16 codes):
// integers inside a block (maddubs: unsigned weight codes x signed activation codes into
// i16 pairs; madd with the sub-block scales into i32 lanes), one float multiply-add per
// block of d x dx with the block's lanes, minimums and code offsets through the activation
// sums. Lanes are summed at the end, in a fixed order.
//
// What this path shares with the AVX-512 one (scale unpacking, Q2_K and Q3_K dequantization,
// the Q2_K, Q4_K and Q5_K dot products) is in kquants_simd.h, compiled here with AVX2 flags.
#include <immintrin.h>

#include <cstdint>

#include "kquants_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx2 {

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

// 16 signed codes (bytes) times dl, to y[0..15]: dl x float(code), the decoders' order.
void store_scaled16(__m128i codes, __m256 dl, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, i8_to_float(codes)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(dl, i8_to_float(_mm_unpackhi_epi64(codes, codes))));
}

// 32-bit value `low` in the four lanes of the low 128 bits, `high` in the high four (one
// 256-bit constructor, which the compiler folds into a constant).
__m256i two_lanes(uint32_t low, uint32_t high) {
    const auto l = static_cast<int>(low), h = static_cast<int>(high);
    return _mm256_setr_epi32(l, l, l, l, h, h, h, h);
}

// A pshufb control that spreads 16-bit lane j (of each 128-bit lane) over every 16-bit lane:
// lane j_low in the low 128 bits, j_high in the high.
__m256i spread_words(int low, int high) { return two_lanes(0x01000100u + 0x02020202u * low, 0x01000100u + 0x02020202u * high); }

// ---- Dequantization --------------------------------------------------------------------

// Q4_K and Q5_K: 8 sub-blocks of 32; qh is nullptr for Q4_K.
template <bool kFifthBit> void dequantize_k4(float d, float dmin, const uint8_t* packed, const uint8_t* qs, const uint8_t* qh, float* y) {
    uint64_t scales, mins;
    k4_unpack(packed, scales, mins);
    alignas(32) float dl[8], ml[8];
    _mm256_store_ps(dl, _mm256_mul_ps(_mm256_set1_ps(d), u8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(scales)))));
    _mm256_store_ps(ml, _mm256_mul_ps(_mm256_set1_ps(dmin), u8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(mins)))));
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256i high = _mm256_setzero_si256();
    if constexpr (kFifthBit) high = load32(qh);
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32) {
        const __m256i q = load32(qs);
        for (int nibble = 0; nibble < 2; ++nibble) {
            const int sub = 2 * chunk + nibble;
            // The 32 codes of the sub-block as bytes: a nibble of qs[l], and for Q5_K bit
            // `sub` of qh[l] moved to bit 4 (16-bit shifts: the bit kept comes from its own byte).
            __m256i codes = _mm256_and_si256(nibble ? _mm256_srli_epi16(q, 4) : q, low4);
            if constexpr (kFifthBit) {
                const __m256i h = sub <= 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(4 - sub)) : _mm256_srl_epi16(high, _mm_cvtsi32_si128(sub - 4));
                codes = _mm256_or_si256(codes, _mm256_and_si256(h, bit4));
            }
            const __m256 dv = _mm256_set1_ps(dl[sub]), mv = _mm256_set1_ps(ml[sub]);
            float* out = y + 32 * sub;
            const __m128i parts[2] = {_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1)};
            for (int g = 0; g < 4; ++g) {
                const __m128i part = g % 2 ? _mm_unpackhi_epi64(parts[g / 2], parts[g / 2]) : parts[g / 2];
                _mm256_storeu_ps(out + 8 * g, _mm256_sub_ps(_mm256_mul_ps(dv, u8_to_float(part)), mv));
            }
        }
    }
}

// The 6-bit codes of one half of a Q6_K block (128 values) as unsigned bytes, four groups
// of 32 in value order: low nibbles of ql[0..31] and ql[32..63], then their high nibbles,
// topped with bit pairs 0, 1, 2, 3 of qh[0..31].
void q6_k_codes(const uint8_t* ql, const uint8_t* qh, __m256i codes[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
    const __m256i l0 = load32(ql), l1 = load32(ql + 32), h = load32(qh);
    // Pair k of qh moved to bits 4-5 (16-bit shifts: the bits kept come from the same byte).
    codes[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(h, 4), top));
    codes[1] = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(h, 2), top));
    codes[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(h, top));
    codes[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(h, 2), top));
}

void dequantize_q6_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
    const __m256i offset = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ6_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(half_to_float(b.d));
        const __m128i sc = load16(b.scales);
        alignas(32) float dl[16];  // d x scale, the decoder's first product
        _mm256_store_ps(dl, _mm256_mul_ps(d, i8_to_float(sc)));
        _mm256_store_ps(dl + 8, _mm256_mul_ps(d, i8_to_float(_mm_unpackhi_epi64(sc, sc))));
        for (int half = 0; half < 2; ++half) {
            __m256i codes[4];
            q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, codes);
            for (int g = 0; g < 4; ++g) {
                const __m256i c = _mm256_sub_epi8(codes[g], offset);
                const int sub = 8 * half + 2 * g;
                float* out = y + 16 * sub;
                store_scaled16(_mm256_castsi256_si128(c), _mm256_set1_ps(dl[sub]), out);
                store_scaled16(_mm256_extracti128_si256(c, 1), _mm256_set1_ps(dl[sub + 1]), out + 16);
            }
        }
    }
}

void dequantize_iq4_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockIQ4_XS*>(src);
    const __m128i levels = load16(kIq4Levels), low4 = _mm_set1_epi8(0x0f);
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockIQ4_XS& b = blocks[i];
        const __m256 d = _mm256_set1_ps(half_to_float(b.d));
        alignas(32) float dl[8];
        _mm256_store_ps(dl, _mm256_mul_ps(d, i8_to_float(_mm_cvtsi64_si128(static_cast<int64_t>(iq4_xs_scales(b))))));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m128i q = load16(b.qs + 16 * ib);
            const __m256 dv = _mm256_set1_ps(dl[ib]);
            store_scaled16(_mm_shuffle_epi8(levels, _mm_and_si128(q, low4)), dv, y);
            store_scaled16(_mm_shuffle_epi8(levels, _mm_and_si128(_mm_srli_epi16(q, 4), low4)), dv, y + 16);
        }
    }
}

void dequantize_q8_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ8_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(f32_field(b.d));
        for (int j = 0; j < 256; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(i8_to_float(load8(b.qs + j)), d));
    }
}

// ---- Dot products with Q8_K ------------------------------------------------------------

// Q3_K and Q6_K: the unsigned codes of half a block, four groups of 32 in value order
// (Q3_K's as q + 4 in 0-7: 2 bits of qs, the hmask bit as bit 2).
void k16_codes(const BlockQ3_K& b, int half, __m256i codes[4]) {
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i q = load32(b.qs + 32 * half), hmask = load32(b.hmask);
    for (int shift = 0; shift < 4; ++shift) {
        const int bit = 4 * half + shift;
        const __m256i high = bit >= 2 ? _mm256_srl_epi16(hmask, _mm_cvtsi32_si128(bit - 2)) : _mm256_sll_epi16(hmask, _mm_cvtsi32_si128(2 - bit));
        codes[shift] = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * shift)), three), _mm256_and_si256(high, four));
    }
}
void k16_codes(const BlockQ6_K& b, int half, __m256i codes[4]) { q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, codes); }

// Q3_K and Q6_K: sixteen signed scales of 16 values; the codes taken unsigned, their
// offset's share (k16_offsets) taken back once per block.
template <class Block> float dot_k16(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const Block*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const Block& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(k16_scales(b));
        __m256i sum = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            __m256i codes[4];
            k16_codes(b, half, codes);
            const __m256i scales = half ? _mm256_permute2x128_si256(scales16, scales16, 0x11) : _mm256_permute2x128_si256(scales16, scales16, 0x00);
            for (int g = 0; g < 4; ++g) {
                const __m256i p = _mm256_maddubs_epi16(codes[g], load32(a.qs + 128 * half + 32 * g));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, spread_words(2 * g, 2 * g + 1))));
            }
        }
        sum = _mm256_sub_epi32(sum, k16_offsets<Block>(scales16, a));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.d) * f32_field(a.d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

float dot_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i levels = _mm256_broadcastsi128_si256(load16(kIq4Levels)), low4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockIQ4_XS& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m128i scales8 = _mm_cvtsi64_si128(static_cast<int64_t>(iq4_xs_scales(b)));
        // Each scale once per 16-bit pair of a 32-value sub-block: 8 scales as 16-bit lanes,
        // spread below.
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scales8));
        __m256i sum = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib += 2) {
            // Two sub-blocks: low nibbles are values 0-15, high nibbles 16-31 of each.
            const __m256i q = load32(b.qs + 16 * ib);
            const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            const __m256i c[2] = {_mm256_permute2x128_si256(lo, hi, 0x20), _mm256_permute2x128_si256(lo, hi, 0x31)};
            for (int k = 0; k < 2; ++k) {
                // Signed levels x signed codes: |level| x (code with the level's sign).
                const __m256i level = _mm256_shuffle_epi8(levels, c[k]);
                const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(level), _mm256_sign_epi8(load32(a.qs + 32 * (ib + k)), level));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, spread_words(ib + k, ib + k))));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.d) * f32_field(a.d)), _mm256_cvtepi32_ps(sum), acc);
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

}  // namespace kernels::avx2
