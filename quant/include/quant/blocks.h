// The block layouts of every quantized GGUF tensor type: one struct each, the single
// definition that quant/'s reference code, the SIMD kernels and the CUDA kernels all use.
//
// A block is plain bytes: every member is a byte, a byte array or a signed byte array, so
// any address is suitably aligned and the struct means the same on every compiler, host or
// device. Multi-byte fields are little-endian on disk and are read with the helpers in
// quant/decode.h, never by casting. Each struct names its type (kType) and its size is
// checked against libgguf's type table, so the table and the layouts cannot disagree.
#pragma once

#include <cstdint>

#include "gguf/types.h"

namespace quant {

using gguf::TypeId;

// The number of values one block of `Block` holds, from the type table.
template <class Block> inline constexpr int block_values = static_cast<int>(gguf::type_info(Block::kType).block_size);

// ---- Legacy formats: 32 values per block, one f16 scale (and for the _1 kinds an f16 minimum).

// Q4_0: value = d x (q - 8), q a 4-bit code. Codes 0-15 of the block are the low nibbles
// of qs[0..15], codes 16-31 the high nibbles.
struct BlockQ4_0 {
    static constexpr TypeId kType = TypeId::Q4_0;
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == gguf::type_info(BlockQ4_0::kType).type_size);

// Q4_1: value = d x q + m.
struct BlockQ4_1 {
    static constexpr TypeId kType = TypeId::Q4_1;
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == gguf::type_info(BlockQ4_1::kType).type_size);

// Q5_0: value = d x (q - 16), q a 5-bit code: low 4 bits in nibbles as in Q4_0, the fifth
// bit of code j in bit j of the little-endian u32 qh.
struct BlockQ5_0 {
    static constexpr TypeId kType = TypeId::Q5_0;
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == gguf::type_info(BlockQ5_0::kType).type_size);

// Q5_1: value = d x q + m, codes as in Q5_0.
struct BlockQ5_1 {
    static constexpr TypeId kType = TypeId::Q5_1;
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == gguf::type_info(BlockQ5_1::kType).type_size);

// Q8_0: value = d x q, q a signed byte.
struct BlockQ8_0 {
    static constexpr TypeId kType = TypeId::Q8_0;
    uint8_t d[2];
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == gguf::type_info(BlockQ8_0::kType).type_size);

// ---- K-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each with its own few-bit scale (and minimum), scaled again by the block's f16 d (and dmin).

// Q2_K: 16 sub-blocks of 16. scales[i]: low nibble the sub-block's scale, high nibble its
// minimum; value = d x scale x q - dmin x min, q a 2-bit code. qs holds the codes of each
// half (128 values) as four 2-bit planes of 32 bytes.
struct BlockQ2_K {
    static constexpr TypeId kType = TypeId::Q2_K;
    uint8_t scales[16];
    uint8_t qs[64];
    uint8_t d[2];
    uint8_t dmin[2];
};
static_assert(sizeof(BlockQ2_K) == gguf::type_info(BlockQ2_K::kType).type_size);

// Q3_K: 16 sub-blocks of 16, 6-bit signed scales (stored minus 32) packed into 12 bytes;
// value = d x (scale - 32) x (q - 4 if the code's hmask bit is clear else q), q 2 bits
// laid out as in Q2_K.
struct BlockQ3_K {
    static constexpr TypeId kType = TypeId::Q3_K;
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ3_K) == gguf::type_info(BlockQ3_K::kType).type_size);

// Q4_K: 8 sub-blocks of 32 with 6-bit scales and minimums packed into 12 bytes;
// value = d x scale x q - dmin x min, q 4 bits: each 64 values are the low nibbles then the
// high nibbles of 32 bytes.
struct BlockQ4_K {
    static constexpr TypeId kType = TypeId::Q4_K;
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == gguf::type_info(BlockQ4_K::kType).type_size);

// Q5_K: as Q4_K with a fifth bit per value in qh: bit 2k of qh[l] for value l of the k-th
// 64, low nibble half; bit 2k + 1 for the high nibble half.
struct BlockQ5_K {
    static constexpr TypeId kType = TypeId::Q5_K;
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == gguf::type_info(BlockQ5_K::kType).type_size);

// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; value = d x scale x (q - 32), q 6
// bits: low 4 in ql, high 2 in qh.
struct BlockQ6_K {
    static constexpr TypeId kType = TypeId::Q6_K;
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint8_t d[2];
};
static_assert(sizeof(BlockQ6_K) == gguf::type_info(BlockQ6_K::kType).type_size);

// ---- I-quants: IQ4_NL and IQ4_XS map 4-bit codes through a non-uniform table; IQ1, IQ2 and IQ3 store, per 8 or 4 values, an index into a grid of magnitude patterns (grids.h) with separate signs and scales.

// IQ4_NL: 32 values, value = d x level(code); codes as Q4_0's nibbles.
struct BlockIQ4_NL {
    static constexpr TypeId kType = TypeId::IQ4_NL;
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockIQ4_NL) == gguf::type_info(BlockIQ4_NL::kType).type_size);

// IQ4_XS: 256 values in 8 sub-blocks of 32 with 6-bit scales (stored plus 32): low 4 bits
// in the nibbles of scales_l, high 2 bits in scales_h (u16 little-endian, 2 bits per
// sub-block). value = d x (scale - 32) x level(code), codes as IQ4_NL per 32.
struct BlockIQ4_XS {
    static constexpr TypeId kType = TypeId::IQ4_XS;
    uint8_t d[2];
    uint8_t scales_h[2];
    uint8_t scales_l[4];
    uint8_t qs[128];
};
static_assert(sizeof(BlockIQ4_XS) == gguf::type_info(BlockIQ4_XS::kType).type_size);

// IQ2_XXS: 8 groups of 32 values; each group is 8 bytes: four u8 grid indices (iq2xxs,
// 8 values each) and a u32 whose top 4 bits are the scale s and whose 4 x 7 low bits
// select the signs of each 8 values. value = d x (0.5 + s) / 4 x grid x sign.
struct BlockIQ2_XXS {
    static constexpr TypeId kType = TypeId::IQ2_XXS;
    uint8_t d[2];
    uint8_t qs[64];
};
static_assert(sizeof(BlockIQ2_XXS) == gguf::type_info(BlockIQ2_XXS::kType).type_size);

// IQ2_XS: 32 u16 codes (9-bit iq2xs index, 7 sign bits) and a 4-bit scale per 16 values.
struct BlockIQ2_XS {
    static constexpr TypeId kType = TypeId::IQ2_XS;
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ2_XS) == gguf::type_info(BlockIQ2_XS::kType).type_size);

// IQ2_S: 10-bit iq2s indices (low 8 bits in qs[0..31], high 2 in qh), explicit sign bytes
// (qs[32..63]), a 4-bit scale per 16 values.
struct BlockIQ2_S {
    static constexpr TypeId kType = TypeId::IQ2_S;
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t qh[8];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ2_S) == gguf::type_info(BlockIQ2_S::kType).type_size);

// IQ3_XXS: 64 u8 iq3xxs indices (4 values each), then per 32 values a u32 of 4 x 7 sign
// bits and a 4-bit scale s: value = d x (0.5 + s) / 2 x grid x sign.
struct BlockIQ3_XXS {
    static constexpr TypeId kType = TypeId::IQ3_XXS;
    uint8_t d[2];
    uint8_t qs[96];
};
static_assert(sizeof(BlockIQ3_XXS) == gguf::type_info(BlockIQ3_XXS::kType).type_size);

// IQ3_S: 9-bit iq3s indices (low 8 in qs, ninth in qh), explicit sign bytes, a 4-bit scale
// per 32 values: value = d x (1 + 2 scale) x grid x sign.
struct BlockIQ3_S {
    static constexpr TypeId kType = TypeId::IQ3_S;
    uint8_t d[2];
    uint8_t qs[64];
    uint8_t qh[8];
    uint8_t signs[32];
    uint8_t scales[4];
};
static_assert(sizeof(BlockIQ3_S) == gguf::type_info(BlockIQ3_S::kType).type_size);

// IQ1_S: per 32 values a u16 qh: 3-bit scale s (bits 12-14), the sign of a shift delta
// (bit 15) and 4 x 3 high index bits; 11-bit iq1s indices select 8 values in {-1, 0, 1}:
// value = d x (2s + 1) x (grid + delta), delta = +-1/8.
struct BlockIQ1_S {
    static constexpr TypeId kType = TypeId::IQ1_S;
    uint8_t d[2];
    uint8_t qs[32];
    uint8_t qh[16];
};
static_assert(sizeof(BlockIQ1_S) == gguf::type_info(BlockIQ1_S::kType).type_size);

// IQ1_M: as IQ1_S with a delta sign per 8 values and two 3-bit scales per 32; the block's
// f16 d is spread over the top nibbles of the four u16 scale words.
struct BlockIQ1_M {
    static constexpr TypeId kType = TypeId::IQ1_M;
    uint8_t qs[32];
    uint8_t qh[16];
    uint8_t scales[8];
};
static_assert(sizeof(BlockIQ1_M) == gguf::type_info(BlockIQ1_M::kType).type_size);

// ---- Microscaling formats: FP4 (E2M1) values sharing a power-of-two (E8M0) or small-float (UE4M3) scale.

// MXFP4: 32 values; value j is e8m0(e) x fp4(low nibble of qs[j]), value j + 16 uses the
// high nibble.
struct BlockMXFP4 {
    static constexpr TypeId kType = TypeId::MXFP4;
    uint8_t e;
    uint8_t qs[16];
};
static_assert(sizeof(BlockMXFP4) == gguf::type_info(BlockMXFP4::kType).type_size);

// NVFP4: 64 values in 4 sub-blocks of 16, each with its own UE4M3 scale d[s]; sub-block s
// uses qs[8s .. 8s + 7]: low nibbles are its values 0-7, high nibbles 8-15.
struct BlockNVFP4 {
    static constexpr TypeId kType = TypeId::NVFP4;
    uint8_t d[4];
    uint8_t qs[32];
};
static_assert(sizeof(BlockNVFP4) == gguf::type_info(BlockNVFP4::kType).type_size);

// ---- Ternary and 1-2 bit formats.

// TQ1_0: 256 ternary digits, five per byte in qs and four per byte in qh, value =
// d x (digit - 1). A byte holds its digits as a fraction: digit k of byte b is
// ((b x 3^k mod 256) x 3) >> 8. qs is read as 32 bytes x 5 digits, then 16 bytes x 5,
// then qh's 4 bytes x 4, each pass over the bytes taking one digit position.
struct BlockTQ1_0 {
    static constexpr TypeId kType = TypeId::TQ1_0;
    uint8_t qs[48];
    uint8_t qh[4];
    uint8_t d[2];
};
static_assert(sizeof(BlockTQ1_0) == gguf::type_info(BlockTQ1_0::kType).type_size);

// TQ2_0: 256 values of 2 bits, value = d x (code - 1); each 32 bytes hold 4 planes of 32.
struct BlockTQ2_0 {
    static constexpr TypeId kType = TypeId::TQ2_0;
    uint8_t qs[64];
    uint8_t d[2];
};
static_assert(sizeof(BlockTQ2_0) == gguf::type_info(BlockTQ2_0::kType).type_size);

// Q1_0: 128 values, value = +d where bit j % 8 of qs[j / 8] is set, else -d.
struct BlockQ1_0 {
    static constexpr TypeId kType = TypeId::Q1_0;
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ1_0) == gguf::type_info(BlockQ1_0::kType).type_size);

// Q2_0: 64 values of 2 bits, value j = d x (code - 1), code in bits 2(j % 4) of qs[j / 4].
struct BlockQ2_0 {
    static constexpr TypeId kType = TypeId::Q2_0;
    uint8_t d[2];
    uint8_t qs[16];
};
static_assert(sizeof(BlockQ2_0) == gguf::type_info(BlockQ2_0::kType).type_size);

// ---- Activation formats of ggml's dot products (what kernels/ quantizes activations to).

// Q8_1: 32 signed bytes with an f16 scale d and s = d x (sum of the bytes), for the dot
// products of the affine legacy formats.
struct BlockQ8_1 {
    static constexpr TypeId kType = TypeId::Q8_1;
    uint8_t d[2];
    uint8_t s[2];
    int8_t qs[32];
};
static_assert(sizeof(BlockQ8_1) == gguf::type_info(BlockQ8_1::kType).type_size);

// Q8_K: 256 signed bytes with an f32 scale d, and the sums of each 16 bytes as i16 (for the
// k-quants' minimums).
struct BlockQ8_K {
    static constexpr TypeId kType = TypeId::Q8_K;
    uint8_t d[4];
    int8_t qs[256];
    uint8_t bsums[32];
};
static_assert(sizeof(BlockQ8_K) == gguf::type_info(BlockQ8_K::kType).type_size);

// Every block layout above (the 27 quantized storage types), for code that must cover them all (the device test, the
// kernels' dispatch tables); a test checks it names exactly the types quant/ dequantizes.
template <class... Blocks> struct BlockList {};
using AllBlocks = BlockList<BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K,
                            BlockQ6_K, BlockIQ4_NL, BlockIQ4_XS, BlockIQ2_XXS, BlockIQ2_XS, BlockIQ2_S, BlockIQ3_XXS, BlockIQ3_S,
                            BlockIQ1_S, BlockIQ1_M, BlockMXFP4, BlockNVFP4, BlockTQ1_0, BlockTQ2_0, BlockQ1_0, BlockQ2_0,
                            BlockQ8_1, BlockQ8_K>;

}  // namespace quant
