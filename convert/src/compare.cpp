#include "convert/compare.h"

#include <algorithm>
#include <bit>
#include <mutex>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "convert/convert.h"
#include "gguf/file_type.h"
#include "gguf/model.h"
#include "kernels/kernels.h"
#include "measure.h"
#include "quant/quant.h"

namespace convert {

namespace {

using gguf::TypeId;

// A Hugging Face folder through convert's plan (F32 output: the plan only names and orders).
class HfSource final : public WeightSource {
public:
    explicit HfSource(const std::filesystem::path& folder) : weights_(Checkpoint::open(folder)) {
        ConvertOptions o;
        o.outtype = "f32";
        o.tokenizer = false;  // the weights are all a comparison reads
        plan_ = plan(folder, weights_, o);
        path_ = folder.string();
        std::string dense_type;
        for (const TensorPlan& t : plan_.tensors) {
            Tensor info{t.name, t.shape, 32, "F32"};
            if (!t.quantized.empty()) {
                // Experts alike in size: their mean; a kind that differs between them is said.
                double bits = 0;
                info.kind = t.quantized[0]->kind();
                for (const auto& q : t.quantized) {
                    bits += q->bits_per_weight();
                    if (q->kind() != info.kind) info.kind = "mixed: " + t.quantized[0]->kind() + ", " + q->kind() + ", ...";
                    warnings_.insert(warnings_.end(), q->warnings().begin(), q->warnings().end());
                }
                info.bits_per_weight = bits / static_cast<double>(t.quantized.size());
            } else if (t.source) {
                info.bits_per_weight = dtype_bits(t.source->dtype);
                info.kind = std::string(dtype_name(t.source->dtype));
                if (t.shape.size() >= 2 && dense_type.empty()) dense_type = info.kind;
            }
            tensors_.push_back(std::move(info));
            plans_.push_back(&t);
        }
        description_ = plan_.quantization.method != QuantMethod::None ? plan_.quantization.describe() : "Hugging Face " + dense_type;
    }
    void rows(const Tensor& t, uint64_t begin, uint64_t end, float* out) const override {
        decode_rows(*plans_[static_cast<size_t>(&t - tensors_.data())], begin, end, out);
    }

private:
    Checkpoint weights_;
    Plan plan_;
    std::vector<const TensorPlan*> plans_;
};

class GgufSource final : public WeightSource {
public:
    explicit GgufSource(const std::filesystem::path& file) : model_(gguf::Model::open(file)) {
        path_ = file.string();
        uint32_t file_type = 0;
        bool has_type = false;
        if (const gguf::KeyValue* kv = model_.find("general.file_type"); kv && kv->value.is_integer() && kv->value.as_int() >= 0)
            file_type = static_cast<uint32_t>(kv->value.as_uint()), has_type = true;
        description_ = has_type ? "GGUF " + gguf::file_type_name(file_type) : "GGUF";
        for (const gguf::Model::Tensor& t : model_.tensors()) {
            const std::span<const uint64_t> dims = t.info->dims();
            tensors_.push_back({std::string(t.info->name), std::vector<uint64_t>(dims.begin(), dims.end()), gguf::bits_per_weight(t.info->type),
                                std::string(gguf::type_info(t.info->type).name)});
            model_tensors_.push_back(&t);
        }
    }
    void rows(const Tensor& t, uint64_t begin, uint64_t end, float* out) const override {
        const gguf::Model::Tensor& m = *model_tensors_[static_cast<size_t>(&t - tensors_.data())];
        const TypeId type = m.info->type;
        if (!kernels::can_dequantize(type)) throw std::runtime_error(fmt::format("{}: tensor {}: cannot read {} values", path_, t.name, gguf::type_info(type).name));
        const uint64_t row_bytes = quant::row_bytes(type, static_cast<int64_t>(t.shape[0]));
        const std::span<const uint8_t> data = model_.tensor_data(m).subspan(begin * row_bytes, (end - begin) * row_bytes);
        kernels::dequantize(type, data, std::span<float>(out, static_cast<size_t>((end - begin) * t.shape[0])));
    }

private:
    gguf::Model model_;
    std::vector<const gguf::Model::Tensor*> model_tensors_;
};

constexpr uint64_t kChunkRows = 16;

}  // namespace

uint64_t WeightSource::Tensor::rows() const {
    uint64_t n = 1;
    for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
    return n;
}

const WeightSource::Tensor* WeightSource::find(const std::string& name) const {
    for (const Tensor& t : tensors_)
        if (t.name == name) return &t;
    return nullptr;
}

std::unique_ptr<WeightSource> WeightSource::open(const std::filesystem::path& path) {
    if (!std::filesystem::exists(path)) throw std::runtime_error(path.string() + ": no such file or folder");
    if (std::filesystem::is_directory(path)) return std::make_unique<HfSource>(path);
    return std::make_unique<GgufSource>(path);
}

Comparison compare_methods(const WeightSource& original, const std::vector<const WeightSource*>& versions, const CompareOptions& options) {
    Comparison c;
    // The tensors: matrices of the original, chosen as the header says.
    std::vector<const WeightSource::Tensor*> chosen;
    const auto everywhere = [&](const WeightSource::Tensor& t, bool quantized) {
        for (const WeightSource* v : versions) {
            const WeightSource::Tensor* u = v->find(t.name);
            if (!u || (quantized && u->bits_per_weight >= 16)) return false;
        }
        return true;
    };
    for (const WeightSource::Tensor& t : original.tensors()) {
        if (t.shape.size() < 2) continue;
        if (options.tensors ? std::regex_search(t.name, *options.tensors) : !versions.empty() && everywhere(t, true)) chosen.push_back(&t);
    }
    c.selection = options.tensors ? "the matrices --tensor selects" : "the matrices every version stores in fewer than 16 bits per weight";
    if (chosen.empty() && !options.tensors) {
        for (const WeightSource::Tensor& t : original.tensors())
            if (t.shape.size() >= 2 && everywhere(t, false)) chosen.push_back(&t);
        c.selection = "every matrix all the versions have";
    }
    if (chosen.empty()) throw std::runtime_error(fmt::format("{}: no tensor to compare ({})", original.path(), c.selection));
    for (const WeightSource::Tensor* t : chosen) {
        c.tensors.push_back(t->name);
        for (const WeightSource* v : versions) {
            const WeightSource::Tensor* u = v->find(t->name);
            if (!u) throw std::runtime_error(fmt::format("{}: tensor {} is missing (the original {} has it)", v->path(), t->name, original.path()));
            if (u->shape != t->shape)
                throw std::runtime_error(fmt::format("{}: tensor {} has shape [{}], the original's is [{}]", v->path(), t->name, fmt::join(u->shape, ", "),
                                                     fmt::join(t->shape, ", ")));
        }
    }
    for (const WeightSource* v : versions) c.methods.push_back({v->path(), v->description(), false, {}, 0, {}});
    for (TypeId type : options.types)
        c.methods.push_back({std::string(gguf::type_info(type).name), fmt::format("{} applied here{}", gguf::type_info(type).name, options.imatrix ? " with the imatrix" : ""), true, {}, 0, {}});

    const int threads = quant::thread_count(options.threads);
    const size_t methods = c.methods.size();
    for (size_t ti = 0; ti < chosen.size(); ++ti) {
        const WeightSource::Tensor& t = *chosen[ti];
        const uint64_t cols = t.shape[0], rows = t.rows(), per_matrix = t.shape[1];
        if (cols == 0 || rows == 0) {
            c.skipped.push_back({t.name, "it holds no values"});
            for (auto& m : c.methods) m.per_tensor.emplace_back();
            continue;
        }
        // Importance: one weight per column, or per column of each matrix (experts).
        const std::vector<float>* importance = options.imatrix ? options.imatrix->find(t.name) : nullptr;
        if (importance && importance->size() != cols && importance->size() != cols * (rows / per_matrix)) {
            c.skipped.push_back({t.name + " / imatrix", fmt::format("the importance matrix holds {} values for it, not {} per column: compared without weights",
                                                                    importance->size(), cols)});
            importance = nullptr;
        }
        // Which methods this tensor is measured for: every version; the types its rows suit.
        std::vector<std::string> skip(methods);
        for (size_t i = 0; i < options.types.size(); ++i) {
            const gguf::TypeInfo& info = gguf::type_info(options.types[i]);
            std::string& why = skip[versions.size() + i];
            if (cols % info.block_size) why = fmt::format("rows of {} are not whole {} blocks of {}", cols, info.name, info.block_size);
            else if (quant::needs_importance(options.types[i]) && !importance)
                why = options.imatrix ? fmt::format("{} needs importance weights and the imatrix has none for it", info.name)
                                      : fmt::format("{} needs importance weights (--imatrix)", info.name);
        }
        std::vector<std::string> failed(methods);  // a type's quantizer refusing the original's values (NaN, infinity)
        std::mutex failed_lock;
        const uint64_t chunks = (rows + kChunkRows - 1) / kChunkRows;
        std::vector<std::vector<MethodStats>> partial(static_cast<size_t>(chunks), std::vector<MethodStats>(methods));
        quant::for_each_row_range(static_cast<int64_t>(chunks), threads, [&](int64_t b, int64_t e) {
            std::vector<float> x, y, scratch;
            std::vector<uint8_t> packed;
            const auto weights_of = [&](uint64_t r) {
                if (!importance) return std::span<const float>();
                return std::span<const float>(*importance).subspan(importance->size() == cols ? 0 : static_cast<size_t>((r / per_matrix) * cols), static_cast<size_t>(cols));
            };
            for (auto chunk = static_cast<uint64_t>(b); chunk < static_cast<uint64_t>(e); ++chunk) {
                const uint64_t r0 = chunk * kChunkRows, r1 = std::min(rows, r0 + kChunkRows), n = (r1 - r0) * cols;
                x.resize(static_cast<size_t>(n)), y.resize(static_cast<size_t>(n));
                original.rows(t, r0, r1, x.data());
                std::vector<MethodStats>& out = partial[static_cast<size_t>(chunk)];
                // Each row into the method's sums (measure.h: a non-finite value copied as it is
                // costs nothing; any other makes the figures NaN, which is what they then are).
                const auto measure = [&](MethodStats& s) {
                    for (uint64_t r = r0; r < r1; ++r) {
                        const size_t at = static_cast<size_t>((r - r0) * cols);
                        detail::add_row(s, std::span<const float>(x.data() + at, static_cast<size_t>(cols)), std::span<const float>(y.data() + at, static_cast<size_t>(cols)),
                                        weights_of(r), scratch);
                    }
                };
                for (size_t v = 0; v < versions.size(); ++v) {
                    versions[v]->rows(*versions[v]->find(t.name), r0, r1, y.data());
                    measure(out[v]);
                }
                for (size_t i = 0; i < options.types.size(); ++i) {
                    const size_t m = versions.size() + i;
                    if (!skip[m].empty()) continue;
                    const TypeId type = options.types[i];
                    packed.resize(static_cast<size_t>(quant::row_bytes(type, static_cast<int64_t>(cols))));
                    try {
                        for (uint64_t r = r0; r < r1; ++r) {
                            const size_t at = static_cast<size_t>((r - r0) * cols);
                            quant::quantize(type, std::span<const float>(x.data() + at, static_cast<size_t>(cols)), static_cast<int64_t>(cols), weights_of(r), packed,
                                            static_cast<int64_t>(r));
                            kernels::dequantize(type, packed, std::span<float>(y.data() + at, static_cast<size_t>(cols)));
                        }
                    } catch (const std::invalid_argument& error) {
                        const std::lock_guard<std::mutex> hold(failed_lock);
                        if (failed[m].empty()) failed[m] = error.what();
                        continue;
                    }
                    measure(out[m]);
                }
            }
        });
        for (size_t m = 0; m < methods; ++m) {
            if (!failed[m].empty()) skip[m] = failed[m];
            if (!skip[m].empty()) {
                if (m >= versions.size()) c.skipped.push_back({t.name + " / " + c.methods[m].name, skip[m]});
                c.methods[m].per_tensor.emplace_back();
                continue;
            }
            MethodStats s;
            for (const std::vector<MethodStats>& p : partial) s.merge(p[m]);  // in row order
            s.bits = static_cast<double>(s.values) * (m < versions.size() ? versions[m]->find(t.name)->bits_per_weight : gguf::bits_per_weight(options.types[m - versions.size()]));
            c.methods[m].total.merge(s);
            ++c.methods[m].tensors;
            c.methods[m].per_tensor.emplace_back(s);
        }
        if (options.progress) options.progress(ti + 1, chosen.size());
    }
    return c;
}

}  // namespace convert
