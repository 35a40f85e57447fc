// The public calls: size checks, then the table of the chosen path.
#include "kernels/kernels.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "quant/blocks.h"
#include "quant/decode.h"
#include "quant/quant.h"
#include "codes.h"
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

// ---- Matrix products ------------------------------------------------------------------

namespace {

using detail::kGemmCols;
using detail::kGemmRows;
static_assert(kGemmRows == kMatmulPanelRows && detail::kIntRows == kGemmRows && detail::kIntCols == MatmulInput::kIntCols &&
              kGemmCols == MatmulInput::kPanelCols);

MatmulMethod resolve(MatmulMethod method, TypeId type, Isa isa) {
    if (method != MatmulMethod::Auto) return method;
    return (entry(type, isa).provided & detail::kDot) ? MatmulMethod::QuantizedActivations : MatmulMethod::DequantizedPanel;
}

// Values of k per step: a whole number of the type's blocks near 256, so a step of a block
// of panels (4 x 32 rows, 128 KiB) stays in L2 and a group's slice of it (12 KiB) in L1.
int64_t k_step(TypeId type) {
    const int64_t block = gguf::type_info(type).block_size;
    return std::max<int64_t>(1, 256 / block) * block;
}

}  // namespace

MatmulInput::MatmulInput(TypeId weights, int64_t k, int64_t n, MatmulMethod method, bool round_activations, Isa isa)
    : weights_(weights), method_(resolve(method, weights, isa)), round_(round_activations), isa_(isa), k_(k), n_(n) {
    whole_blocks(weights, k, "matmul");
    if (n < 0) throw std::invalid_argument("kernels: matmul: " + std::to_string(n) + " vectors");
    const TypeId act = activation_type(weights);
    if (method_ == MatmulMethod::QuantizedActivations) {
        if (!entry(weights, isa).dot) throw std::invalid_argument("kernels: no dot product for " + type_name(weights));
        whole_blocks(act, k, "activations");
        vector_bytes_ = static_cast<size_t>(k / gguf::type_info(act).block_size * gguf::type_info(act).type_size);
        quantized_.resize(vector_bytes_ * static_cast<size_t>(n));
        parts_ = n;
    } else if (method_ == MatmulMethod::IntegerPanel) {
        if (!has_integer_panel(weights, isa)) throw std::invalid_argument("kernels: no 8-bit packed product for " + type_name(weights) + " on this path");
        whole_blocks(act, k, "activations");
        group_ = detail::code_format(weights).group;
        parts_ = (n + kIntCols - 1) / kIntCols;
        codes_.assign(static_cast<size_t>(parts_ * k * kIntCols), 0);
        sums_.assign(static_cast<size_t>(parts_ * (k / group_) * kIntCols * 2), 0.0f);
        zero_sums_.assign(static_cast<size_t>(parts_ * (k / group_) * kIntCols), 0);
    } else {
        dequantizer(weights, isa);  // refuses what cannot be dequantized
        if (round_ && act != TypeId::F32) whole_blocks(act, k, "activations");
        parts_ = (n + kGemmCols - 1) / kGemmCols;
        step_ = k_step(weights);
        packed_.reset(new float[static_cast<size_t>(parts_ * k * kGemmCols)]);
    }
}

const uint8_t* MatmulInput::quantized(int64_t j) const { return quantized_.data() + static_cast<size_t>(j) * vector_bytes_; }

void MatmulInput::prepare(const float* x, int64_t part_begin, int64_t part_end) {
    const TypeId act = activation_type(weights_);
    if (method_ == MatmulMethod::QuantizedActivations) {
        const detail::QuantizeFn f = entry(act, isa_).quantize;
        for (int64_t j = part_begin; j < part_end; ++j) f(x + j * k_, quantized_.data() + static_cast<size_t>(j) * vector_bytes_, k_);
        return;
    }
    if (method_ == MatmulMethod::IntegerPanel) {
        prepare_codes(x, part_begin, part_end);
        return;
    }
    // Rounded vectors go through the activation format and back (its decoder: exact).
    std::vector<float> rounded;
    std::vector<uint8_t> coded;
    const bool round = round_ && act != TypeId::F32;
    if (round) {
        rounded.resize(static_cast<size_t>(k_));
        coded.resize(static_cast<size_t>(k_ / gguf::type_info(act).block_size * gguf::type_info(act).type_size));
    }
    for (int64_t g = part_begin; g < part_end; ++g) {
        for (int64_t c = 0; c < kGemmCols; ++c) {
            const float* v = nullptr;  // the last group's unused columns: zeros
            if (g * kGemmCols + c < n_) {
                v = x + (g * kGemmCols + c) * k_;
                if (round) {
                    quantize_activations(act, std::span<const float>(v, static_cast<size_t>(k_)), coded, isa_);
                    dequantizer(act, isa_)(coded.data(), rounded.data(), k_ / gguf::type_info(act).block_size);
                    v = rounded.data();
                }
            }
            for (int64_t i0 = 0; i0 < k_; i0 += step_) {
                const int64_t len = std::min(step_, k_ - i0);
                float* out = packed_.get() + (i0 * parts_ + g * len) * kGemmCols + c;  // packed(g, i0)
                for (int64_t i = 0; i < len; ++i) out[i * kGemmCols] = v ? v[i0 + i] : 0.0f;
            }
        }
    }
}

// Each vector quantized to the activation format (Q8_0 or Q8_K), its codes interleaved by
// four with the group's other vectors, and per group of weight codes its block's scale and
// code sum.
void MatmulInput::prepare_codes(const float* x, int64_t part_begin, int64_t part_end) {
    const TypeId act = activation_type(weights_);
    const gguf::TypeInfo& info = gguf::type_info(act);
    const int zero = detail::code_format(weights_).zero;
    const int64_t groups = k_ / group_;
    std::vector<uint8_t> coded(static_cast<size_t>(k_ / info.block_size * info.type_size));
    for (int64_t part = part_begin; part < part_end; ++part) {
        int8_t* codes = codes_.data() + part * k_ * kIntCols;
        float* xd = sums_.data() + part * groups * kIntCols * 2;
        float* xs = xd + groups * kIntCols;
        int32_t* xz = zero_sums_.data() + part * groups * kIntCols;
        for (int64_t c = 0; c < kIntCols && part * kIntCols + c < n_; ++c) {
            quantize_activations(act, std::span<const float>(x + (part * kIntCols + c) * k_, static_cast<size_t>(k_)), coded, isa_);
            for (int64_t b = 0; b < k_ / info.block_size; ++b) {
                const uint8_t* block = coded.data() + b * info.type_size;
                float d;
                const int8_t* q;
                if (act == TypeId::Q8_K) {
                    const auto& blk = *reinterpret_cast<const quant::BlockQ8_K*>(block);
                    d = quant::bits_to_float(quant::u32le(blk.d));
                    q = blk.qs;
                } else {
                    const auto& blk = *reinterpret_cast<const quant::BlockQ8_0*>(block);
                    d = quant::half_field(blk.d);
                    q = blk.qs;
                }
                for (int64_t i = 0; i < info.block_size; ++i) {
                    const int64_t at = b * info.block_size + i;
                    codes[(at / 4 * kIntCols + c) * 4 + at % 4] = q[i];
                }
                for (int64_t g = b * info.block_size / group_; g < (b + 1) * info.block_size / group_; ++g) {
                    int32_t sum = 0;
                    for (int64_t i = g * group_ - b * info.block_size; i < (g + 1) * group_ - b * info.block_size; ++i) sum += q[i];
                    xd[g * kIntCols + c] = d;
                    xz[g * kIntCols + c] = -zero * sum;
                    xs[g * kIntCols + c] = d * static_cast<float>(sum);
                }
            }
        }
    }
}

bool has_integer_panel(TypeId type, Isa isa) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    return info && !info->retired && detail::code_format(type).group > 0 && table(isa).int_product != nullptr;
}

namespace {

// y[j x y_stride + r] += c[j x R + r] (or = 0.0f + c, see matmul's `store`) for r < rows, j < n.
void add_tile(const float* c, int64_t R, int64_t rows, int64_t n, float* y, int64_t y_stride, bool store) {
    for (int64_t j = 0; j < n; ++j) {
        float* out = y + j * y_stride;
        const float* in = c + j * R;
        if (store)
            for (int64_t r = 0; r < rows; ++r) out[r] = 0.0f + in[r];
        else
            for (int64_t r = 0; r < rows; ++r) out[r] += in[r];
    }
}

// IntegerPanel over rows of one thread: as the f32 panels below, with codes for floats.
void integer_matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, const MatmulInput& x, float* y, int64_t y_stride, bool store) {
    const detail::Table& t = table(x.isa());
    const detail::IntProductFn product = t.int_product;
    const gguf::TypeInfo& info = gguf::type_info(type);
    const detail::CodeFormat format = detail::code_format(type);
    constexpr int64_t kBlockPanels = 4, R = detail::kIntRows, C = detail::kIntCols;
    const int64_t k = x.k(), n = x.n(), step = k_step(type), parts = x.parts(), tile = C * R, S = format.group;
    thread_local std::vector<uint8_t> row_codes, panel_codes;
    thread_local std::vector<float> row_scales, row_offsets, panel_scales, panel_offsets, acc;
    row_codes.resize(static_cast<size_t>(R * step));
    row_scales.resize(static_cast<size_t>(R * step / S));
    row_offsets.resize(static_cast<size_t>(R * step / S));
    panel_codes.resize(static_cast<size_t>(kBlockPanels * R * step));
    panel_scales.resize(static_cast<size_t>(kBlockPanels * R * step / S));
    panel_offsets.resize(static_cast<size_t>(kBlockPanels * R * step / S));
    acc.resize(static_cast<size_t>(kBlockPanels * parts * tile));
    for (int64_t b0 = 0; b0 < m; b0 += kBlockPanels * R) {
        const int64_t block_rows = std::min(kBlockPanels * R, m - b0), count = (block_rows + R - 1) / R;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t i0 = 0; i0 < k; i0 += step) {
            const int64_t len = std::min(step, k - i0), groups = len / S;
            for (int64_t p = 0; p < count; ++p) {
                const int64_t rows = std::min(R, block_rows - p * R);
                for (int64_t r = 0; r < rows; ++r)
                    detail::unpack_codes(type, w + (b0 + p * R + r) * row_stride + i0 / info.block_size * info.type_size, len / info.block_size,
                                         row_codes.data() + r * len, row_scales.data() + r * groups, row_offsets.data() + r * groups);
                // Codes by four (a 32-bit word) transposed like floats; scales and offsets by group.
                t.pack_panel(reinterpret_cast<const float*>(row_codes.data()), len / 4, len / 4, rows,
                             reinterpret_cast<float*>(panel_codes.data() + p * R * step));
                float* ps = panel_scales.data() + p * R * (step / S);
                float* po = panel_offsets.data() + p * R * (step / S);
                for (int64_t g = 0; g < groups; ++g)
                    for (int64_t r = 0; r < R; ++r) {
                        ps[g * R + r] = r < rows ? row_scales[static_cast<size_t>(r * groups + g)] : 0.0f;
                        po[g * R + r] = r < rows ? row_offsets[static_cast<size_t>(r * groups + g)] : 0.0f;
                    }
            }
            for (int64_t part = 0; part < parts; ++part) {
                const int cols = static_cast<int>(std::min(C, n - part * C));
                const int64_t g0 = i0 / S;
                for (int64_t p = 0; p < count; ++p)
                    product(panel_codes.data() + p * R * step, panel_scales.data() + p * R * (step / S),
                            format.offsets ? panel_offsets.data() + p * R * (step / S) : nullptr, x.codes(part) + i0 * C, x.scales(part) + g0 * C,
                            x.zero_sums(part) + g0 * C, x.scaled_sums(part) + g0 * C, groups, static_cast<int>(S / 4), cols,
                            acc.data() + (p * parts + part) * tile);
            }
        }
        for (int64_t p = 0; p < count; ++p) {
            const int64_t rows = std::min(R, block_rows - p * R);
            const float* c = acc.data() + p * parts * tile;
            add_tile(c, R, rows, n, y + b0 + p * R, y_stride, store);
        }
    }
}

}  // namespace

void matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, const MatmulInput& x, float* y, int64_t y_stride, bool store) {
    if (x.weights() != type)
        throw std::invalid_argument("kernels: matmul input prepared for " + type_name(x.weights()) + " weights, used with " + type_name(type));
    const int64_t k = x.k(), n = x.n(), blocks = whole_blocks(type, k, "matmul");
    if (k == 0) {  // an empty sum: y unchanged, or 0 with store
        if (store)
            for (int64_t j = 0; j < n; ++j) std::fill(y + j * y_stride, y + j * y_stride + m, 0.0f);
        return;
    }
    if (x.method() == MatmulMethod::IntegerPanel) return integer_matmul(type, w, row_stride, m, x, y, y_stride, store);
    const detail::Table& t = table(x.isa());
    if (x.method() == MatmulMethod::QuantizedActivations) {
        const detail::DotFn dot = t.at(type).dot;
        constexpr int64_t kRows = 4;  // rows kept in cache while every vector passes
        for (int64_t r0 = 0; r0 < m; r0 += kRows)
            for (int64_t j = 0; j < n; ++j)
                for (int64_t r = r0; r < std::min(m, r0 + kRows); ++r) {
                    const float d = dot(w + r * row_stride, x.quantized(j), blocks);
                    y[j * y_stride + r] = store ? 0.0f + d : y[j * y_stride + r] + d;
                }
        return;
    }
    // Rows in blocks of a few panels; k in steps. Each step's rows are dequantized and stored
    // k-major (panels of 32 rows, in L2), then every group of vectors runs through each panel
    // in turn (the group's slice of the step stays in L1), the accumulators kept in `acc`.
    // So the vectors pass through the cache once per block of rows, not once per panel.
    const gguf::TypeInfo& info = gguf::type_info(type);
    const detail::DequantizeFn f = dequantizer(type, x.isa());
    constexpr int64_t kBlockPanels = 4;
    const int64_t step = k_step(type), groups = x.parts(), tile = kGemmCols * kGemmRows;  // (x's step is the same)
    thread_local std::vector<float> rows_buffer, panels, acc;
    rows_buffer.resize(static_cast<size_t>(kGemmRows * step));
    panels.resize(static_cast<size_t>(kBlockPanels * kGemmRows * step));
    acc.resize(static_cast<size_t>(kBlockPanels * groups * tile));
    for (int64_t b0 = 0; b0 < m; b0 += kBlockPanels * kGemmRows) {
        const int64_t block_rows = std::min(kBlockPanels * kGemmRows, m - b0), count = (block_rows + kGemmRows - 1) / kGemmRows;
        for (int64_t i0 = 0; i0 < k; i0 += step) {  // the accumulators start from 0 at the first step
            const int64_t len = std::min(step, k - i0);
            for (int64_t p = 0; p < count; ++p) {
                const int64_t rows = std::min(kGemmRows, block_rows - p * kGemmRows);
                const uint8_t* first = w + (b0 + p * kGemmRows) * row_stride + i0 / info.block_size * info.type_size;
                float* panel = panels.data() + p * kGemmRows * step;
                // The float types straight from the rows (exact conversions); the others
                // dequantized first.
                if (type == TypeId::F32 && row_stride % 4 == 0)
                    t.pack_panel(reinterpret_cast<const float*>(first), row_stride / 4, len, rows, panel);
                else if ((type == TypeId::F16 || type == TypeId::BF16) && row_stride % 2 == 0)
                    (type == TypeId::F16 ? t.pack_panel_f16 : t.pack_panel_bf16)(reinterpret_cast<const uint16_t*>(first), row_stride / 2, len, rows, panel);
                else {
                    for (int64_t r = 0; r < rows; ++r) f(first + r * row_stride, rows_buffer.data() + r * len, len / info.block_size);
                    t.pack_panel(rows_buffer.data(), len, len, rows, panel);
                }
            }
            for (int64_t g = 0; g < groups; ++g) {
                const float* xg = x.packed(g, i0);
                const int cols = static_cast<int>(std::min(kGemmCols, n - g * kGemmCols));
                for (int64_t p = 0; p < count; ++p)
                    t.gemm_packed(panels.data() + p * kGemmRows * step, xg, len, cols, acc.data() + (p * groups + g) * tile, i0 == 0);
            }
        }
        for (int64_t p = 0; p < count; ++p) {
            const int64_t rows = std::min(kGemmRows, block_rows - p * kGemmRows);
            const float* c = acc.data() + p * groups * tile;
            add_tile(c, kGemmRows, rows, n, y + b0 + p * kGemmRows, y_stride, store);
        }
    }
}

void matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n, float* y,
            MatmulMethod method, Isa isa) {
    MatmulInput input(type, k, n, method, false, isa);
    input.prepare(x);
    matmul(type, w, row_stride, m, input, y, m);
}

}  // namespace kernels
