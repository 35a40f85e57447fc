// Grid i-quant code the AVX2 and AVX-512 paths share (iquants_avx2.cpp, iquants_avx512.cpp).
// Included by those two files only; everything is in an anonymous namespace, so each compiles
// its own copy with its own flags (table.h's rule).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "quant/blocks.h"
#include "simd.h"

namespace kernels {
namespace {

// IQ1_M's d: an f16 made of the top nibbles of the block's four u16 scale words (as the
// decoder's iq1_m_d_bits), through F16C.
inline float iq1_m_d(const uint8_t* scales) { return _cvtsh_ss(static_cast<uint16_t>(_pext_u64(load_u64(scales), 0xf000f000f000f000ull))); }

// A sub-block's scale d (0.5 + s) x factor, the decoders' order: IQ2's (factor 1/4) and
// IQ3_XXS's (factor 1/2), s its 4-bit field.
inline float half_step_scale(float d, uint32_t s, float factor) { return d * (0.5f + static_cast<float>(s)) * factor; }

// A weight block's d as a float: its f16 field, or IQ1_M's.
template <class Block> float block_d(const Block& b) {
    if constexpr (Block::kType == gguf::TypeId::IQ1_M)
        return iq1_m_d(b.scales);
    else
        return half_to_float(b.d);
}

// i32 lanes as float lanes, 8 or 16.
inline __m256 to_floats(__m256i v) { return _mm256_cvtepi32_ps(v); }
#if defined(__AVX512F__)
inline __m512 to_floats(__m512i v) { return _mm512_cvtepi32_ps(v); }
#endif

// sum += d x (a block's integer sum, in i32 lanes).
inline __m256 add_block(__m256 sum, float d, __m256i acc) { return _mm256_fmadd_ps(_mm256_set1_ps(d), to_floats(acc), sum); }
#if defined(__AVX512F__)
inline __m512 add_block(__m512 sum, float d, __m512i acc) { return _mm512_fmadd_ps(_mm512_set1_ps(d), to_floats(acc), sum); }
#endif

// A dot product with Q8_K activations, block by block: block_sum(b, a) gives the integer sum
// of weight block b with activation block a in i32 lanes (8 or 16), which goes into float
// lanes of the same width times d x dx x scale (scale the format's fixed factor); the lanes
// are summed once, at the end, in a fixed order (hsum).
template <class Block, class BlockSum> float dot_blocks(const uint8_t* w, const uint8_t* x, int64_t n_blocks, float scale, BlockSum block_sum) {
    const auto* b = reinterpret_cast<const Block*>(w);
    const auto* a = reinterpret_cast<const quant::BlockQ8_K*>(x);
    decltype(to_floats(block_sum(*b, *a))) sum{};
    for (int64_t i = 0; i < n_blocks; ++i, ++b, ++a) {
        const auto acc = block_sum(*b, *a);
        sum = add_block(sum, block_d(*b) * f32_field(a->d) * scale, acc);
    }
    return hsum(sum);
}

}  // namespace
}  // namespace kernels
