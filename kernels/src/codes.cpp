// Integer codes of the weight types the 8-bit product covers (codes.h). Each is the
// decoder's arithmetic split in two: the integer part (a byte per value) and the float
// scale (and minimum) it is multiplied by; quant/decode.h is the definition.
#include "codes.h"

#include <stdexcept>
#include <string>

#include "quant/blocks.h"
#include "quant/decode.h"

namespace kernels::detail {

using gguf::TypeId;
using quant::half_field;

CodeFormat code_format(TypeId type) {
    switch (type) {
        case TypeId::Q4_0: return {32, 8, false};
        case TypeId::Q8_0: return {32, 128, false};
        case TypeId::Q4_K:
        case TypeId::Q5_K: return {32, 0, true};
        case TypeId::Q6_K: return {16, 32, false};
        default: return {};
    }
}

namespace {

void unpack(const quant::BlockQ4_0& b, uint8_t* u, float* scale, float*) {
    for (int j = 0; j < 16; ++j) {
        u[j] = b.qs[j] & 0x0f;
        u[j + 16] = b.qs[j] >> 4;
    }
    scale[0] = half_field(b.d);
}

void unpack(const quant::BlockQ8_0& b, uint8_t* u, float* scale, float*) {
    for (int j = 0; j < 32; ++j) u[j] = static_cast<uint8_t>(b.qs[j] + 128);
    scale[0] = half_field(b.d);
}

// Q4_K and Q5_K (qh nullptr for Q4_K): sub-block j is the low (even j) or high nibbles of
// 32 bytes, the fifth bit bit j of qh; value = d x sc_j x q - dmin x m_j.
void unpack_k4(const uint8_t (&d)[2], const uint8_t (&dmin)[2], const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, uint8_t* u,
               float* scale, float* offset) {
    const float dd = half_field(d), dm = half_field(dmin);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        quant::scale_min_k4(j, scales, sc, m);
        scale[j] = dd * static_cast<float>(sc);
        offset[j] = dm * static_cast<float>(m);
        const uint8_t* q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; ++l) {
            uint8_t v = (q[l] >> shift) & 0x0f;
            if (qh) v = static_cast<uint8_t>(v | ((qh[l] >> j) & 1) << 4);
            u[32 * j + l] = v;
        }
    }
}

void unpack(const quant::BlockQ4_K& b, uint8_t* u, float* scale, float* offset) { unpack_k4(b.d, b.dmin, b.scales, b.qs, nullptr, u, scale, offset); }
void unpack(const quant::BlockQ5_K& b, uint8_t* u, float* scale, float* offset) { unpack_k4(b.d, b.dmin, b.scales, b.qs, b.qh, u, scale, offset); }

// Q6_K: part p (32 values) as quant/decode.h reads it; groups of 16 with an int8 scale each.
void unpack(const quant::BlockQ6_K& b, uint8_t* u, float* scale, float*) {
    const float d = half_field(b.d);
    for (int p = 0; p < 8; ++p) {
        const uint8_t* ql = b.ql + 64 * (p / 4) + 32 * (p % 2);
        const uint8_t* qh = b.qh + 32 * (p / 4);
        const int k = p % 4, shift = k < 2 ? 0 : 4;
        for (int l = 0; l < 32; ++l) u[32 * p + l] = static_cast<uint8_t>(((ql[l] >> shift) & 0x0f) | ((qh[l] >> (2 * k)) & 3) << 4);
        const int8_t* sc = b.scales + 8 * (p / 4) + 2 * k;
        scale[2 * p] = d * static_cast<float>(sc[0]);
        scale[2 * p + 1] = d * static_cast<float>(sc[1]);
    }
}

template <class Block> void unpack_blocks(const uint8_t* src, int64_t n_blocks, uint8_t* codes, float* scales, float* offsets) {
    constexpr int64_t values = gguf::type_info(Block::kType).block_size;
    const int64_t groups = values / code_format(Block::kType).group;
    const auto* b = reinterpret_cast<const Block*>(src);
    for (int64_t i = 0; i < n_blocks; ++i)
        unpack(b[i], codes + i * values, scales + i * groups, offsets ? offsets + i * groups : nullptr);
}

}  // namespace

void unpack_codes(TypeId type, const uint8_t* src, int64_t n_blocks, uint8_t* codes, float* scales, float* offsets) {
    switch (type) {
        case TypeId::Q4_0: return unpack_blocks<quant::BlockQ4_0>(src, n_blocks, codes, scales, offsets);
        case TypeId::Q8_0: return unpack_blocks<quant::BlockQ8_0>(src, n_blocks, codes, scales, offsets);
        case TypeId::Q4_K: return unpack_blocks<quant::BlockQ4_K>(src, n_blocks, codes, scales, offsets);
        case TypeId::Q5_K: return unpack_blocks<quant::BlockQ5_K>(src, n_blocks, codes, scales, offsets);
        case TypeId::Q6_K: return unpack_blocks<quant::BlockQ6_K>(src, n_blocks, codes, scales, offsets);
        default: throw std::invalid_argument("kernels: no integer codes for " + std::string(gguf::type_info(type).name));
    }
}

}  // namespace kernels::detail
