#include "quant/imatrix.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "gguf/file.h"

namespace quant {

namespace {

constexpr std::string_view kSums = ".in_sum2", kCounts = ".counts";

std::vector<float> f32_values(const gguf::File& f, const gguf::TensorInfo& t) {
    if (t.type != gguf::TypeId::F32)
        throw gguf::Error(f.path(), t.info_offset, fmt::format("tensor '{}' must be f32, not {}", t.name, gguf::type_info(t.type).name));
    std::vector<float> v(t.n_elements);
    std::memcpy(v.data(), f.tensor_data(t).data(), v.size() * 4);
    return v;
}

uint32_t u32_key(const gguf::File& f, std::string_view key) {
    const gguf::KeyValue* kv = f.find(key);
    return kv && kv->value.is_integer() ? static_cast<uint32_t>(kv->value.as_uint()) : 0;
}

}  // namespace

ImportanceMatrix ImportanceMatrix::load(const std::filesystem::path& path) {
    const gguf::File f = gguf::File::open(path);
    if (f.big_endian()) throw gguf::Error(f.path(), std::nullopt, "big-endian importance files are not supported");
    ImportanceMatrix m;
    m.chunk_count = u32_key(f, "imatrix.chunk_count");
    m.chunk_size = u32_key(f, "imatrix.chunk_size");
    if (const gguf::KeyValue* d = f.find("imatrix.datasets"); d && d->value.type() == gguf::ValueType::Array &&
                                                              d->value.array().element_type() == gguf::ValueType::String)
        for (gguf::Value s : d->value.array()) m.datasets.emplace_back(s.str());

    for (const gguf::TensorInfo& t : f.tensors()) {
        const std::string_view name = t.name;
        if (name.ends_with(kCounts)) {
            if (!f.find_tensor(std::string(name.substr(0, name.size() - kCounts.size())) + std::string(kSums)))
                throw gguf::Error(f.path(), t.info_offset, fmt::format("tensor '{}' has no matching {} tensor", name, kSums));
            continue;
        }
        if (!name.ends_with(kSums)) continue;
        const std::string weight_name(name.substr(0, name.size() - kSums.size()));
        const gguf::TensorInfo* counts_info = f.find_tensor(weight_name + std::string(kCounts));
        if (!counts_info) throw gguf::Error(f.path(), t.info_offset, fmt::format("tensor '{}' has no matching {} tensor", name, kCounts));
        std::vector<float> sums = f32_values(f, t);
        const std::vector<float> counts = f32_values(f, *counts_info);
        if (counts.empty() || sums.size() % counts.size() != 0)
            throw gguf::Error(f.path(), t.info_offset, fmt::format("tensor '{}': {} sums do not divide into {} experts", name, sums.size(), counts.size()));
        const size_t columns = sums.size() / counts.size();
        for (size_t e = 0; e < counts.size(); ++e) {
            if (!std::isfinite(counts[e]) || counts[e] < 0)
                throw gguf::Error(f.path(), counts_info->info_offset, fmt::format("tensor '{}{}': count {} is {}", weight_name, kCounts, e, counts[e]));
            for (size_t c = 0; c < columns; ++c) {
                float& v = sums[e * columns + c];
                if (!std::isfinite(v) || v < 0)
                    throw gguf::Error(f.path(), t.info_offset, fmt::format("tensor '{}': value {} of column {} is {}", name, e * columns + c, c, v));
                v = counts[e] > 0 ? v / counts[e] : 1.0f;
            }
        }
        m.weights_.emplace(weight_name, std::move(sums));
    }
    return m;
}

const std::vector<float>* ImportanceMatrix::find(std::string_view name) const {
    auto it = weights_.find(name);
    return it == weights_.end() ? nullptr : &it->second;
}

}  // namespace quant
