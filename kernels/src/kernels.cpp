// The public calls: size checks, then the table of the chosen path.
#include "kernels/kernels.h"

#include <stdexcept>
#include <string>

#include "quant/quant.h"
#include "table.h"

namespace kernels {

using detail::table;

namespace {

std::string type_name(TypeId type) { return std::string(gguf::type_info(type).name); }

const detail::TypeKernels& entry(TypeId type, Isa isa) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!info || info->retired) throw std::invalid_argument("kernels: type id " + std::to_string(static_cast<uint32_t>(type)) + " is not a live type");
    return table(isa).at(type);
}

// The number of blocks in `n` values of `type`, checking that they are whole blocks.
int64_t whole_blocks(TypeId type, int64_t n, const char* what) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!info || info->retired || info->block_size == 0)
        throw std::invalid_argument(std::string("kernels: ") + what + ": type id " + std::to_string(static_cast<uint32_t>(type)) +
                                    " is not a live type");
    const uint32_t block = info->block_size;
    if (n < 0 || n % block != 0)
        throw std::invalid_argument(std::string("kernels: ") + what + ": " + std::to_string(n) + " values are not a whole number of " +
                                    type_name(type) + " blocks of " + std::to_string(block));
    return n / block;
}

void check_bytes(TypeId type, size_t bytes, int64_t n_values, const char* what) {
    const int64_t blocks = whole_blocks(type, n_values, what);
    if (static_cast<uint64_t>(blocks) * gguf::type_info(type).type_size != bytes)
        throw std::invalid_argument(std::string("kernels: ") + what + ": " + std::to_string(bytes) + " bytes of " + type_name(type) +
                                    " do not hold " + std::to_string(n_values) + " values");
}

detail::DequantizeFn dequantizer(TypeId type, Isa isa) {
    const detail::DequantizeFn f = entry(type, isa).dequantize;
    if (!f) throw std::invalid_argument("kernels: cannot dequantize " + type_name(type));
    return f;
}

// Dequantizes to floats in chunks of whole blocks, handing each chunk to `sink`.
constexpr int64_t kChunk = 4096;  // values: a multiple of every block size, 16 KiB of floats
template <class Sink> void in_chunks(TypeId type, const uint8_t* src, int64_t n, Isa isa, Sink&& sink) {
    const detail::DequantizeFn f = dequantizer(type, isa);
    const gguf::TypeInfo& info = gguf::type_info(type);
    float buffer[kChunk];
    for (int64_t done = 0; done < n; done += kChunk) {
        const int64_t count = std::min(kChunk, n - done);
        f(src + done / info.block_size * info.type_size, buffer, count / info.block_size);
        sink(buffer, done, count);
    }
}

template <detail::ToHalfFn detail::Table::*Convert>
void dequantize_half(TypeId type, std::span<const uint8_t> src, std::span<uint16_t> dst, Isa isa, const char* what) {
    const auto n = static_cast<int64_t>(dst.size());
    check_bytes(type, src.size(), n, what);
    const detail::ToHalfFn convert = table(isa).*Convert;
    in_chunks(type, src.data(), n, isa, [&](const float* values, int64_t at, int64_t count) { convert(values, dst.data() + at, count); });
}

}  // namespace

Coverage coverage(TypeId type, Isa isa) {
    const uint8_t p = entry(type, isa).provided;
    return {(p & detail::kDequantize) != 0, (p & detail::kDot) != 0, (p & detail::kQuantize) != 0};
}

bool can_dequantize(TypeId type) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    return info && !info->retired && table(Isa::Scalar).at(type).dequantize;
}

void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst, Isa isa) {
    const auto n = static_cast<int64_t>(dst.size());
    check_bytes(type, src.size(), n, "dequantize");
    dequantizer(type, isa)(src.data(), dst.data(), whole_blocks(type, n, "dequantize"));
}

void dequantize_f16(TypeId type, std::span<const uint8_t> src, std::span<uint16_t> dst, Isa isa) {
    dequantize_half<&detail::Table::to_f16>(type, src, dst, isa, "dequantize to f16");
}

void dequantize_bf16(TypeId type, std::span<const uint8_t> src, std::span<uint16_t> dst, Isa isa) {
    dequantize_half<&detail::Table::to_bf16>(type, src, dst, isa, "dequantize to bf16");
}

TypeId activation_type(TypeId weights) {
    const gguf::TypeInfo* found = gguf::find_type(static_cast<uint32_t>(weights));
    if (!found || found->retired) return TypeId::F32;  // nothing multiplies them; calls with them are refused
    const gguf::TypeInfo& info = *found;
    switch (weights) {
        case TypeId::F16: return TypeId::F16;
        case TypeId::BF16: return TypeId::BF16;
        case TypeId::Q8_1:
        case TypeId::Q8_K: return TypeId::F32;  // activation formats themselves: no integer product
        default: break;
    }
    if (!info.quantized || info.retired) return TypeId::F32;
    return info.block_size % 256 == 0 ? TypeId::Q8_K : TypeId::Q8_0;
}

Activations::Activations(TypeId weights, std::span<const float> x, Isa isa)
    : weights_(weights), type_(activation_type(weights)), n_(static_cast<int64_t>(x.size())) {
    whole_blocks(weights, n_, "activations");
    whole_blocks(type_, n_, "activations");
    bytes_.resize(static_cast<size_t>(n_ / gguf::type_info(type_).block_size * gguf::type_info(type_).type_size));
    const detail::QuantizeFn f = entry(type_, isa).quantize;
    if (!f) throw std::invalid_argument("kernels: no quantizer for activations of type " + type_name(type_));
    f(x.data(), bytes_.data(), n_);
}

void quantize_activations(TypeId type, std::span<const float> x, std::span<uint8_t> dst, Isa isa) {
    const auto n = static_cast<int64_t>(x.size());
    check_bytes(type, dst.size(), n, "quantize activations");
    const detail::QuantizeFn f = entry(type, isa).quantize;
    if (!f) throw std::invalid_argument("kernels: no quantizer for activations of type " + type_name(type));
    f(x.data(), dst.data(), n);
}

float dot(TypeId type, std::span<const uint8_t> row, const Activations& x, Isa isa) {
    if (x.weights() != type)
        throw std::invalid_argument("kernels: activations prepared for " + type_name(x.weights()) + " weights, used with " + type_name(type));
    check_bytes(type, row.size(), x.size(), "dot");
    const detail::DotFn f = entry(type, isa).dot;
    if (!f) throw std::invalid_argument("kernels: no dot product for " + type_name(type));
    return f(row.data(), x.bytes().data(), whole_blocks(type, x.size(), "dot"));
}

float dot(TypeId type, std::span<const uint8_t> row, std::span<const float> x, Isa isa) {
    const auto n = static_cast<int64_t>(x.size());
    check_bytes(type, row.size(), n, "dot");
    const detail::Table& t = table(isa);
    if (type == TypeId::F32) return t.dot_f32(reinterpret_cast<const float*>(row.data()), x.data(), n);
    float sum = 0;
    in_chunks(type, row.data(), n, isa, [&](const float* w, int64_t at, int64_t count) { sum += t.dot_f32(w, x.data() + at, count); });
    return sum;
}

void matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n, float* y,
            MatmulMethod method, Isa isa) {
    const int64_t blocks = whole_blocks(type, k, "matmul");
    const detail::Table& t = table(isa);
    const detail::TypeKernels& kt = t.at(type);
    if (method == MatmulMethod::Auto)
        method = (kt.provided & detail::kDot) ? MatmulMethod::QuantizedActivations : MatmulMethod::DequantizedPanel;
    if (method == MatmulMethod::QuantizedActivations) {
        if (!kt.dot) throw std::invalid_argument("kernels: no dot product for " + type_name(type));
        std::vector<Activations> xs;
        xs.reserve(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) xs.emplace_back(type, std::span<const float>(x + j * k, static_cast<size_t>(k)), isa);
        constexpr int64_t kRows = 4;  // rows kept in cache while every column passes
        for (int64_t r0 = 0; r0 < m; r0 += kRows)
            for (int64_t j = 0; j < n; ++j)
                for (int64_t r = r0; r < std::min(m, r0 + kRows); ++r)
                    y[j * m + r] += kt.dot(w + r * row_stride, xs[static_cast<size_t>(j)].bytes().data(), blocks);
        return;
    }
    // A panel of rows dequantized once (whole rows: kPanel x k floats, in L2 for the usual k),
    // then the path's f32 panel product with every column.
    const detail::DequantizeFn f = dequantizer(type, isa);
    constexpr int64_t kPanel = 16;
    std::vector<float> panel(static_cast<size_t>(std::min(kPanel, m) * k));
    for (int64_t r0 = 0; r0 < m; r0 += kPanel) {
        const int64_t rows = std::min(kPanel, m - r0);
        for (int64_t r = 0; r < rows; ++r) f(w + (r0 + r) * row_stride, panel.data() + r * k, blocks);
        t.gemm_f32(panel.data(), rows, k, x, n, y + r0, m);
    }
}

}  // namespace kernels
