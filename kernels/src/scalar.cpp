// The scalar path: quant/'s reference decoders, the reference quantization of activations,
// and dot products that decode both sides and sum in a fixed order. Every other path is
// tested against this one: bit for bit for dequantization and activation quantization,
// within the stated bounds for dot products.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <utility>

#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/decode.h"
#include "quant/quant.h"
#include "scalar.h"
#include "table.h"

namespace kernels::detail {

namespace {

using quant::BlockQ8_0;
using quant::BlockQ8_1;
using quant::BlockQ8_K;

void store_half(uint8_t (&dst)[2], float v) {
    const uint16_t h = quant::f32_to_f16(v);
    std::memcpy(dst, &h, 2);
}

// Generic dot product of n_blocks weight blocks with activations of type `act`: both sides
// decoded to floats by quant/, products summed into 8 partial sums, then pairwise.
template <TypeId W> float dot_decoded(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const TypeId act = activation_type(W);
    const gguf::TypeInfo& wt = gguf::type_info(W);
    const gguf::TypeInfo& at = gguf::type_info(act);
    const quant::Traits& wq = *quant::traits(W);
    const quant::Traits& aq = *quant::traits(act);
    float wv[256], xv[256];
    float partial[8] = {};
    for (int64_t b = 0; b < n_blocks; ++b) {
        const int64_t n = wt.block_size;
        wq.dequantize(w + b * wt.type_size, wv, 1);
        const uint8_t* xb = x + b * n / at.block_size * at.type_size;
        aq.dequantize(xb, xv, n / at.block_size);
        for (int64_t i = 0; i < n; ++i) partial[i % 8] += wv[i] * xv[i];
    }
    return ((partial[0] + partial[4]) + (partial[2] + partial[6])) + ((partial[1] + partial[5]) + (partial[3] + partial[7]));
}

template <size_t... I> void add_dots(Table& t, std::index_sequence<I...>) {
    constexpr auto add = []<size_t Id>(Table& table) {
        constexpr TypeId w = static_cast<TypeId>(Id);
        constexpr const gguf::TypeInfo& info = gguf::all_types()[Id];
        if constexpr (!info.retired && info.block_size != 0 && info.block_size <= 256) {
            if (quant::can_dequantize(w) && quant::can_dequantize(activation_type(w))) table.types[Id].dot = dot_decoded<w>;
        }
    };
    (add.template operator()<I>(t), ...);
}

void to_f16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = quant::f32_to_f16(x[i]);
}
void to_bf16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = quant::f32_to_bf16(x[i]);
}
void f16_activations(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::f32_to_f16(x[i]);
        std::memcpy(y + 2 * i, &h, 2);
    }
}
void bf16_activations(const float* x, uint8_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::f32_to_bf16(x[i]);
        std::memcpy(y + 2 * i, &h, 2);
    }
}
void f32_activations(const float* x, uint8_t* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * 4); }

float dot_f32(const float* a, const float* b, int64_t n) {
    float partial[8] = {};
    for (int64_t i = 0; i < n; ++i) partial[i % 8] += a[i] * b[i];
    return ((partial[0] + partial[4]) + (partial[2] + partial[6])) + ((partial[1] + partial[5]) + (partial[3] + partial[7]));
}

template <class T, class Convert> void pack_rows(const T* rows, int64_t stride, int64_t len, int64_t count, float* panel, Convert convert) {
    for (int64_t i = 0; i < len; ++i)
        for (int64_t r = 0; r < kGemmRows; ++r) panel[i * kGemmRows + r] = r < count ? convert(rows[r * stride + i]) : 0.0f;
}
// Moves 4-byte words (floats, or the 8-bit product's codes by four) without reading them as
// floats.
void pack_panel(const float* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    for (int64_t i = 0; i < len; ++i)
        for (int64_t r = 0; r < kGemmRows; ++r) {
            if (r < count)
                std::memcpy(panel + i * kGemmRows + r, rows + r * stride + i, 4);
            else
                panel[i * kGemmRows + r] = 0.0f;
        }
}
void pack_panel_f16(const uint16_t* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    pack_rows(rows, stride, len, count, panel, [](uint16_t h) { return quant::half_bits_to_float(h); });
}
void pack_panel_bf16(const uint16_t* rows, int64_t stride, int64_t len, int64_t count, float* panel) {
    pack_rows(rows, stride, len, count, panel, [](uint16_t h) { return quant::bits_to_float(uint32_t{h} << 16); });
}

// The 8-bit product, one output at a time in the order table.h defines.
void int_product(const uint8_t* codes, const float* scales, const float* offsets, const int8_t* x, const float* xd, const int32_t* xz,
                 const float* xs, int64_t groups, int quads, int cols, float* c) {
    for (int j = 0; j < cols; ++j)
        for (int64_t r = 0; r < kIntRows; ++r) {
            float acc = c[j * kIntRows + r];
            for (int64_t g = 0; g < groups; ++g) {
                int32_t s = xz[g * kIntCols + j];
                for (int64_t q = g * quads; q < (g + 1) * quads; ++q)
                    for (int b = 0; b < 4; ++b) s += int32_t{codes[(q * kIntRows + r) * 4 + b]} * x[(q * kIntCols + j) * 4 + b];
                acc = std::fma(static_cast<float>(s), scales[g * kIntRows + r] * xd[g * kIntCols + j], acc);
                if (offsets) acc = std::fma(-offsets[g * kIntRows + r], xs[g * kIntCols + j], acc);
            }
            c[j * kIntRows + r] = acc;
        }
}

// The packed product, one std::fma per step: the sequence every path computes.
void gemm_packed(const float* a, const float* x, int64_t k, int cols, float* c, bool zero) {
    if (zero) std::fill(c, c + cols * kGemmRows, 0.0f);
    for (int64_t i = 0; i < k; ++i, a += kGemmRows, x += kGemmCols)
        for (int j = 0; j < cols; ++j)
            for (int64_t r = 0; r < kGemmRows; ++r) c[j * kGemmRows + r] = std::fma(a[r], x[j], c[j * kGemmRows + r]);
}

}  // namespace

int32_t round_half_away(float v) {
    const float a = std::fabs(v);
    const auto t = static_cast<int32_t>(a);
    const int32_t r = t + (a - static_cast<float>(t) >= 0.5f ? 1 : 0);
    return v < 0 ? -r : r;
}

float activation_scale(const float* x, int n, float& inverse) {
    float amax = 0;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    inverse = d != 0 ? 1.0f / d : 0.0f;
    return d;
}

void quantize_q8_0(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b, x += 32) {
        float id;
        store_half(b->d, activation_scale(x, 32, id));
        for (int j = 0; j < 32; ++j) b->qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
    }
}

void quantize_q8_1(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<BlockQ8_1*>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b, x += 32) {
        float id;
        const float d = activation_scale(x, 32, id);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            b->qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
            sum += b->qs[j];
        }
        store_half(b->d, d);
        store_half(b->s, d * static_cast<float>(sum));
    }
}

void quantize_q8_k(const float* x, uint8_t* dst, int64_t n) {
    auto* b = reinterpret_cast<BlockQ8_K*>(dst);
    for (int64_t i = 0; i < n; i += 256, ++b, x += 256) {
        float id;
        const float d = activation_scale(x, 256, id);
        std::memcpy(b->d, &d, 4);
        for (int g = 0; g < 16; ++g) {
            int16_t sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; ++j) {
                b->qs[j] = static_cast<int8_t>(round_half_away(x[j] * id));
                sum = static_cast<int16_t>(sum + b->qs[j]);
            }
            std::memcpy(b->bsums + 2 * g, &sum, 2);
        }
    }
}

void add_scalar(Table& t) {
    t.isa = Isa::Scalar;
    for (const gguf::TypeInfo& info : gguf::all_types())
        if (const quant::Traits* q = quant::traits(info.id); q && q->dequantize)
            t.types[static_cast<uint32_t>(info.id)].dequantize = q->dequantize;
    add_dots(t, std::make_index_sequence<gguf::kTypeCount>{});
    t.types[static_cast<uint32_t>(TypeId::Q8_0)].quantize = quantize_q8_0;
    t.types[static_cast<uint32_t>(TypeId::Q8_1)].quantize = quantize_q8_1;
    t.types[static_cast<uint32_t>(TypeId::Q8_K)].quantize = quantize_q8_k;
    t.types[static_cast<uint32_t>(TypeId::F16)].quantize = f16_activations;
    t.types[static_cast<uint32_t>(TypeId::BF16)].quantize = bf16_activations;
    t.types[static_cast<uint32_t>(TypeId::F32)].quantize = f32_activations;
    t.to_f16 = to_f16;
    t.to_bf16 = to_bf16;
    t.dot_f32 = dot_f32;
    t.gemm_packed = gemm_packed;
    t.pack_panel = pack_panel;
    t.pack_panel_f16 = pack_panel_f16;
    t.pack_panel_bf16 = pack_panel_bf16;
    t.int_product = int_product;
    // The scalar path provides everything it has: it is the reference.
    for (TypeKernels& k : t.types)
        k.provided = static_cast<uint8_t>((k.dequantize ? kDequantize : 0) | (k.dot ? kDot : 0) | (k.quantize ? kQuantize : 0));
}

}  // namespace kernels::detail
