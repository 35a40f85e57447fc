// iquants, avx512 path: the grid i-quants IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S.
//
// Dequantization equals quant/decode.h bit for bit. Each 8 values are one grid entry (two
// for IQ3) widened to floats, multiplied by the scale, then the sign bit flipped where the
// value is negative: the compiled decoder turns its (dl x g) x -1 into a negation (GCC folds
// x * -1.0f to -x), which flips a NaN's sign too, so this is its result bit for bit.
// IQ1's g + delta is exact in floats.
// f16 scales go through vcvtph2ps, which quiets a signalling NaN: the decoder's first
// multiplication quiets it too, and every scale here is multiplied before it is stored.
//
// Dot products with Q8_K activations: grid bytes (unsigned) times signed activation codes
// with maddubs, the signs applied to the activations, then madd with the integer scale
// multipliers of each 16 values; one float multiply-add per block.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "quant/grids.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;
using quant::BlockIQ1_M;
using quant::BlockIQ1_S;
using quant::BlockIQ2_S;
using quant::BlockIQ2_XS;
using quant::BlockIQ2_XXS;
using quant::BlockIQ3_S;
using quant::BlockIQ3_XXS;
using quant::BlockQ8_K;

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Four groups of 7 sign bits (bits 0-6, 7-13, 14-20, 21-27) to four sign bytes, each
// completed by even parity in its bit 7 (the decoder's signs_from7). Bit 0 of each byte of
// p ends up the parity of that byte: the shifts only ever bring in bits of the same byte.
uint32_t signs_from7x4(uint32_t bits28) {
    const uint32_t s = _pdep_u32(bits28, 0x7f7f7f7fu);
    uint32_t p = s ^ (s >> 4);
    p ^= p >> 2;
    p ^= p >> 1;
    return s | (p & 0x01010101u) << 7;
}

// ---- Dequantization --------------------------------------------------------------------

// 16 bytes, unsigned or signed, as floats. (The maskz forms: GCC 12 warns of the plain
// forms' undefined pass-through once inlined.)
__m512 unsigned_floats(__m128i bytes) { return _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepu8_epi32(0xffff, bytes)); }
__m512 signed_floats(__m128i bytes) { return _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, bytes)); }

// 16 values dl x g from 16 unsigned grid bytes, the sign bit flipped in the lanes of `negative`.
void put16(float* y, __m128i grid, __mmask16 negative, __m512 dl) {
    const __m512 v = _mm512_mul_ps(dl, unsigned_floats(grid));
    _mm512_storeu_ps(y, _mm512_mask_xor_ps(v, negative, v, _mm512_set1_ps(-0.0f)));
}
// 32 values: grid entries e0-e3, sign bits `signs`, dl0 for the first 16 and dl1 for the next.
void put32(float* y, uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3, uint32_t signs, __m512 dl0, __m512 dl1) {
    put16(y, _mm_set_epi64x(static_cast<int64_t>(e1), static_cast<int64_t>(e0)), static_cast<__mmask16>(signs), dl0);
    put16(y + 16, _mm_set_epi64x(static_cast<int64_t>(e3), static_cast<int64_t>(e2)), static_cast<__mmask16>(signs >> 16), dl1);
}

// 16 IQ1 values dl x (g + delta) from 16 signed grid bytes; delta is -1/8 in the lanes of
// `negative`, else 1/8.
void put16_iq1(float* y, uint64_t e0, uint64_t e1, __mmask16 negative, __m512 dl) {
    const __m512 g = signed_floats(_mm_set_epi64x(static_cast<int64_t>(e1), static_cast<int64_t>(e0)));
    const __m512 delta = _mm512_mask_blend_ps(negative, _mm512_set1_ps(0.125f), _mm512_set1_ps(-0.125f));
    _mm512_storeu_ps(y, _mm512_mul_ps(dl, _mm512_add_ps(g, delta)));
}

void dequantize_iq2_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint8_t* q = b->qs + 8 * ib;
            const uint32_t meta = load_u32(q + 4);
            const __m512 db = _mm512_set1_ps(d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f);
            put32(y, grid[q[0]], grid[q[1]], grid[q[2]], grid[q[3]], signs_from7x4(meta), db, db);
        }
    }
}

void dequantize_iq2_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m512 db0 = _mm512_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f);
            const __m512 db1 = _mm512_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f);
            const uint64_t codes = load_u64(b->qs + 8 * ib);  // four u16: 9-bit index, 7 sign bits
            const uint32_t signs = signs_from7x4(static_cast<uint32_t>(_pext_u64(codes, 0xfe00fe00fe00fe00ull)));
            put32(y, grid[codes & 511], grid[(codes >> 16) & 511], grid[(codes >> 32) & 511], grid[(codes >> 48) & 511], signs, db0, db1);
        }
    }
}

void dequantize_iq2_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    for (const auto* b = reinterpret_cast<const BlockIQ2_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m512 db0 = _mm512_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f);
            const __m512 db1 = _mm512_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f);
            const uint8_t* q = b->qs + 4 * ib;
            const int qh = b->qh[ib];
            put32(y, grid[q[0] | ((qh << 8) & 0x300)], grid[q[1] | ((qh << 6) & 0x300)], grid[q[2] | ((qh << 4) & 0x300)],
                  grid[q[3] | ((qh << 2) & 0x300)], load_u32(b->qs + 32 + 4 * ib), db0, db1);
        }
    }
}

// Two IQ3 entries of 4 bytes as one of 8.
uint64_t iq3_pair(const uint32_t* grid, int first, int second) { return grid[first] | uint64_t{grid[second]} << 32; }

void dequantize_iq3_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ3_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t meta = load_u32(b->qs + 64 + 4 * ib);
            const __m512 db = _mm512_set1_ps(d * (0.5f + static_cast<float>(meta >> 28)) * 0.5f);
            const uint8_t* q = b->qs + 8 * ib;
            put32(y, iq3_pair(grid, q[0], q[1]), iq3_pair(grid, q[2], q[3]), iq3_pair(grid, q[4], q[5]), iq3_pair(grid, q[6], q[7]),
                  signs_from7x4(meta), db, db);
        }
    }
}

void dequantize_iq3_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    for (const auto* b = reinterpret_cast<const BlockIQ3_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int scale = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const __m512 db = _mm512_set1_ps(d * static_cast<float>(1 + 2 * scale));
            const uint8_t* q = b->qs + 8 * ib;
            const int qh = b->qh[ib];
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = q[j] | ((qh << (8 - j)) & 256);
            put32(y, iq3_pair(grid, idx[0], idx[1]), iq3_pair(grid, idx[2], idx[3]), iq3_pair(grid, idx[4], idx[5]),
                  iq3_pair(grid, idx[6], idx[7]), load_u32(b->signs + 4 * ib), db, db);
        }
    }
}

void dequantize_iq1_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);
            const __m512 dl = _mm512_set1_ps(d * static_cast<float>(2 * ((qh >> 12) & 7) + 1));
            const __mmask16 negative = qh & 0x8000 ? 0xffff : 0;
            const uint8_t* q = b->qs + 4 * ib;
            put16_iq1(y, grid[q[0] | (qh & 7) << 8], grid[q[1] | ((qh >> 3) & 7) << 8], negative, dl);
            put16_iq1(y + 16, grid[q[2] | ((qh >> 6) & 7) << 8], grid[q[3] | ((qh >> 9) & 7) << 8], negative, dl);
        }
    }
}

// IQ1_M's f16 d, from the top nibbles of its four u16 scale words.
uint16_t iq1_m_d_bits(const uint8_t* scales) {
    const uint64_t s = load_u64(scales);
    return static_cast<uint16_t>(_pext_u64(s, 0xf000f000f000f000ull));
}

void dequantize_iq1_m(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_M*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(iq1_m_d_bits(b->scales));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t sc = load_u16(b->scales + 2 * (ib / 2));
            const int shift = 6 * (ib % 2);
            const __m512 dl0 = _mm512_set1_ps(d * static_cast<float>(2 * ((sc >> shift) & 7) + 1));
            const __m512 dl1 = _mm512_set1_ps(d * static_cast<float>(2 * ((sc >> (shift + 3)) & 7) + 1));
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            const uint32_t negative = _pdep_u32(_pext_u32(qh, 0x8888u), 0x01010101u) * 0xffu;  // a byte of lane bits per 8 values
            const uint8_t* q = b->qs + 4 * ib;
            put16_iq1(y, grid[q[0] | (qh & 7) << 8], grid[q[1] | ((qh >> 4) & 7) << 8], static_cast<__mmask16>(negative), dl0);
            put16_iq1(y + 16, grid[q[2] | ((qh >> 8) & 7) << 8], grid[q[3] | ((qh >> 12) & 7) << 8], static_cast<__mmask16>(negative >> 16), dl1);
        }
    }
}

// ---- Dot products with Q8_K activations ------------------------------------------------

// 32 activation codes, negated where bit j of `signs` is set (codes are within +-127).
__m256i signed_codes(const int8_t* q, uint32_t signs) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return _mm256_mask_sub_epi8(v, signs, _mm256_setzero_si256(), v);
}

// The i16 multipliers of 32 values: `low` for the first 16, `high` for the next.
__m256i scale_pair(int low, int high) { return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(high)), _mm_set1_epi16(static_cast<int16_t>(low))); }

// acc + per-16 sums of grid x code, times the multipliers.
__m256i accumulate(__m256i acc, __m256i grid, __m256i codes, __m256i scales) {
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(grid, codes), scales);
}

__m256i grid4(const uint64_t* grid, int i0, int i1, int i2, int i3) {
    return _mm256_set_epi64x(static_cast<int64_t>(grid[i3]), static_cast<int64_t>(grid[i2]), static_cast<int64_t>(grid[i1]), static_cast<int64_t>(grid[i0]));
}
__m256i grid8(const uint32_t* grid, const int* i) {
    return _mm256_set_epi64x(static_cast<int64_t>(grid[i[6]] | uint64_t{grid[i[7]]} << 32), static_cast<int64_t>(grid[i[4]] | uint64_t{grid[i[5]]} << 32),
                             static_cast<int64_t>(grid[i[2]] | uint64_t{grid[i[3]]} << 32), static_cast<int64_t>(grid[i[0]] | uint64_t{grid[i[1]]} << 32));
}

float activation_scale(const BlockQ8_K& x) {
    float d;
    std::memcpy(&d, x.d, 4);
    return d;
}

// Block sums: sum += d x (the block's integer sum, in 8 lanes), then the lanes in a fixed order.
__m256 add_block(__m256 sum, float d, __m256i acc) { return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(acc), sum); }
float horizontal_sum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// IQ2_XXS: value = d (2s + 1) / 8 x g x sign.
float dot_iq2_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    const auto* b = reinterpret_cast<const BlockIQ2_XXS*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b->qs + 8 * ib;
            const uint32_t meta = load_u32(q + 4);
            const int s = 2 * static_cast<int>(meta >> 28) + 1;
            acc = accumulate(acc, grid4(grid, q[0], q[1], q[2], q[3]), signed_codes(a->qs + 32 * ib, signs_from7x4(meta)), _mm256_set1_epi16(static_cast<int16_t>(s)));
        }
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a) * 0.125f, acc);
    }
    return horizontal_sum(sum);
}

float dot_iq2_xs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    const auto* b = reinterpret_cast<const BlockIQ2_XS*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint64_t codes = load_u64(b->qs + 8 * ib);
            const uint32_t signs = signs_from7x4(static_cast<uint32_t>(_pext_u64(codes, 0xfe00fe00fe00fe00ull)));
            const __m256i g = grid4(grid, codes & 511, (codes >> 16) & 511, (codes >> 32) & 511, (codes >> 48) & 511);
            const int sc = b->scales[ib];
            acc = accumulate(acc, g, signed_codes(a->qs + 32 * ib, signs), scale_pair(2 * (sc & 0x0f) + 1, 2 * (sc >> 4) + 1));
        }
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a) * 0.125f, acc);
    }
    return horizontal_sum(sum);
}

float dot_iq2_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    const auto* b = reinterpret_cast<const BlockIQ2_S*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b->qs + 4 * ib;
            const int qh = b->qh[ib];
            const __m256i g = grid4(grid, q[0] | ((qh << 8) & 0x300), q[1] | ((qh << 6) & 0x300), q[2] | ((qh << 4) & 0x300), q[3] | ((qh << 2) & 0x300));
            const int sc = b->scales[ib];
            acc = accumulate(acc, g, signed_codes(a->qs + 32 * ib, load_u32(b->qs + 32 + 4 * ib)), scale_pair(2 * (sc & 0x0f) + 1, 2 * (sc >> 4) + 1));
        }
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a) * 0.125f, acc);
    }
    return horizontal_sum(sum);
}

// IQ3_XXS: value = d (2s + 1) / 4 x g x sign.
float dot_iq3_xxs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    const auto* b = reinterpret_cast<const BlockIQ3_XXS*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b->qs + 8 * ib;
            const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
            const uint32_t meta = load_u32(b->qs + 64 + 4 * ib);
            const int s = 2 * static_cast<int>(meta >> 28) + 1;
            acc = accumulate(acc, grid8(grid, idx), signed_codes(a->qs + 32 * ib, signs_from7x4(meta)), _mm256_set1_epi16(static_cast<int16_t>(s)));
        }
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a) * 0.25f, acc);
    }
    return horizontal_sum(sum);
}

// IQ3_S: value = d (2s + 1) x g x sign.
float dot_iq3_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    const auto* b = reinterpret_cast<const BlockIQ3_S*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* q = b->qs + 8 * ib;
            const int qh = b->qh[ib];
            int idx[8];
            for (int j = 0; j < 8; ++j) idx[j] = q[j] | ((qh << (8 - j)) & 256);
            const int s = 2 * ((b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f) + 1;
            acc = accumulate(acc, grid8(grid, idx), signed_codes(a->qs + 32 * ib, load_u32(b->signs + 4 * ib)), _mm256_set1_epi16(static_cast<int16_t>(s)));
        }
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a), acc);
    }
    return horizontal_sum(sum);
}

// IQ1: value = dl (g + delta) = dl (8g + e) / 8 with e = +-1. The unsigned bytes
// v = 8 (g + 1) + 1 + e = 8g + e + 9 (0 to 18) go through maddubs; the 9 x (sum of the codes)
// this adds comes back off through the activations' sums of 16.
__m256i iq1_bytes(__m256i grid, __m256i e_plus_1) {
    return _mm256_or_si256(_mm256_slli_epi16(_mm256_add_epi8(grid, _mm256_set1_epi8(1)), 3), e_plus_1);
}

float dot_iq1_s(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    const auto* b = reinterpret_cast<const BlockIQ1_S*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        int correction = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);
            const uint8_t* q = b->qs + 4 * ib;
            const __m256i g = grid4(grid, q[0] | (qh & 7) << 8, q[1] | ((qh >> 3) & 7) << 8, q[2] | ((qh >> 6) & 7) << 8, q[3] | ((qh >> 9) & 7) << 8);
            const int s = 2 * static_cast<int>((qh >> 12) & 7) + 1;
            const __m256i e = _mm256_set1_epi8(qh & 0x8000 ? 0 : 2);
            const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * ib));
            acc = accumulate(acc, iq1_bytes(g, e), codes, _mm256_set1_epi16(static_cast<int16_t>(s)));
            correction += s * (static_cast<int16_t>(load_u16(a->bsums + 4 * ib)) + static_cast<int16_t>(load_u16(a->bsums + 4 * ib + 2)));
        }
        acc = _mm256_sub_epi32(acc, _mm256_setr_epi32(9 * correction, 0, 0, 0, 0, 0, 0, 0));
        sum = add_block(sum, half_to_float(load_u16(b->d)) * activation_scale(*a) * 0.125f, acc);
    }
    return horizontal_sum(sum);
}

float dot_iq1_m(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    const auto* b = reinterpret_cast<const BlockIQ1_M*>(w);
    const auto* a = reinterpret_cast<const BlockQ8_K*>(x);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        int correction = 0;
        const uint64_t scales = load_u64(b->scales);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            const uint8_t* q = b->qs + 4 * ib;
            const __m256i g = grid4(grid, q[0] | (qh & 7) << 8, q[1] | ((qh >> 4) & 7) << 8, q[2] | ((qh >> 8) & 7) << 8, q[3] | ((qh >> 12) & 7) << 8);
            const __mmask32 positive = _pdep_u32(_pext_u32(~qh, 0x8888u), 0x01010101u) * 0xffu;  // a byte of lane bits per 8 values
            const __m256i e = _mm256_maskz_mov_epi8(positive, _mm256_set1_epi8(2));
            const int at = 16 * (ib / 2) + 6 * (ib % 2);  // two 3-bit scales per 32 values, three pairs per u16
            const int s0 = 2 * static_cast<int>((scales >> at) & 7) + 1;
            const int s1 = 2 * static_cast<int>((scales >> (at + 3)) & 7) + 1;
            const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a->qs + 32 * ib));
            acc = accumulate(acc, iq1_bytes(g, e), codes, scale_pair(s0, s1));
            correction += s0 * static_cast<int16_t>(load_u16(a->bsums + 4 * ib)) + s1 * static_cast<int16_t>(load_u16(a->bsums + 4 * ib + 2));
        }
        acc = _mm256_sub_epi32(acc, _mm256_setr_epi32(9 * correction, 0, 0, 0, 0, 0, 0, 0));
        sum = add_block(sum, half_to_float(iq1_m_d_bits(b->scales)) * activation_scale(*a) * 0.125f, acc);
    }
    return horizontal_sum(sum);
}

}  // namespace

void add_iquants(detail::Table& t) {
    t.set_dequantize(TypeId::IQ2_XXS, dequantize_iq2_xxs);
    t.set_dequantize(TypeId::IQ2_XS, dequantize_iq2_xs);
    t.set_dequantize(TypeId::IQ2_S, dequantize_iq2_s);
    t.set_dequantize(TypeId::IQ3_XXS, dequantize_iq3_xxs);
    t.set_dequantize(TypeId::IQ3_S, dequantize_iq3_s);
    t.set_dequantize(TypeId::IQ1_S, dequantize_iq1_s);
    t.set_dequantize(TypeId::IQ1_M, dequantize_iq1_m);
    t.set_dot(TypeId::IQ2_XXS, dot_iq2_xxs);
    t.set_dot(TypeId::IQ2_XS, dot_iq2_xs);
    t.set_dot(TypeId::IQ2_S, dot_iq2_s);
    t.set_dot(TypeId::IQ3_XXS, dot_iq3_xxs);
    t.set_dot(TypeId::IQ3_S, dot_iq3_s);
    t.set_dot(TypeId::IQ1_S, dot_iq1_s);
    t.set_dot(TypeId::IQ1_M, dot_iq1_m);
}

}  // namespace kernels::avx512
