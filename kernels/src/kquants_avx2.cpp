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
#include <immintrin.h>

#include <cstdint>
#include <cstring>

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

float f16(const uint8_t (&h)[2]) {
    uint16_t v;
    std::memcpy(&v, h, 2);
    return _cvtsh_ss(v);
}

float f32(const uint8_t (&b)[4]) {
    float v;
    std::memcpy(&v, b, 4);
    return v;
}

__m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
__m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
__m128i load8(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }

// The low 8 bytes of `bytes`, unsigned or signed, as floats.
__m256 u8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
__m256 i8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }

// 16 signed codes (bytes) times dl, to y[0..15]: dl x float(code), the decoders' order.
void store_scaled16(__m128i codes, __m256 dl, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, i8_to_float(codes)));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(dl, i8_to_float(_mm_unpackhi_epi64(codes, codes))));
}

float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 32-bit value `low` in the four lanes of the low 128 bits, `high` in the high four (one
// 256-bit constructor, which the compiler folds into a constant).
__m256i two_lanes(uint32_t low, uint32_t high) {
    const auto l = static_cast<int>(low), h = static_cast<int>(high);
    return _mm256_setr_epi32(l, l, l, l, h, h, h, h);
}

// A pshufb control that spreads byte j of each 128-bit lane over every 16-bit lane, zero
// extended (the high byte of each pair selects nothing).
__m256i spread_byte(int j) { return _mm256_set1_epi16(static_cast<short>(0x8000 | j)); }
// The same with a different byte in the two 128-bit lanes.
__m256i spread_bytes(int low, int high) { return two_lanes(0x80008000u | 0x10001u * low, 0x80008000u | 0x10001u * high); }
// A pshufb control that spreads 16-bit lane j (of each 128-bit lane) over every 16-bit lane:
// lane j_low in the low 128 bits, j_high in the high.
__m256i spread_words(int low, int high) { return two_lanes(0x01000100u + 0x02020202u * low, 0x01000100u + 0x02020202u * high); }

// ---- Scale unpacking -------------------------------------------------------------------

// Q4_K / Q5_K: the eight 6-bit scales and minimums of the 12 packed bytes, one byte each
// (quant::scale_min_k4): for j < 4 the low 6 bits of bytes j and j + 4; for j >= 4 the
// nibbles of byte j + 4 topped with the high two bits of bytes j - 4 and j.
void k4_unpack(const uint8_t* packed, uint64_t& scales, uint64_t& mins) {
    uint32_t w[3];
    std::memcpy(w, packed, 12);
    const uint32_t scales_high = (w[2] & 0x0f0f0f0f) | ((w[0] >> 2) & 0x30303030);
    const uint32_t mins_high = ((w[2] >> 4) & 0x0f0f0f0f) | ((w[1] >> 2) & 0x30303030);
    scales = (w[0] & 0x3f3f3f3f) | uint64_t{scales_high} << 32;
    mins = (w[1] & 0x3f3f3f3f) | uint64_t{mins_high} << 32;
}

// Q3_K: the sixteen 6-bit scales (quant::q3_k_scale) minus 32, as signed bytes.
__m128i q3_k_scales(const uint8_t* packed) {
    uint64_t low;
    uint32_t high;
    std::memcpy(&low, packed, 8);
    std::memcpy(&high, packed + 8, 4);
    // Scale i's top two bits are bits 2 (i / 4) of byte 8 + i % 4.
    const uint64_t top_first = (high & 0x03030303) | uint64_t{(high >> 2) & 0x03030303} << 32;
    const uint64_t top_second = ((high >> 4) & 0x03030303) | uint64_t{(high >> 6) & 0x03030303} << 32;
    const uint64_t first = (low & 0x0f0f0f0f0f0f0f0f) | top_first << 4;
    const uint64_t second = ((low >> 4) & 0x0f0f0f0f0f0f0f0f) | top_second << 4;
    return _mm_sub_epi8(_mm_set_epi64x(static_cast<int64_t>(second), static_cast<int64_t>(first)), _mm_set1_epi8(32));
}

// IQ4_XS: the eight 6-bit scales minus 32, as signed bytes (low 8 bytes).
uint64_t iq4_xs_scales(const BlockIQ4_XS& b) {
    uint32_t low;
    uint16_t high;
    std::memcpy(&low, b.scales_l, 4);
    std::memcpy(&high, b.scales_h, 2);
    uint64_t out = 0;
    for (int ib = 0; ib < 8; ++ib) {
        const uint32_t s = ((low >> (4 * ib)) & 0x0f) | ((high >> (2 * ib)) & 3) << 4;
        out |= uint64_t{(s - 32) & 0xff} << (8 * ib);
    }
    return out;
}

// The 16 IQ4 levels (quant::iq4_level) as signed bytes.
__m128i iq4_levels() { return _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113); }

// ---- Dequantization --------------------------------------------------------------------

void dequantize_q2_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ2_K*>(src);
    const __m256 levels = _mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3);  // vpermps reads 3 bits: the code, repeated
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ2_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(f16(b.d)), dmin = _mm256_set1_ps(f16(b.dmin));
        const __m128i sc = load16(b.scales);
        const __m128i scale = _mm_and_si128(sc, _mm_set1_epi8(0x0f)), min = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f));
        alignas(32) float dl[16], ml[16];
        _mm256_store_ps(dl, _mm256_mul_ps(d, u8_to_float(scale)));
        _mm256_store_ps(dl + 8, _mm256_mul_ps(d, u8_to_float(_mm_unpackhi_epi64(scale, scale))));
        _mm256_store_ps(ml, _mm256_mul_ps(dmin, u8_to_float(min)));
        _mm256_store_ps(ml + 8, _mm256_mul_ps(dmin, u8_to_float(_mm_unpackhi_epi64(min, min))));
        for (int half = 0; half < 2; ++half) {
            const uint8_t* q = b.qs + 32 * half;
            __m256i codes[4];
            for (int g = 0; g < 4; ++g) codes[g] = _mm256_cvtepu8_epi32(load8(q + 8 * g));
            for (int shift = 0; shift < 4; ++shift)
                for (int part = 0; part < 2; ++part) {
                    const int sub = 8 * half + 2 * shift + part;
                    const __m256 table = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(dl[sub]), levels), _mm256_set1_ps(ml[sub]));
                    float* out = y + 16 * sub;
                    const __m128i count = _mm_cvtsi32_si128(2 * shift);
                    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(table, _mm256_srl_epi32(codes[2 * part], count)));
                    _mm256_storeu_ps(out + 8, _mm256_permutevar8x32_ps(table, _mm256_srl_epi32(codes[2 * part + 1], count)));
                }
        }
    }
}

void dequantize_q3_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ3_K*>(src);
    const __m256 levels = _mm256_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3);  // index: code + 4 (the hmask bit is bit 2)
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ3_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(f16(b.d));
        const __m128i scales = q3_k_scales(b.scales);
        alignas(32) float dl[16];
        _mm256_store_ps(dl, _mm256_mul_ps(d, i8_to_float(scales)));
        _mm256_store_ps(dl + 8, _mm256_mul_ps(d, i8_to_float(_mm_unpackhi_epi64(scales, scales))));
        const __m256i hmask = load32(b.hmask);
        for (int half = 0; half < 2; ++half) {
            const __m256i q = load32(b.qs + 32 * half);
            for (int shift = 0; shift < 4; ++shift) {
                // Bit 4 x half + shift of hmask[l], moved to bit 2 of each byte (shifting 16-bit
                // lanes: the bit read always comes from the same byte).
                const int bit = 4 * half + shift;
                const __m256i high = bit >= 2 ? _mm256_srl_epi16(hmask, _mm_cvtsi32_si128(bit - 2)) : _mm256_sll_epi16(hmask, _mm_cvtsi32_si128(2 - bit));
                const __m256i index = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * shift)), three),
                                                      _mm256_and_si256(high, four));
                const __m128i parts[2] = {_mm256_castsi256_si128(index), _mm256_extracti128_si256(index, 1)};
                for (int part = 0; part < 2; ++part) {
                    const int sub = 8 * half + 2 * shift + part;
                    const __m256 table = _mm256_mul_ps(_mm256_set1_ps(dl[sub]), levels);
                    float* out = y + 16 * sub;
                    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(table, _mm256_cvtepu8_epi32(parts[part])));
                    _mm256_storeu_ps(out + 8, _mm256_permutevar8x32_ps(table, _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(parts[part], parts[part]))));
                }
            }
        }
    }
}

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

void dequantize_q4_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ4_K*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256)
        dequantize_k4<false>(f16(blocks[i].d), f16(blocks[i].dmin), blocks[i].scales, blocks[i].qs, nullptr, y);
}

void dequantize_q5_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ5_K*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256)
        dequantize_k4<true>(f16(blocks[i].d), f16(blocks[i].dmin), blocks[i].scales, blocks[i].qs, blocks[i].qh, y);
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
        const __m256 d = _mm256_set1_ps(f16(b.d));
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
    const __m128i levels = iq4_levels(), low4 = _mm_set1_epi8(0x0f);
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockIQ4_XS& b = blocks[i];
        const __m256 d = _mm256_set1_ps(f16(b.d));
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
        const __m256 d = _mm256_set1_ps(f32(b.d));
        for (int j = 0; j < 256; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(i8_to_float(load8(b.qs + j)), d));
    }
}

// ---- Dot products with Q8_K ------------------------------------------------------------

float dot_q2_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ2_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ2_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const float dx = f32(a.d);
        const __m128i sc = load16(b.scales);
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f));
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_and_si128(sc, _mm_set1_epi8(0x0f)));
        // Minimums: min_j x (sum of the 16 activation codes of sub-block j).
        const __m256i min_sums = _mm256_madd_epi16(load32(a.bsums), _mm256_cvtepu8_epi16(mins));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.dmin) * dx), _mm256_cvtepi32_ps(min_sums), acc_min);
        __m256i sum = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            const __m256i q = load32(b.qs + 32 * half);
            for (int shift = 0; shift < 4; ++shift) {
                const __m256i codes = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * shift)), three);
                const __m256i p = _mm256_maddubs_epi16(codes, load32(a.qs + 128 * half + 32 * shift));
                const int sub = 8 * half + 2 * shift;  // 16 values each: sub in the low 128 bits, sub + 1 in the high
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, spread_bytes(sub, sub + 1))));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

float dot_q3_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ3_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ3_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(q3_k_scales(b.scales));
        // Codes stored as q + 4 (0-7, hmask bit as bit 2): sum scale x (q + 4) x a, minus
        // 4 x scale x (the sub-block's activation sum).
        const __m256i offsets = _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), scales16), 2);
        const __m256i hmask = load32(b.hmask);
        __m256i sum = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            const __m256i q = load32(b.qs + 32 * half);
            const __m256i scales = half ? _mm256_permute2x128_si256(scales16, scales16, 0x11) : _mm256_permute2x128_si256(scales16, scales16, 0x00);
            for (int shift = 0; shift < 4; ++shift) {
                const int bit = 4 * half + shift;
                const __m256i high = bit >= 2 ? _mm256_srl_epi16(hmask, _mm_cvtsi32_si128(bit - 2)) : _mm256_sll_epi16(hmask, _mm_cvtsi32_si128(2 - bit));
                const __m256i codes = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * shift)), three),
                                                      _mm256_and_si256(high, four));
                const __m256i p = _mm256_maddubs_epi16(codes, load32(a.qs + 128 * half + 32 * shift));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, spread_words(2 * shift, 2 * shift + 1))));
            }
        }
        sum = _mm256_sub_epi32(sum, offsets);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * f32(a.d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

// Q4_K and Q5_K: the minimums' share of a block, min_j x (activation sums of sub-block j's
// two 16s), as 8 i32 lanes.
__m256i k4_min_sums(uint64_t mins, const BlockQ8_K& a) {
    const __m128i m = _mm_cvtsi64_si128(static_cast<int64_t>(mins));
    return _mm256_madd_epi16(load32(a.bsums), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)));
}

float dot_q4_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ4_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ4_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const float dx = f32(a.d);
        uint64_t sc, mins;
        k4_unpack(b.scales, sc, mins);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.dmin) * dx), _mm256_cvtepi32_ps(k4_min_sums(mins, a)), acc_min);
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtsi64_si128(static_cast<int64_t>(sc)));
        __m256i sum = _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; ++chunk) {
            const __m256i q = load32(b.qs + 32 * chunk);
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(q, low4), load32(a.qs + 64 * chunk));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), load32(a.qs + 64 * chunk + 32));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scales, spread_byte(2 * chunk))));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scales, spread_byte(2 * chunk + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

float dot_q5_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ5_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ5_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const float dx = f32(a.d);
        uint64_t sc, mins;
        k4_unpack(b.scales, sc, mins);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.dmin) * dx), _mm256_cvtepi32_ps(k4_min_sums(mins, a)), acc_min);
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtsi64_si128(static_cast<int64_t>(sc)));
        const __m256i qh = load32(b.qh);
        __m256i sum = _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; ++chunk) {
            const __m256i q = load32(b.qs + 32 * chunk);
            // Bits 2 x chunk and 2 x chunk + 1 of qh[l] moved to bit 4 (16-bit shifts; the
            // bit kept comes from the same byte).
            const int bit = 2 * chunk;
            const __m256i h0 = bit <= 4 ? _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - bit)) : _mm256_srl_epi16(qh, _mm_cvtsi32_si128(bit - 4));
            const __m256i h1 = bit + 1 <= 4 ? _mm256_sll_epi16(qh, _mm_cvtsi32_si128(3 - bit)) : _mm256_srl_epi16(qh, _mm_cvtsi32_si128(bit - 3));
            const __m256i c0 = _mm256_or_si256(_mm256_and_si256(q, low4), _mm256_and_si256(h0, bit4));
            const __m256i c1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), _mm256_and_si256(h1, bit4));
            const __m256i p0 = _mm256_maddubs_epi16(c0, load32(a.qs + 64 * chunk));
            const __m256i p1 = _mm256_maddubs_epi16(c1, load32(a.qs + 64 * chunk + 32));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(scales, spread_byte(2 * chunk))));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(scales, spread_byte(2 * chunk + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ6_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(load16(b.scales));
        // Codes taken as unsigned q (0-63): subtract 32 x scale x (activation sum) per 16.
        const __m256i offsets = _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), scales16), 5);
        __m256i sum = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            __m256i codes[4];
            q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, codes);
            const __m256i scales = half ? _mm256_permute2x128_si256(scales16, scales16, 0x11) : _mm256_permute2x128_si256(scales16, scales16, 0x00);
            for (int g = 0; g < 4; ++g) {
                const __m256i p = _mm256_maddubs_epi16(codes[g], load32(a.qs + 128 * half + 32 * g));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(scales, spread_words(2 * g, 2 * g + 1))));
            }
        }
        sum = _mm256_sub_epi32(sum, offsets);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * f32(a.d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

float dot_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i levels = _mm256_broadcastsi128_si256(iq4_levels()), low4 = _mm256_set1_epi8(0x0f);
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
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * f32(a.d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

}  // namespace

void add_kquants(detail::Table& t) {
    t.set_dequantize(TypeId::Q2_K, dequantize_q2_k);
    t.set_dequantize(TypeId::Q3_K, dequantize_q3_k);
    t.set_dequantize(TypeId::Q4_K, dequantize_q4_k);
    t.set_dequantize(TypeId::Q5_K, dequantize_q5_k);
    t.set_dequantize(TypeId::Q6_K, dequantize_q6_k);
    t.set_dequantize(TypeId::IQ4_XS, dequantize_iq4_xs);
    t.set_dequantize(TypeId::Q8_K, dequantize_q8_k);
    t.set_dot(TypeId::Q2_K, dot_q2_k);
    t.set_dot(TypeId::Q3_K, dot_q3_k);
    t.set_dot(TypeId::Q4_K, dot_q4_k);
    t.set_dot(TypeId::Q5_K, dot_q5_k);
    t.set_dot(TypeId::Q6_K, dot_q6_k);
    t.set_dot(TypeId::IQ4_XS, dot_iq4_xs);
}

}  // namespace kernels::avx2
