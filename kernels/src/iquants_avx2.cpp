// iquants, avx2 path: the grid i-quants IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S.
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

namespace kernels::avx2 {

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

// The float sign bit in lane j where bit j of `signs` is set (bits above 7 ignored).
__m256 sign_lanes(uint32_t signs) {
    const __m256i shifts = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i moved = _mm256_sllv_epi32(_mm256_set1_epi32(static_cast<int>(signs)), shifts);
    return _mm256_castsi256_ps(_mm256_and_si256(moved, _mm256_set1_epi32(INT32_MIN)));
}

// 8 values dl x (+-g) from 8 unsigned grid bytes.
void put8(float* y, uint64_t entry, uint32_t signs, __m256 dl) {
    const __m256 g = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(entry))));
    _mm256_storeu_ps(y, _mm256_xor_ps(_mm256_mul_ps(dl, g), sign_lanes(signs)));
}

// 8 IQ1 values dl x (g + delta) from 8 signed grid bytes.
void put8_iq1(float* y, uint64_t entry, __m256 delta, __m256 dl) {
    const __m256 g = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(entry))));
    _mm256_storeu_ps(y, _mm256_mul_ps(dl, _mm256_add_ps(g, delta)));
}

void dequantize_iq2_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint8_t* q = b->qs + 8 * ib;
            const uint32_t meta = load_u32(q + 4);
            const __m256 db = _mm256_set1_ps(d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f);
            const uint32_t signs = signs_from7x4(meta);
            for (int l = 0; l < 4; ++l) put8(y + 8 * l, grid[q[l]], signs >> (8 * l), db);
        }
    }
}

void dequantize_iq2_xs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2xs;
    for (const auto* b = reinterpret_cast<const BlockIQ2_XS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m256 db[2] = {_mm256_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f),
                                  _mm256_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f)};
            const uint64_t codes = load_u64(b->qs + 8 * ib);  // four u16: 9-bit index, 7 sign bits
            const uint32_t signs = signs_from7x4(static_cast<uint32_t>(_pext_u64(codes, 0xfe00fe00fe00fe00ull)));
            for (int l = 0; l < 4; ++l) put8(y + 8 * l, grid[(codes >> (16 * l)) & 511], signs >> (8 * l), db[l / 2]);
        }
    }
}

void dequantize_iq2_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq2s;
    for (const auto* b = reinterpret_cast<const BlockIQ2_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const __m256 db[2] = {_mm256_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] & 0x0f)) * 0.25f),
                                  _mm256_set1_ps(d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f)};
            const uint32_t signs = load_u32(b->qs + 32 + 4 * ib);
            const int qh = b->qh[ib];
            for (int l = 0; l < 4; ++l) {
                const int index = b->qs[4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
                put8(y + 8 * l, grid[index], signs >> (8 * l), db[l / 2]);
            }
        }
    }
}

void dequantize_iq3_xxs(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3xxs;
    for (const auto* b = reinterpret_cast<const BlockIQ3_XXS*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t meta = load_u32(b->qs + 64 + 4 * ib);
            const __m256 db = _mm256_set1_ps(d * (0.5f + static_cast<float>(meta >> 28)) * 0.5f);
            const uint32_t signs = signs_from7x4(meta);
            const uint8_t* idx = b->qs + 8 * ib;
            for (int l = 0; l < 4; ++l)
                put8(y + 8 * l, grid[idx[2 * l]] | uint64_t{grid[idx[2 * l + 1]]} << 32, signs >> (8 * l), db);
        }
    }
}

void dequantize_iq3_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint32_t* grid = quant::host_grids().iq3s;
    for (const auto* b = reinterpret_cast<const BlockIQ3_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const int scale = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            const __m256 db = _mm256_set1_ps(d * static_cast<float>(1 + 2 * scale));
            const uint32_t signs = load_u32(b->signs + 4 * ib);
            const uint8_t* idx = b->qs + 8 * ib;
            const int qh = b->qh[ib];
            for (int l = 0; l < 4; ++l) {
                const int first = idx[2 * l] | ((qh << (8 - 2 * l)) & 256);
                const int second = idx[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
                put8(y + 8 * l, grid[first] | uint64_t{grid[second]} << 32, signs >> (8 * l), db);
            }
        }
    }
}

void dequantize_iq1_s(const uint8_t* src, float* y, int64_t n_blocks) {
    const uint64_t* grid = quant::host_grids().iq1s;
    for (const auto* b = reinterpret_cast<const BlockIQ1_S*>(src); n_blocks-- > 0; ++b) {
        const float d = half_to_float(load_u16(b->d));
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);
            const __m256 dl = _mm256_set1_ps(d * static_cast<float>(2 * ((qh >> 12) & 7) + 1));
            const __m256 delta = _mm256_set1_ps(qh & 0x8000 ? -0.125f : 0.125f);
            for (int l = 0; l < 4; ++l) put8_iq1(y + 8 * l, grid[b->qs[4 * ib + l] | ((qh >> (3 * l)) & 7) << 8], delta, dl);
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
            const __m256 dl[2] = {_mm256_set1_ps(d * static_cast<float>(2 * ((sc >> shift) & 7) + 1)),
                                  _mm256_set1_ps(d * static_cast<float>(2 * ((sc >> (shift + 3)) & 7) + 1))};
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            for (int l = 0; l < 4; ++l) {
                const uint32_t h = qh >> (4 * l);
                const __m256 delta = _mm256_set1_ps(h & 8 ? -0.125f : 0.125f);
                put8_iq1(y + 8 * l, grid[b->qs[4 * ib + l] | (h & 7) << 8], delta, dl[l / 2]);
            }
        }
    }
}

// ---- Dot products with Q8_K activations ------------------------------------------------

// 0xff in byte j where bit j of `signs` is set.
__m256i sign_bytes(uint32_t signs) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(signs)), spread);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
}

// 32 activation codes, negated where bit j of `signs` is set (codes are within +-127).
__m256i signed_codes(const int8_t* q, uint32_t signs) {
    const __m256i m = sign_bytes(signs);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    return _mm256_sub_epi8(_mm256_xor_si256(v, m), m);
}

// The i16 multipliers of 32 values: `low` for the first 16, `high` for the next.
__m256i scale_pair(int low, int high) { return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(high)), _mm_set1_epi16(static_cast<int16_t>(low))); }

// acc + per-16 sums of grid x code, times the multipliers.
__m256i accumulate(__m256i acc, __m256i grid, __m256i codes, __m256i scales) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(grid, codes), scales));
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
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        __m256i acc = _mm256_setzero_si256();
        int correction = 0;
        const uint64_t scales = load_u64(b->scales);
        for (int ib = 0; ib < 8; ++ib) {
            const uint32_t qh = load_u16(b->qh + 2 * ib);  // per 8 values: 3 high index bits, then the delta's sign
            const uint8_t* q = b->qs + 4 * ib;
            const __m256i g = grid4(grid, q[0] | (qh & 7) << 8, q[1] | ((qh >> 4) & 7) << 8, q[2] | ((qh >> 8) & 7) << 8, q[3] | ((qh >> 12) & 7) << 8);
            const uint32_t positive = _pdep_u32(_pext_u32(~qh, 0x8888u), 0x02020202u);
            const __m256i e = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(positive)), spread);
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

}  // namespace kernels::avx2
