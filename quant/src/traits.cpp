#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "family.h"
#include "fit.h"

namespace quant {

namespace {
detail::TraitsTable make_table() {
    detail::TraitsTable t{};
    for (uint32_t i = 0; i < t.size(); ++i) t[i].type = static_cast<TypeId>(i);
    detail::register_float_formats(t);
    detail::register_legacy(t);
    detail::register_kquants(t);
    detail::register_iquants(t);
    detail::register_microscaling(t);
    detail::register_ternary(t);
    return t;
}
// Built on first use, so callers from other files' static initialisers see it complete.
const detail::TraitsTable& table() {
    static const detail::TraitsTable t = make_table();
    return t;
}
}  // namespace

const Traits* traits(TypeId type) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    return info && !info->retired ? &table()[static_cast<uint32_t>(type)] : nullptr;
}

bool can_quantize(TypeId type) {
    const Traits* t = traits(type);
    return t && t->quantize;
}

bool needs_importance(TypeId type) {
    const Traits* t = traits(type);
    return t && t->needs_importance;
}

namespace {

// Whether no value is NaN or infinite (exponent bits all ones), in a loop that vectorizes;
// the caller looks for the culprit only when one is there.
QUANT_AVX2_CLONE bool all_finite(const float* x, int64_t n) {
    uint32_t any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, x + i, 4);
        any |= (bits & 0x7f800000u) == 0x7f800000u ? 1u : 0u;
    }
    return any == 0;
}

}  // namespace

std::string_view effort_name(Effort e) { return e == Effort::Fast ? "fast" : e == Effort::Best ? "best" : "default"; }

std::optional<Effort> effort_from_name(std::string_view name) {
    for (Effort e : kEfforts)
        if (effort_name(e) == name) return e;
    return std::nullopt;
}

namespace {

// ScaleFit::Unbiased on one quantized row: each block's f16 scale fields times
// c = sum x x / sum x y (y: the block dequantized), all or none of them; with power p < 1
// (ScaleFit::Default's, default_scale_power), times c^p.
void unbias_row(const Traits& t, const gguf::TypeInfo& info, const float* x, uint8_t* dst, int64_t n, double power) {
    if (!scale_fit_applies(t.type)) return;
    int fields = 0;
    while (fields < 4 && (t.scales[fields].kind == ScaleKind::F16 || t.scales[fields].kind == ScaleKind::F16Nibbles)) ++fields;
    // An f16 field's bits, and their store: two bytes, or (IQ1_M) the top nibbles of four u16 words.
    const auto bits_of = [](const ScaleField& f, const uint8_t* at) {
        return f.kind == ScaleKind::F16Nibbles ? iq1_m_d_bits(at) : static_cast<uint16_t>(at[0] | at[1] << 8);
    };
    const auto store = [](const ScaleField& f, uint8_t* at, uint16_t h) {
        if (f.kind != ScaleKind::F16Nibbles) {
            at[0] = static_cast<uint8_t>(h);
            at[1] = static_cast<uint8_t>(h >> 8);
            return;
        }
        for (int i = 0; i < 4; ++i) at[2 * i + 1] = static_cast<uint8_t>((at[2 * i + 1] & 0x0f) | ((h >> (4 * i)) & 0xf) << 4);
    };
    const uint32_t values = info.block_size, bytes = info.type_size;
    static thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(n));
    t.dequantize(dst, row.data(), n / values);
    for (const float* y = row.data(); y < row.data() + n; y += values, x += values, dst += bytes) {
        double xx = 0, xy = 0;
        for (uint32_t j = 0; j < values; ++j) {
            xx += static_cast<double>(x[j]) * x[j];
            xy += static_cast<double>(x[j]) * y[j];
        }
        const double full = xx / xy;
        if (!(xy > 0 && full > 0.5 && full < 2)) continue;
        // The square roots are exactly rounded (std::pow need not be, nor the same on every CPU).
        const double c = power == 1 ? full : power == 0.5 ? std::sqrt(full) : std::sqrt(std::sqrt(full));
        uint16_t scaled[4];
        bool finite = true;
        for (int k = 0; k < fields; ++k) {
            const float v = f16_to_f32(bits_of(t.scales[k], dst + t.scales[k].offset));
            scaled[k] = f32_to_f16(static_cast<float>(v * c));
            finite = finite && std::isfinite(f16_to_f32(scaled[k]));
        }
        if (!finite) continue;
        for (int k = 0; k < fields; ++k) store(t.scales[k], dst + t.scales[k].offset, scaled[k]);
    }
}

}  // namespace

void quantize(TypeId type, std::span<const float> values, int64_t n_per_row, std::span<const float> weights,
              std::span<uint8_t> dst, int64_t first_row, Effort effort, ScaleFit scale_fit) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!can_quantize(type)) throw std::invalid_argument(fmt::format("cannot quantize to type {}", info ? info->name : "(unknown)"));
    if (needs_importance(type) && weights.empty())
        throw std::invalid_argument(fmt::format("{} needs importance weights (an importance matrix) to quantize", info->name));
    const uint64_t bytes = row_bytes(type, n_per_row);
    if (n_per_row <= 0 || values.size() % static_cast<uint64_t>(n_per_row) != 0)
        throw std::invalid_argument(fmt::format("{} values are not whole rows of {}", values.size(), n_per_row));
    const auto n_rows = static_cast<int64_t>(values.size() / static_cast<uint64_t>(n_per_row));
    if (dst.size() != bytes * static_cast<uint64_t>(n_rows))
        throw std::invalid_argument(fmt::format("{} rows of {} values of {} take {} bytes, {} given", n_rows, n_per_row,
                                                info->name, bytes * static_cast<uint64_t>(n_rows), dst.size()));
    if (!weights.empty() && weights.size() != static_cast<uint64_t>(n_per_row))
        throw std::invalid_argument(fmt::format("{} importance weights for rows of {} values", weights.size(), n_per_row));
    for (size_t c = 0; c < weights.size(); ++c)
        if (!std::isfinite(weights[c]) || weights[c] < 0)
            throw std::invalid_argument(fmt::format("importance weight of column {} is {}; weights must be finite and non-negative", c, weights[c]));
    const float* src = values.data();
    const float* importance = weights.empty() ? nullptr : weights.data();
    const Traits& t = *traits(type);
    const QuantizeRowFn fn = effort == Effort::Fast && t.fast ? t.fast : effort == Effort::Best && t.best ? t.best : t.quantize;
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* row = src + r * n_per_row;
        if (!all_finite(row, n_per_row))
            for (int64_t c = 0; c < n_per_row; ++c)
                if (!std::isfinite(row[c]))
                    throw std::invalid_argument(fmt::format("row {}, column {}: {} cannot be quantized", first_row + r, c, row[c]));
        fn(row, dst.data() + static_cast<uint64_t>(r) * bytes, n_per_row, importance);
        const double power = scale_fit == ScaleFit::Unbiased ? 1 : scale_fit == ScaleFit::Default ? default_scale_power(type) : 0;
        if (power > 0) unbias_row(t, *info, row, dst.data() + static_cast<uint64_t>(r) * bytes, n_per_row, power);
    }
}

int thread_count(int requested) {
    return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

bool scale_fit_applies(TypeId type) {
    const Traits* t = traits(type);
    if (!t || !t->fitted_scales || (t->scales[0].kind != ScaleKind::F16 && t->scales[0].kind != ScaleKind::F16Nibbles)) return false;
    for (const ScaleField& f : t->scales)
        if (f.kind != ScaleKind::F16 && f.kind != ScaleKind::F16Nibbles && f.kind != ScaleKind::None) return false;
    return true;
}

double default_scale_power(TypeId type) {  // 0, 1/2 or 1/4 (unbias_row takes these and 1)
    switch (type) {
    case TypeId::IQ1_S:
    case TypeId::IQ1_M:
    case TypeId::IQ2_XXS:
    case TypeId::IQ2_XS: return 0.5;
    case TypeId::IQ2_S: return 0.25;
    default: return 0;
    }
}

bool can_dequantize(TypeId type) {
    const Traits* t = traits(type);
    return t && t->dequantize;
}

uint64_t row_bytes(TypeId type, int64_t n) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!info || info->retired) throw std::invalid_argument(fmt::format("type id {} has no layout", static_cast<uint32_t>(type)));
    if (n < 0 || n % info->block_size != 0)
        throw std::invalid_argument(fmt::format("row of {} values is not a whole number of {} blocks of {}", n, info->name, info->block_size));
    return gguf::tensor_bytes(type, static_cast<uint64_t>(n));
}

void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst) {
    if (!can_dequantize(type)) {
        const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
        throw std::invalid_argument(fmt::format("cannot dequantize type {}", info ? info->name : "(unknown)"));
    }
    const gguf::TypeInfo& info = gguf::type_info(type);
    const uint64_t bytes = row_bytes(type, static_cast<int64_t>(dst.size()));
    if (src.size() != bytes)
        throw std::invalid_argument(fmt::format("{} values of {} take {} bytes, {} given", dst.size(), info.name, bytes, src.size()));
    traits(type)->dequantize(src.data(), dst.data(), static_cast<int64_t>(dst.size() / info.block_size));
}

}  // namespace quant
