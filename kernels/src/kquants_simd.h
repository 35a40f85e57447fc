// K-quants code the AVX2 and AVX-512 paths share (kquants_avx2.cpp, kquants_avx512.cpp):
// scale unpacking, the Q2_K and Q3_K dequantization, the Q2_K, Q4_K and Q5_K dot products
// (256 bits at a time on both paths: see kquants_avx512.cpp's header), and the loop over
// Q4_K / Q5_K blocks around a path's own one-block decoder. Included by those two files only;
// everything is in an anonymous namespace, so each compiles its own copy with its own flags
// (table.h's rule), the AVX-512 one with EVEX encodings, VNNI and vpternlogd where the two
// helpers below select them.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "simd.h"

namespace kernels {
namespace {

// ---- Loads and small helpers -----------------------------------------------------------

inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m128i load8(const void* p) { return _mm_loadl_epi64(static_cast<const __m128i*>(p)); }

// The low 8 bytes of `bytes`, unsigned or signed, as floats.
inline __m256 u8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
inline __m256 i8_to_float(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); }

// A pshufb control that spreads byte `low` of the low 128 bits, `high` of the high, over
// their 16-bit lanes, zero extended (the high byte of each pair selects nothing).
inline __m256i spread_bytes(int low, int high) {
    const auto l = static_cast<int>(0x80008000u | 0x10001u * low), h = static_cast<int>(0x80008000u | 0x10001u * high);
    return _mm256_setr_epi32(l, l, l, l, h, h, h, h);
}

// sum + the products of the i16 lanes of p and s, added in pairs into the i32 lanes: one
// vpdpwssd where the path has VNNI, else vpmaddwd and vpaddd (the same integers).
inline __m256i add_pair_products(__m256i sum, __m256i p, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpwssd_epi32(sum, p, s);
#else
    return _mm256_add_epi32(sum, _mm256_madd_epi16(p, s));
#endif
}

// a | (b & c): one vpternlogd where the path has AVX-512 VL.
inline __m256i or_and(__m256i a, __m256i b, __m256i c) {
#if defined(__AVX512VL__)
    return _mm256_ternarylogic_epi32(a, b, c, 0xf8);
#else
    return _mm256_or_si256(a, _mm256_and_si256(b, c));
#endif
}

// ---- Scale unpacking -------------------------------------------------------------------

// Q4_K / Q5_K: the eight 6-bit scales and minimums of the 12 packed bytes, one byte each
// (quant::scale_min_k4): for j < 4 the low 6 bits of bytes j and j + 4; for j >= 4 the
// nibbles of byte j + 4 topped with the high two bits of bytes j - 4 and j.
inline void k4_unpack(const uint8_t* packed, uint64_t& scales, uint64_t& mins) {
    const uint32_t w[3] = {load_u32(packed), load_u32(packed + 4), load_u32(packed + 8)};
    const uint32_t scales_high = (w[2] & 0x0f0f0f0f) | ((w[0] >> 2) & 0x30303030);
    const uint32_t mins_high = ((w[2] >> 4) & 0x0f0f0f0f) | ((w[1] >> 2) & 0x30303030);
    scales = (w[0] & 0x3f3f3f3f) | uint64_t{scales_high} << 32;
    mins = (w[1] & 0x3f3f3f3f) | uint64_t{mins_high} << 32;
}

// Q3_K: the sixteen 6-bit scales (quant::q3_k_scale) minus 32, as signed bytes.
inline __m128i q3_k_scales(const uint8_t* packed) {
    const uint64_t low = load_u64(packed);
    const uint32_t high = load_u32(packed + 8);
    // Scale i's top two bits are bits 2 (i / 4) of byte 8 + i % 4.
    const uint64_t top_first = (high & 0x03030303) | uint64_t{(high >> 2) & 0x03030303} << 32;
    const uint64_t top_second = ((high >> 4) & 0x03030303) | uint64_t{(high >> 6) & 0x03030303} << 32;
    const uint64_t first = (low & 0x0f0f0f0f0f0f0f0f) | top_first << 4;
    const uint64_t second = ((low >> 4) & 0x0f0f0f0f0f0f0f0f) | top_second << 4;
    return _mm_sub_epi8(_mm_set_epi64x(static_cast<int64_t>(second), static_cast<int64_t>(first)), _mm_set1_epi8(32));
}

// IQ4_XS: the eight 6-bit scales minus 32, as signed bytes (low 8 bytes).
inline uint64_t iq4_xs_scales(const quant::BlockIQ4_XS& b) {
    const uint32_t low = load_u32(b.scales_l);
    const uint16_t high = load_u16(b.scales_h);
    uint64_t out = 0;
    for (int ib = 0; ib < 8; ++ib) {
        const uint32_t s = ((low >> (4 * ib)) & 0x0f) | ((high >> (2 * ib)) & 3) << 4;
        out |= uint64_t{(s - 32) & 0xff} << (8 * ib);
    }
    return out;
}

// Q4_K and Q5_K: the minimums' share of a block, min_j x (activation sums of sub-block j's
// two 16s), as 8 i32 lanes.
inline __m256i k4_min_sums(uint64_t mins, const quant::BlockQ8_K& a) {
    const __m128i m = _mm_cvtsi64_si128(static_cast<int64_t>(mins));
    return _mm256_madd_epi16(load32(a.bsums), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)));
}

// Q3_K and Q6_K: the sixteen signed scales, each for 16 values.
inline __m128i k16_scales(const quant::BlockQ3_K& b) { return q3_k_scales(b.scales); }
inline __m128i k16_scales(const quant::BlockQ6_K& b) { return load16(b.scales); }

// Q3_K and Q6_K dot products take the codes unsigned (Q3_K q + 4, Q6_K q + 32): the offset's
// share of a block, offset x scale x (the activation sum of its 16 values), as 8 i32 lanes.
template <class Block> __m256i k16_offsets(__m256i scales16, const quant::BlockQ8_K& a) {
    constexpr int kLog2Offset = Block::kType == gguf::TypeId::Q3_K ? 2 : 5;
    return _mm256_slli_epi32(_mm256_madd_epi16(load32(a.bsums), scales16), kLog2Offset);
}

// ---- Dequantization --------------------------------------------------------------------

// Few levels per sub-block (Q2_K 4, Q3_K 8): the results dl x level - ml are computed once
// per sub-block and the codes pick among them with vpermps, eight lanes at a time.
inline void dequantize_q2_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const quant::BlockQ2_K*>(src);
    const __m256 levels = _mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3);  // vpermps reads 3 bits: the code, repeated
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const quant::BlockQ2_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(half_to_float(b.d)), dmin = _mm256_set1_ps(half_to_float(b.dmin));
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

inline void dequantize_q3_k(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const quant::BlockQ3_K*>(src);
    const __m256 levels = _mm256_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3);  // index: code + 4 (the hmask bit is bit 2)
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const quant::BlockQ3_K& b = blocks[i];
        const __m256 d = _mm256_set1_ps(half_to_float(b.d));
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

// A path's decoder of one Q4_K or Q5_K block (8 sub-blocks of 32; qh is nullptr for Q4_K).
using K4BlockDecoder = void (*)(float d, float dmin, const uint8_t* packed, const uint8_t* qs, const uint8_t* qh, float* y);

// n_blocks Q4_K or Q5_K blocks through the path's decoder.
template <class Block, K4BlockDecoder kDecode> void dequantize_k4_blocks(const uint8_t* src, float* y, int64_t n_blocks) {
    const auto* blocks = reinterpret_cast<const Block*>(src);
    for (int64_t i = 0; i < n_blocks; ++i, y += 256) {
        const Block& b = blocks[i];
        if constexpr (Block::kType == gguf::TypeId::Q5_K)
            kDecode(half_to_float(b.d), half_to_float(b.dmin), b.scales, b.qs, b.qh, y);
        else
            kDecode(half_to_float(b.d), half_to_float(b.dmin), b.scales, b.qs, nullptr, y);
    }
}

// ---- Dot products with Q8_K, 256 bits at a time ----------------------------------------

inline float dot_q2_k(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const auto* wb = reinterpret_cast<const quant::BlockQ2_K*>(w);
    const auto* xb = reinterpret_cast<const quant::BlockQ8_K*>(x);
    const __m256i three = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const quant::BlockQ2_K& b = wb[i];
        const quant::BlockQ8_K& a = xb[i];
        const float dx = f32_field(a.d);
        const __m128i sc = load16(b.scales);
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f));
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_and_si128(sc, _mm_set1_epi8(0x0f)));
        // Minimums: min_j x (sum of the 16 activation codes of sub-block j).
        const __m256i min_sums = _mm256_madd_epi16(load32(a.bsums), _mm256_cvtepu8_epi16(mins));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.dmin) * dx), _mm256_cvtepi32_ps(min_sums), acc_min);
        __m256i sum = _mm256_setzero_si256();
        for (int half = 0; half < 2; ++half) {
            const __m256i q = load32(b.qs + 32 * half);
            for (int shift = 0; shift < 4; ++shift) {
                const __m256i codes = _mm256_and_si256(_mm256_srli_epi16(q, 2 * shift), three);
                const __m256i p = _mm256_maddubs_epi16(codes, load32(a.qs + 128 * half + 32 * shift));
                const int sub = 8 * half + 2 * shift;  // 16 values each: sub in the low 128 bits, sub + 1 in the high
                sum = add_pair_products(sum, p, _mm256_shuffle_epi8(scales, spread_bytes(sub, sub + 1)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

// Q4_K and Q5_K.
template <class Block> float dot_k4(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    constexpr bool kFifthBit = Block::kType == gguf::TypeId::Q5_K;
    const auto* wb = reinterpret_cast<const Block*>(w);
    const auto* xb = reinterpret_cast<const quant::BlockQ8_K*>(x);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i) {
        const Block& b = wb[i];
        const quant::BlockQ8_K& a = xb[i];
        const float dx = f32_field(a.d);
        uint64_t sc, mins;
        k4_unpack(b.scales, sc, mins);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.dmin) * dx), _mm256_cvtepi32_ps(k4_min_sums(mins, a)), acc_min);
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtsi64_si128(static_cast<int64_t>(sc)));
        __m256i high = _mm256_setzero_si256();
        if constexpr (kFifthBit) high = load32(b.qh);
        __m256i sum = _mm256_setzero_si256();
        for (int chunk = 0; chunk < 4; ++chunk) {
            const __m256i q = load32(b.qs + 32 * chunk);
            __m256i c0 = _mm256_and_si256(q, low4), c1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if constexpr (kFifthBit) {
                // Bits 2 x chunk and 2 x chunk + 1 of qh[l] moved to bit 4 (16-bit shifts; the
                // bit kept comes from the same byte).
                const int bit = 2 * chunk;
                const __m256i h0 = bit <= 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(4 - bit)) : _mm256_srl_epi16(high, _mm_cvtsi32_si128(bit - 4));
                const __m256i h1 = bit + 1 <= 4 ? _mm256_sll_epi16(high, _mm_cvtsi32_si128(3 - bit)) : _mm256_srl_epi16(high, _mm_cvtsi32_si128(bit - 3));
                c0 = or_and(c0, h0, bit4);
                c1 = or_and(c1, h1, bit4);
            }
            const __m256i p0 = _mm256_maddubs_epi16(c0, load32(a.qs + 64 * chunk));
            const __m256i p1 = _mm256_maddubs_epi16(c1, load32(a.qs + 64 * chunk + 32));
            sum = add_pair_products(sum, p0, _mm256_shuffle_epi8(scales, spread_bytes(2 * chunk, 2 * chunk)));
            sum = add_pair_products(sum, p1, _mm256_shuffle_epi8(scales, spread_bytes(2 * chunk + 1, 2 * chunk + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b.d) * dx), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

}  // namespace
}  // namespace kernels
