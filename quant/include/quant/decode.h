// Decoding one block of each quantized type into floats: the definition of what the bytes
// mean, exact to the bit (ggml's rounding: each value is a product of floats in the order
// written here, no fused multiply-adds: quant/ builds with -ffp-contract=off, and device
// code that must match the host bit for bit is compiled with nvcc --fmad=false). Every decoder is GGUF_HD, so quant/'s scalar
// dequantizer, the SIMD kernels' tests and the CUDA kernels call this same code.
//
// decode(block, y) writes block_values<Block> floats to y. The grid i-quants also take the
// grid tables (quant/grids.h) as an argument, so host and device each pass their own copy.
//
// Parts: a block is part_values<Block> consecutive values at a time (its sub-block of 16
// or 32; the whole block for the 32-value formats), and decode_part(block, p, y) writes
// values [p x part_values, (p + 1) x part_values) of it. decode() is the loop over its
// parts, so a kernel that gives each thread one part (the CUDA dequantizer) computes the
// same bits as the whole-block decoder.
#pragma once

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "quant/grids.h"
#include "quant/hd.h"

namespace quant {

// ---- Fields ----------------------------------------------------------------------------

GGUF_HD inline uint16_t u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
GGUF_HD inline uint32_t u32le(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
}

GGUF_HD inline float bits_to_float(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// IEEE half to float, exact. Integer selects only, so loops over it vectorize: the normal
// case moves exponent and mantissa into place and rebiases (127 - 15); Inf and NaN
// (exponent 31) rebias once more to reach 255; zero and subnormals are the mantissa x 2^-24.
GGUF_HD inline float half_bits_to_float(uint32_t h) {
    const uint32_t magnitude = h & 0x7fff;
    const uint32_t normal = (magnitude << 13) + (uint32_t{127 - 15} << 23);
    const uint32_t special = magnitude >= 0x7c00 ? uint32_t{128 - 16} << 23 : 0;
    const float sub = static_cast<float>(static_cast<int32_t>(magnitude)) * 0x1p-24f;
    uint32_t subnormal;
    std::memcpy(&subnormal, &sub, 4);
    const uint32_t is_subnormal = magnitude < 0x400 ? ~uint32_t{0} : 0;
    const uint32_t bits = (subnormal & is_subnormal) | ((normal + special) & ~is_subnormal);
    return bits_to_float(bits | (h & 0x8000) << 16);
}

// A block's f16 field (two bytes, little-endian) as a float.
GGUF_HD inline float half_field(const uint8_t (&h)[2]) { return half_bits_to_float(u16le(h)); }

// Float to IEEE half bits, rounding to nearest even (quant::f32_to_f16). Integer selects
// only, so loops over it vectorize (checked equal to the branching form for all 2^32
// inputs). Normal halves: rebias the exponent and round the 13 dropped mantissa bits (a
// carry may ripple into the exponent, as it should); results below the smallest normal
// half: adding 0.5 lets the FPU round |f| to a multiple of 2^-24, left in the low mantissa
// bits; past 65504 (after rounding): infinity; NaN stays NaN (quiet, the top of its payload kept).
GGUF_HD inline uint16_t float_to_half_bits(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint32_t x = bits & 0x7fffffff, sign = (bits >> 16) & 0x8000;
    const uint32_t normal = (x - (uint32_t{127 - 15} << 23) + 0x0fff + ((x >> 13) & 1)) >> 13;
    const float plus_half = bits_to_float(x) + 0.5f;
    uint32_t plus_half_bits;
    std::memcpy(&plus_half_bits, &plus_half, 4);
    const uint32_t subnormal = plus_half_bits - 0x3f000000u;  // minus the bits of 0.5f
    uint32_t h = x < 0x38800000 ? subnormal : normal;
    h = x >= 0x477ff000 ? 0x7c00 : h;
    h = x > 0x7f800000 ? 0x7e00 | ((x >> 13) & 0x3ff) : h;
    return static_cast<uint16_t>(sign | h);
}

// 2^e exactly, for e in the float range of exponents (-149 .. 127), by building the bits.
GGUF_HD inline float pow2(int e) {
    if (e >= -126) return bits_to_float(static_cast<uint32_t>(e + 127) << 23);
    return bits_to_float(uint32_t{1} << (e + 149));  // subnormal
}

// Half of an E8M0 scale 2^(e - 127) (MXFP4): the halving undoes fp4_doubled's doubling.
// e = 0 gives 2^-128 (a subnormal); 0xff is NaN in the format and reads as 2^127 here, the
// value ggml computes for it.
GGUF_HD inline float e8m0_half(uint8_t e) { return pow2(static_cast<int>(e) - 128); }

// Half of an unsigned E4M3 scale (NVFP4): 4 exponent bits (bias 7) and 3 mantissa bits in
// the low 7 bits; bit 7 is ignored, and 0x7f (E4M3's NaN) scales to 0.
GGUF_HD inline float ue4m3_half(uint8_t x) {
    x &= 0x7f;
    if (x == 0x7f) return 0.0f;
    const int exponent = x >> 3, mantissa = x & 7;
    if (exponent == 0) return static_cast<float>(mantissa) * pow2(-10);
    return static_cast<float>(8 + mantissa) * pow2(exponent - 11);
}

// The small tables below are packed into integer constants, read with a shift: an array
// would be a per-call copy in a CUDA thread's local memory.

// The 16 FP4 (E2M1) codes, doubled so they are integers: 0, 0.5, 1, 1.5, 2, 3, 4, 6 for
// codes 0-7 (the nibbles of 0xc8643210, lowest first), their negatives for 8-15.
GGUF_HD inline int fp4_doubled(int code) {
    const int magnitude = static_cast<int>((0xc8643210u >> (4 * (code & 7))) & 0x0f);
    return code & 8 ? -magnitude : magnitude;
}

// The 16 levels of IQ4_NL and IQ4_XS codes, denser near zero: -127, -104, -83, -65, -49,
// -35, -22, -10 for codes 0-7, then 1, 13, 25, 38, 53, 69, 89, 113 (bytes, lowest first).
GGUF_HD inline int iq4_level(int code) {
    const uint64_t levels = code < 8 ? 0xf6eaddcfbfad9881ull : 0x7159453526190d01ull;
    return static_cast<int8_t>(static_cast<uint8_t>(levels >> (8 * (code & 7))));
}

// Values per part (see the top of the file): 32 unless a format says otherwise below.
template <class Block> inline constexpr int part_values = 32;
template <class Block> inline constexpr int parts_per_block = block_values<Block> / part_values<Block>;

// ---- Legacy ----------------------------------------------------------------------------

GGUF_HD inline void decode(const BlockQ4_0& b, float* y) {
    const float d = half_field(b.d);
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((b.qs[j] & 0x0f) - 8) * d;
        y[j + 16] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
}

GGUF_HD inline void decode(const BlockQ4_1& b, float* y) {
    const float d = half_field(b.d), m = half_field(b.m);
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(b.qs[j] & 0x0f) * d + m;
        y[j + 16] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
}

// The 5-bit codes j and j + 16 of a Q5 block.
GGUF_HD inline int q5_low(const uint8_t* qs, uint32_t qh, int j) { return (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4); }
GGUF_HD inline int q5_high(const uint8_t* qs, uint32_t qh, int j) { return (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4); }

GGUF_HD inline void decode(const BlockQ5_0& b, float* y) {
    const float d = half_field(b.d);
    const uint32_t qh = u32le(b.qh);
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(q5_low(b.qs, qh, j) - 16) * d;
        y[j + 16] = static_cast<float>(q5_high(b.qs, qh, j) - 16) * d;
    }
}

GGUF_HD inline void decode(const BlockQ5_1& b, float* y) {
    const float d = half_field(b.d), m = half_field(b.m);
    const uint32_t qh = u32le(b.qh);
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(q5_low(b.qs, qh, j)) * d + m;
        y[j + 16] = static_cast<float>(q5_high(b.qs, qh, j)) * d + m;
    }
}

GGUF_HD inline void decode(const BlockQ8_0& b, float* y) {
    const float d = half_field(b.d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

// Q8_1's s is a by-product for dot products; the values are d x q as in Q8_0.
GGUF_HD inline void decode(const BlockQ8_1& b, float* y) {
    const float d = half_field(b.d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

// ---- K-quants --------------------------------------------------------------------------

// Q2_K and Q3_K: a part is a sub-block of 16. Sub-block `sub` lies in half sub / 8 of qs
// (32 bytes each), in the 2-bit plane (sub % 8) / 2 of it, bytes 16 x (sub % 2) onward.
template <> inline constexpr int part_values<BlockQ2_K> = 16;
template <> inline constexpr int part_values<BlockQ3_K> = 16;

GGUF_HD inline void decode_part(const BlockQ2_K& b, int sub, float* y) {
    const float d = half_field(b.d), dmin = half_field(b.dmin);
    const uint8_t* q = b.qs + 32 * (sub / 8) + 16 * (sub % 2);
    const int shift = 2 * ((sub % 8) / 2);
    const uint8_t sc = b.scales[sub];
    const float dl = d * static_cast<float>(sc & 0x0f), ml = dmin * static_cast<float>(sc >> 4);
    for (int l = 0; l < 16; ++l) y[l] = dl * static_cast<float>((q[l] >> shift) & 3) - ml;
}

GGUF_HD inline void decode(const BlockQ2_K& b, float* y) {
    for (int sub = 0; sub < 16; ++sub) decode_part(b, sub, y + 16 * sub);
}

// The sixteen 6-bit Q3_K scales: bytes 0-7 hold their low nibbles (scales 0-7 in the low
// halves, 8-15 in the high halves), bytes 8-11 their top two bits (scale i's in bits
// 2 x (i / 4) of byte 8 + i % 4).
GGUF_HD inline int q3_k_scale(const uint8_t* packed, int i) {
    const int low = i < 8 ? packed[i] & 0x0f : packed[i - 8] >> 4;
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | high << 4) - 32;
}

// The low 2 bits as in Q2_K; the high bit of sub-block `sub` is bit sub / 2 of hmask[l],
// l the byte's position within its 32-byte half.
GGUF_HD inline void decode_part(const BlockQ3_K& b, int sub, float* y) {
    const float d = half_field(b.d);
    const int first = 16 * (sub % 2);
    const uint8_t* q = b.qs + 32 * (sub / 8);
    const int shift = 2 * ((sub % 8) / 2);
    const uint8_t mask = static_cast<uint8_t>(1u << (sub / 2));
    const float dl = d * static_cast<float>(q3_k_scale(b.scales, sub));
    for (int l = first; l < first + 16; ++l) {
        const int code = ((q[l] >> shift) & 3) - ((b.hmask[l] & mask) ? 0 : 4);
        y[l - first] = dl * static_cast<float>(code);
    }
}

GGUF_HD inline void decode(const BlockQ3_K& b, float* y) {
    for (int sub = 0; sub < 16; ++sub) decode_part(b, sub, y + 16 * sub);
}

// Scale and minimum j (0-7) of a Q4_K or Q5_K block: 6 bits each. For j < 4 they are the
// low 6 bits of bytes j and j + 4; for j >= 4 the low (scale) or high (min) nibble of byte
// j + 4, topped with the two high bits of byte j - 4 (scale) or j (min).
GGUF_HD inline void scale_min_k4(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Q4_K and Q5_K share everything but the fifth bit; qh is nullptr for Q4_K. Sub-block j
// (32 values) is the low (j even) or high nibbles of bytes 32 x (j / 2) onward.
GGUF_HD inline void decode_k4_part(float d, float dmin, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, int j,
                                   float* y) {
    qs += 32 * (j / 2);
    const int nibble = j % 2;
    uint8_t sc, m;
    scale_min_k4(j, scales, sc, m);
    const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
    const uint8_t bit = static_cast<uint8_t>(1u << j);
    for (int l = 0; l < 32; ++l) {
        int q = nibble ? qs[l] >> 4 : qs[l] & 0x0f;
        if (qh && (qh[l] & bit)) q += 16;
        y[l] = dl * static_cast<float>(q) - ml;
    }
}

GGUF_HD inline void decode_part(const BlockQ4_K& b, int j, float* y) {
    decode_k4_part(half_field(b.d), half_field(b.dmin), b.scales, b.qs, nullptr, j, y);
}
GGUF_HD inline void decode_part(const BlockQ5_K& b, int j, float* y) {
    decode_k4_part(half_field(b.d), half_field(b.dmin), b.scales, b.qs, b.qh, j, y);
}
GGUF_HD inline void decode(const BlockQ4_K& b, float* y) {
    for (int j = 0; j < 8; ++j) decode_part(b, j, y + 32 * j);
}
GGUF_HD inline void decode(const BlockQ5_K& b, float* y) {
    for (int j = 0; j < 8; ++j) decode_part(b, j, y + 32 * j);
}

// Q6_K, part p (32 values): in half p / 4 (64 bytes of ql, 32 of qh, 8 scales), quarter
// k = p % 4 takes the low (k < 2) or high nibbles of ql[32 x (k % 2) + l] and bits 2k, 2k + 1
// of qh[l]; values 0-15 and 16-31 of the quarter have scales 2k and 2k + 1 of the half.
GGUF_HD inline void decode_part(const BlockQ6_K& b, int p, float* y) {
    const float d = half_field(b.d);
    const uint8_t* ql = b.ql + 64 * (p / 4) + 32 * (p % 2);
    const uint8_t* qh = b.qh + 32 * (p / 4);
    const int8_t* sc = b.scales + 8 * (p / 4) + 2 * (p % 4);
    const int k = p % 4, nibble_shift = k < 2 ? 0 : 4;
    for (int l = 0; l < 32; ++l) {
        const int q = (((ql[l] >> nibble_shift) & 0x0f) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[l / 16]) * static_cast<float>(q);
    }
}

GGUF_HD inline void decode(const BlockQ6_K& b, float* y) {
    for (int p = 0; p < 8; ++p) decode_part(b, p, y + 32 * p);
}

// Q8_K: an f32 scale; the block sums are a by-product for dot products.
GGUF_HD inline void decode_part(const BlockQ8_K& b, int p, float* y) {
    const float d = bits_to_float(u32le(b.d));
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b.qs[32 * p + j]) * d;
}

GGUF_HD inline void decode(const BlockQ8_K& b, float* y) {
    for (int p = 0; p < 8; ++p) decode_part(b, p, y + 32 * p);
}

// ---- I-quants --------------------------------------------------------------------------

GGUF_HD inline void iq4_32(float dl, const uint8_t* qs, float* y) {
    for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(iq4_level(qs[j] & 0x0f));
        y[j + 16] = dl * static_cast<float>(iq4_level(qs[j] >> 4));
    }
}

GGUF_HD inline void decode(const BlockIQ4_NL& b, float* y) { iq4_32(half_field(b.d), b.qs, y); }

GGUF_HD inline void decode_part(const BlockIQ4_XS& b, int ib, float* y) {
    const float d = half_field(b.d);
    const uint16_t scales_h = u16le(b.scales_h);
    const int low = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    const int high = (scales_h >> (2 * ib)) & 3;
    iq4_32(d * static_cast<float>((low | high << 4) - 32), b.qs + 16 * ib, y);
}

GGUF_HD inline void decode(const BlockIQ4_XS& b, float* y) {
    for (int ib = 0; ib < 8; ++ib) decode_part(b, ib, y + 32 * ib);
}

// Byte j of a grid entry.
GGUF_HD inline uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }

// 7 stored sign bits, completed to 8 by even parity: bit j set makes value j negative.
GGUF_HD inline uint8_t signs_from7(uint32_t bits7) {
    uint32_t parity = bits7;
    parity ^= parity >> 4;
    parity ^= parity >> 2;
    parity ^= parity >> 1;
    return static_cast<uint8_t>(bits7 | (parity & 1u) << 7);
}
// v with sign bit j of `signs` applied: a negation, never a multiply by -1 (whose NaN sign
// a compiler may choose), so that every compiler and device gives the same bits.
GGUF_HD inline float apply_sign(float v, uint8_t signs, int j) { return signs >> j & 1 ? -v : v; }

// 8 values from an IQ2 grid entry.
GGUF_HD inline void iq2_8(float dl, uint64_t entry, uint8_t signs, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = apply_sign(dl * static_cast<float>(grid_byte(entry, j)), signs, j);
}

// The grid i-quants: a part is one group of 32 values (ib), with its own scale(s).
GGUF_HD inline void decode_part(const BlockIQ2_XXS& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const uint8_t* idx = b.qs + 8 * ib;
    const uint32_t meta = u32le(idx + 4);
    const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.25f;
    for (int l = 0; l < 4; ++l, y += 8) iq2_8(db, g.iq2xxs[idx[l]], signs_from7((meta >> (7 * l)) & 127), y);
}

GGUF_HD inline void decode_part(const BlockIQ2_XS& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const float db[2] = {d * (0.5f + static_cast<float>(b.scales[ib] & 0x0f)) * 0.25f,
                         d * (0.5f + static_cast<float>(b.scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l, y += 8) {
        const uint16_t code = u16le(b.qs + 2 * (4 * ib + l));
        iq2_8(db[l / 2], g.iq2xs[code & 511], signs_from7(code >> 9), y);
    }
}

GGUF_HD inline void decode_part(const BlockIQ2_S& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const float db[2] = {d * (0.5f + static_cast<float>(b.scales[ib] & 0x0f)) * 0.25f,
                         d * (0.5f + static_cast<float>(b.scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; ++l, y += 8) {
        const int index = b.qs[4 * ib + l] | ((b.qh[ib] << (8 - 2 * l)) & 0x300);
        iq2_8(db[l / 2], g.iq2s[index], b.qs[32 + 4 * ib + l], y);
    }
}

// 8 values from two IQ3 grid entries of 4.
GGUF_HD inline void iq3_8(float dl, uint32_t first, uint32_t second, uint8_t signs, float* y) {
    for (int j = 0; j < 4; ++j) {
        y[j] = apply_sign(dl * static_cast<float>(grid_byte(first, j)), signs, j);
        y[j + 4] = apply_sign(dl * static_cast<float>(grid_byte(second, j)), signs, j + 4);
    }
}

GGUF_HD inline void decode_part(const BlockIQ3_XXS& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const uint32_t meta = u32le(b.qs + 64 + 4 * ib);
    const float db = d * (0.5f + static_cast<float>(meta >> 28)) * 0.5f;
    const uint8_t* idx = b.qs + 8 * ib;
    for (int l = 0; l < 4; ++l, y += 8)
        iq3_8(db, g.iq3xxs[idx[2 * l]], g.iq3xxs[idx[2 * l + 1]], signs_from7((meta >> (7 * l)) & 127), y);
}

GGUF_HD inline void decode_part(const BlockIQ3_S& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const int scale = (b.scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    const float db = d * static_cast<float>(1 + 2 * scale);
    const uint8_t* idx = b.qs + 8 * ib;
    const uint8_t qh = b.qh[ib];
    for (int l = 0; l < 4; ++l, y += 8) {
        const int first = idx[2 * l] | ((qh << (8 - 2 * l)) & 256);
        const int second = idx[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
        iq3_8(db, g.iq3s[first], g.iq3s[second], b.signs[4 * ib + l], y);
    }
}

// IQ1's shift of every value, +-1/8 of a grid step.
inline constexpr float kIQ1Delta = 0.125f;

// 8 values from an IQ1 grid entry of signed bytes, shifted by delta.
GGUF_HD inline void iq1_8(float dl, uint64_t entry, float delta, float* y) {
    for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<float>(static_cast<int8_t>(grid_byte(entry, j))) + delta);
}

GGUF_HD inline void decode_part(const BlockIQ1_S& b, const IqGrids& g, int ib, float* y) {
    const float d = half_field(b.d);
    const uint16_t qh = u16le(b.qh + 2 * ib);
    const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
    const float delta = qh & 0x8000 ? -kIQ1Delta : kIQ1Delta;
    for (int l = 0; l < 4; ++l, y += 8) iq1_8(dl, g.iq1s[b.qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)], delta, y);
}

// IQ1_M's f16 d, spread over the top nibbles of its four u16 scale words (the 8 bytes at
// `scales`).
GGUF_HD inline uint16_t iq1_m_d_bits(const uint8_t* scales) {
    uint16_t sc[4];
    for (int i = 0; i < 4; ++i) sc[i] = u16le(scales + 2 * i);
    return static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

GGUF_HD inline void decode_part(const BlockIQ1_M& b, const IqGrids& g, int ib, float* y) {
    const float d = half_bits_to_float(iq1_m_d_bits(b.scales));
    const uint16_t sc = u16le(b.scales + 2 * (ib / 2));
    const int shift = 6 * (ib % 2);
    const float dl[2] = {d * static_cast<float>(2 * ((sc >> shift) & 7) + 1), d * static_cast<float>(2 * ((sc >> (shift + 3)) & 7) + 1)};
    const uint8_t* qs = b.qs + 4 * ib;
    const uint8_t* qh = b.qh + 2 * ib;
    for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t h = qh[l / 2];
        const int high = l % 2 ? (h << 4) & 0x700 : (h << 8) & 0x700;
        const bool negative = l % 2 ? (h & 0x80) : (h & 0x08);
        iq1_8(dl[l / 2], g.iq1s[qs[l] | high], negative ? -kIQ1Delta : kIQ1Delta, y);
    }
}

// The whole block of a grid i-quant: its eight parts in order.
template <class Block>
    requires requires(const Block& b, const IqGrids& g, float* y) { decode_part(b, g, 0, y); }
GGUF_HD inline void decode(const Block& b, const IqGrids& g, float* y) {
    for (int ib = 0; ib < 8; ++ib) decode_part(b, g, ib, y + 32 * ib);
}

// ---- Microscaling ----------------------------------------------------------------------

GGUF_HD inline void decode(const BlockMXFP4& b, float* y) {
    const float d = e8m0_half(b.e);
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(fp4_doubled(b.qs[j] & 0x0f)) * d;
        y[j + 16] = static_cast<float>(fp4_doubled(b.qs[j] >> 4)) * d;
    }
}

// NVFP4: a part is a sub-block of 16 with its own scale.
template <> inline constexpr int part_values<BlockNVFP4> = 16;

GGUF_HD inline void decode_part(const BlockNVFP4& b, int s, float* y) {
    const float d = ue4m3_half(b.d[s]);
    const uint8_t* qs = b.qs + 8 * s;
    for (int j = 0; j < 8; ++j) {
        y[j] = static_cast<float>(fp4_doubled(qs[j] & 0x0f)) * d;
        y[j + 8] = static_cast<float>(fp4_doubled(qs[j] >> 4)) * d;
    }
}

GGUF_HD inline void decode(const BlockNVFP4& b, float* y) {
    for (int s = 0; s < 4; ++s) decode_part(b, s, y + 16 * s);
}

// ---- Ternary and 1-2 bit ---------------------------------------------------------------

// Digit k of a TQ1_0 byte, as a value: multiplying by 3^k (mod 256) brings the digit to the
// top, read as (q x 3) >> 8.
GGUF_HD inline float tq1_value(uint8_t byte, int k, float d) {
    const auto pow3 = static_cast<uint8_t>(0x511b090301ull >> (8 * k));  // 1, 3, 9, 27, 81
    const auto q = static_cast<uint8_t>(byte * pow3);
    return static_cast<float>(((static_cast<uint16_t>(q) * 3) >> 8) - 1) * d;
}

// TQ1_0, part p of 16 values: parts 0-9 are digit p / 2 of qs[16 (p % 2) ..] (the first
// pass, over 32 bytes), parts 10-14 digit p - 10 of qs[32 .. 47], part 15 the four digits of
// each of qh's 4 bytes (digit-major).
template <> inline constexpr int part_values<BlockTQ1_0> = 16;

GGUF_HD inline void decode_part(const BlockTQ1_0& b, int p, float* y) {
    const float d = half_field(b.d);
    if (p < 15) {
        const uint8_t* bytes = p < 10 ? b.qs + 16 * (p % 2) : b.qs + 32;
        const int k = p < 10 ? p / 2 : p - 10;
        for (int m = 0; m < 16; ++m) y[m] = tq1_value(bytes[m], k, d);
    } else {
        for (int k = 0; k < 4; ++k)
            for (int m = 0; m < 4; ++m) y[4 * k + m] = tq1_value(b.qh[m], k, d);
    }
}

GGUF_HD inline void decode(const BlockTQ1_0& b, float* y) {
    for (int p = 0; p < 16; ++p) decode_part(b, p, y + 16 * p);
}

// TQ2_0, part p: the 2-bit plane p % 4 of bytes 32 x (p / 4) onward.
GGUF_HD inline void decode_part(const BlockTQ2_0& b, int p, float* y) {
    const float d = half_field(b.d);
    const uint8_t* q = b.qs + 32 * (p / 4);
    const int shift = 2 * (p % 4);
    for (int m = 0; m < 32; ++m) y[m] = static_cast<float>(((q[m] >> shift) & 3) - 1) * d;
}

GGUF_HD inline void decode(const BlockTQ2_0& b, float* y) {
    for (int p = 0; p < 8; ++p) decode_part(b, p, y + 32 * p);
}

GGUF_HD inline void decode_part(const BlockQ1_0& b, int p, float* y) {
    const float d = half_field(b.d);
    for (int j = 32 * p; j < 32 * p + 32; ++j) y[j - 32 * p] = (b.qs[j / 8] >> (j % 8)) & 1 ? d : -d;
}

GGUF_HD inline void decode(const BlockQ1_0& b, float* y) {
    for (int p = 0; p < 4; ++p) decode_part(b, p, y + 32 * p);
}

GGUF_HD inline void decode_part(const BlockQ2_0& b, int p, float* y) {
    const float d = half_field(b.d);
    for (int j = 32 * p; j < 32 * p + 32; ++j) y[j - 32 * p] = static_cast<float>(((b.qs[j / 4] >> (2 * (j % 4))) & 3) - 1) * d;
}

GGUF_HD inline void decode(const BlockQ2_0& b, float* y) {
    for (int p = 0; p < 2; ++p) decode_part(b, p, y + 32 * p);
}

// ---- Parts of the one-part formats (the 32-value ones): the whole block ---------------

template <class Block>
    requires(parts_per_block<Block> == 1)
GGUF_HD inline void decode_part(const Block& b, int, float* y) {
    decode(b, y);
}

// Part p of a block of any format, with the grid tables for those that need them.
template <class Block> GGUF_HD inline void decode_part_of(const Block& b, const IqGrids& g, int p, float* y) {
    if constexpr (requires { decode_part(b, g, p, y); }) decode_part(b, g, p, y);
    else decode_part(b, p, y);
}

}  // namespace quant
