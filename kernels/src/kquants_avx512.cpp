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
// 292-byte block) straddles two cache lines in 15 blocks of 16.
// GCC 12 warns of "uninitialized" __Y inside its own AVX-512 intrinsics (its bug 105593,
// fixed in GCC 13); the values are the _mm512_undefined_*() the headers use on purpose.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

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

__m512i load64(const void* p) { return _mm512_loadu_si512(p); }
__m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
__m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
__m128i load8(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }
// 32 bytes in both halves of a register.
__m512i load32x2(const void* p) { return _mm512_broadcast_i64x4(load32(p)); }

// Bytes as floats: 8 (low bytes of an xmm) or 16.
__m256 u8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
__m256 i8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }
__m512 i8x16_to_float(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

// 64 signed codes (bytes) times dl[sub + 0..3] (one per 16), to y[0..63]: dl x float(code).
void store_scaled64(__m512i codes, const float* dl, float* y) {
    _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_set1_ps(dl[0]), i8x16_to_float(_mm512_castsi512_si128(codes))));
    _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_set1_ps(dl[1]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 1))));
    _mm512_storeu_ps(y + 32, _mm512_mul_ps(_mm512_set1_ps(dl[2]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 2))));
    _mm512_storeu_ps(y + 48, _mm512_mul_ps(_mm512_set1_ps(dl[3]), i8x16_to_float(_mm512_extracti32x4_epi32(codes, 3))));
}

float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
float hsum(__m512 v) { return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))); }

// Per-qword shift counts: `low` for the low 256 bits, `high` for the high.
__m512i counts(int low, int high) { return _mm512_setr_epi64(low, low, low, low, high, high, high, high); }

// A vpermw index putting 16-bit lane w_i in every 16-bit lane of 128-bit lane i.
__m512i spread_words(int w0, int w1, int w2, int w3) {
    const int a = 0x10001 * w0, b = 0x10001 * w1, c = 0x10001 * w2, d = 0x10001 * w3;
    return _mm512_setr_epi32(a, a, a, a, b, b, b, b, c, c, c, c, d, d, d, d);
}

// A vpshufb control that spreads byte `low` of the low 128 bits, `high` of the high, over
// their 16-bit lanes, zero extended (the high byte of each pair selects nothing).
__m256i spread_bytes256(int low, int high) {
    const auto l = static_cast<int>(0x80008000u | 0x10001u * low), h = static_cast<int>(0x80008000u | 0x10001u * high);
    return _mm256_setr_epi32(l, l, l, l, h, h, h, h);
}

// ---- Scale unpacking (as kquants_avx2.cpp) ---------------------------------------------

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

// The 16 IQ4 levels (quant::iq4_level).
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

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

void dequantize_q6_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
    const __m512i offset = _mm512_set1_epi8(32);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const BlockQ6_K& b = blocks[i];
        const __m512 d = _mm512_set1_ps(f16(b.d));
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
        const __m256 d = _mm256_set1_ps(f16(b.d));
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
        const __m512 d = _mm512_set1_ps(f32(b.d));
        for (int j = 0; j < 256; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(i8x16_to_float(load16(b.qs + j)), d));
    }
}

// ---- Dot products with Q8_K ------------------------------------------------------------

// 256 bits at a time (measured faster here than 512: see the top).
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
            for (int shift = 0; shift < 4; ++shift) {  // sub-blocks sub (low 128 bits) and sub + 1
                const __m256i codes = _mm256_and_si256(_mm256_srli_epi16(q, 2 * shift), three);
                const __m256i p = _mm256_maddubs_epi16(codes, load32(a.qs + 128 * half + 32 * shift));
                const int sub = 8 * half + 2 * shift;
                sum = _mm256_dpwssd_epi32(sum, p, _mm256_shuffle_epi8(scales, spread_bytes256(sub, sub + 1)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

float dot_q3_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ3_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ3_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(q3_k_scales(b.scales));
        const __m512i scales = _mm512_castsi256_si512(scales16);
        // Codes taken as q + 4 (0-7): subtract 4 x scale x (the sub-block's activation sum).
        const __m256i offsets = _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), scales16), 2);
        const __m512i hmask = load32x2(b.hmask);
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offsets));
        for (int half = 0; half < 2; ++half) {
            const __m512i q = load32x2(b.qs + 32 * half);
            for (int pair = 0; pair < 2; ++pair) {
                const __m512i p = _mm512_maddubs_epi16(q3_k_codes(q, hmask, half, pair), load64(a.qs + 128 * half + 64 * pair));
                const int sub = 8 * half + 4 * pair;
                sum = _mm512_dpwssd_epi32(sum, p, _mm512_permutexvar_epi16(spread_words(sub, sub + 1, sub + 2, sub + 3), scales));
            }
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(f16(b.d) * f32(a.d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

// Q4_K and Q5_K: the minimums' share of a block, min_j x (activation sums of sub-block j's
// two 16s), as 8 i32 lanes.
__m256i k4_min_sums(uint64_t mins, const BlockQ8_K& a) {
    const __m128i m = _mm_cvtsi64_si128(static_cast<int64_t>(mins));
    return _mm256_madd_epi16(load32(a.bsums), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)));
}

// Q4_K and Q5_K, 256 bits at a time (measured faster here than 512: see the top).
template <class Block> float dot_k4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    constexpr bool kFifthBit = Block::kType == TypeId::Q5_K;
    const auto* wb = reinterpret_cast<const Block*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const Block& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const float dx = f32(a.d);
        uint64_t sc, mins;
        k4_unpack(b.scales, sc, mins);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.dmin) * dx), _mm256_cvtepi32_ps(k4_min_sums(mins, a)), acc_min);
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtsi64_si128(static_cast<int64_t>(sc)));
        __m256i high = _mm256_setzero_si256();
        if constexpr (kFifthBit) high = load32(b.qh);
        __m256i sum = _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; ++chunk) {
            const __m256i q = load32(b.qs + 32 * chunk);
            __m256i c0 = _mm256_and_si256(q, low4), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if constexpr (kFifthBit) {
                const int bit = 2 * chunk;
                const __m256i h0 = bit <= 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(4 - bit)) : _mm256_srl_epi16(high, _mm_cvtsi32_si128(bit - 4));
                const __m256i h1 = bit + 1 <= 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(3 - bit)) : _mm256_srl_epi16(high, _mm_cvtsi32_si128(bit - 3));
                c0 = _mm256_ternarylogic_epi32(c0, h0, bit4, 0xf8);
                c1 = _mm256_ternarylogic_epi32(c1, h1, bit4, 0xf8);
            }
            const __m256i p0 = _mm256_maddubs_epi16(c0, load32(a.qs + 64 * chunk));
            const __m256i p1 = _mm256_maddubs_epi16(c1, load32(a.qs + 64 * chunk + 32));
            sum = _mm256_dpwssd_epi32(sum, p0, _mm256_shuffle_epi8(scales, spread_bytes256(2 * chunk, 2 * chunk)));
            sum = _mm256_dpwssd_epi32(sum, p1, _mm256_shuffle_epi8(scales, spread_bytes256(2 * chunk + 1, 2 * chunk + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}
float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
    const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const BlockQ6_K& b = wb[i];
        const BlockQ8_K& a = xb[i];
        const __m256i scales16 = _mm256_cvtepi8_epi16(load16(b.scales));
        const __m512i scales = _mm512_castsi256_si512(scales16);
        // Codes taken as unsigned q (0-63): subtract 32 x scale x (activation sum) per 16.
        const __m256i offsets = _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), scales16), 5);
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offsets));
        for (int half = 0; half < 2; ++half) {
            __m512i codes[2];
            q6_k_codes(b.ql + 64 * half, b.qh + 32 * half, codes[0], codes[1]);
            for (int g = 0; g < 2; ++g) {
                const __m512i p = _mm512_maddubs_epi16(codes[g], load64(a.qs + 128 * half + 64 * g));
                const int sub = 8 * half + 4 * g;
                sum = _mm512_dpwssd_epi32(sum, p, _mm512_permutexvar_epi16(spread_words(sub, sub + 1, sub + 2, sub + 3), scales));
            }
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(f16(b.d) * f32(a.d)), _mm512_cvtepi32_ps(sum), acc);
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
        acc = _mm512_fmadd_ps(_mm512_set1_ps(f16(b.d) * f32(a.d)), _mm512_cvtepi32_ps(sum), acc);
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
    t.set_dot(TypeId::Q4_K, dot_k4<BlockQ4_K>);
    t.set_dot(TypeId::Q5_K, dot_k4<BlockQ5_K>);
    t.set_dot(TypeId::Q6_K, dot_q6_k);
    t.set_dot(TypeId::IQ4_XS, dot_iq4_xs);
}

}  // namespace kernels::avx512
