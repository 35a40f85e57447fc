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

}  // namespace

void add_iquants(detail::Table& t) {
    t.set_dequantize(TypeId::IQ2_XXS, dequantize_iq2_xxs);
    t.set_dequantize(TypeId::IQ2_XS, dequantize_iq2_xs);
    t.set_dequantize(TypeId::IQ2_S, dequantize_iq2_s);
    t.set_dequantize(TypeId::IQ3_XXS, dequantize_iq3_xxs);
    t.set_dequantize(TypeId::IQ3_S, dequantize_iq3_s);
    t.set_dequantize(TypeId::IQ1_S, dequantize_iq1_s);
    t.set_dequantize(TypeId::IQ1_M, dequantize_iq1_m);
}

}  // namespace kernels::avx2
