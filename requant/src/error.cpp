#include "requant/error.h"

#include <fmt/format.h>

#include <stdexcept>

#include "quant/quant.h"
#include "requant/plan.h"

namespace gguf::requant {

namespace {

// Why `t` cannot be re-quantized to `target`, or empty.
std::string obstacle(const Model::Tensor& t, TypeId target, const std::vector<float>* weights) {
    const TypeInfo& src = type_info(t.info->type);
    const TypeInfo& dst = type_info(target);
    if (std::string why = never_quantized(*t.info); !why.empty()) return why;  // requant keeps it too
    if (!quant::can_dequantize(src.id)) return fmt::format("cannot read {} values yet", src.name);
    if (t.info->shape[0] % dst.block_size != 0)
        return fmt::format("row length {} is not a multiple of {}'s block size {}", t.info->shape[0], dst.name, dst.block_size);
    if (quant::needs_importance(target) && !weights) return fmt::format("{} needs importance weights and the imatrix has none for it", dst.name);
    return {};
}

}  // namespace

ErrorReport measure_error(const Model& model, TypeId target, const quant::ImportanceMatrix* imatrix, const std::optional<std::regex>& filter,
                          int threads, const ErrorProgress& progress) {
    ErrorReport report;
    const auto& tensors = model.tensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Model::Tensor& t = tensors[i];
        const std::string name(t.info->name);
        if (filter && !std::regex_search(name, *filter)) continue;
        const std::vector<float>* weights = imatrix ? imatrix->find(name) : nullptr;
        if (std::string why = obstacle(t, target, weights); !why.empty()) {
            report.skipped.push_back({name, why});
            continue;
        }
        std::function<void(int64_t, int64_t)> show;
        if (progress) show = [&](int64_t done, int64_t all) { progress(i, tensors.size(), name, done, all); };
        if (show) show(0, 1);
        try {
            std::span<const float> w = weights ? std::span<const float>(*weights) : std::span<const float>();
            ErrorRow r{&t, kernels::tensor_round_trip_error(t.info->type, model.tensor_data(t), t.info->dims(), target, w, threads, show),
                       weights != nullptr};
            report.total.merge(r.stats);
            report.rows.push_back(r);
        } catch (const std::invalid_argument& e) {
            throw Error(model.parts()[t.part].path(), t.info->file_offset, fmt::format("tensor '{}': {}", name, e.what()));
        }
    }
    return report;
}

}  // namespace gguf::requant
