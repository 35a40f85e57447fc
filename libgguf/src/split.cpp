#include "gguf/split.h"

#include <fmt/format.h>

#include <stdexcept>

#include "gguf/writer.h"

namespace gguf {

namespace {
constexpr uint64_t kSplitPadding = 32;  // gguf-split counts each tensor padded to GGUF's default alignment
bool is_split_key(std::string_view key) { return key == "split.no" || key == "split.count" || key == "split.tensors.count"; }
}  // namespace

std::vector<uint32_t> plan_split(std::span<const uint64_t> tensor_bytes, const SplitLimits& limits) {
    if ((limits.max_bytes == 0) == (limits.max_tensors == 0))
        throw std::invalid_argument("a split needs one limit: a number of tensors or a size per part");
    std::vector<uint32_t> parts;
    if (limits.no_tensor_first_split) parts.push_back(0);
    uint64_t part_size = 0;
    for (size_t i = 0; i < tensor_bytes.size(); ++i) {
        const uint64_t padded = (tensor_bytes[i] + kSplitPadding - 1) / kSplitPadding * kSplitPadding;
        const bool open = !parts.empty() && parts.back() > 0;  // the current part has tensors
        bool start = !open;
        if (open && limits.max_tensors) start = i % limits.max_tensors == 0;
        if (open && limits.max_bytes) start = part_size + padded > limits.max_bytes;
        if (start) {
            if (parts.size() == UINT16_MAX) throw std::invalid_argument("a split set has at most 65535 parts");
            parts.push_back(0);
            part_size = 0;
        }
        ++parts.back();
        part_size += padded;
    }
    if (parts.empty()) parts.push_back(0);  // a model without tensors: one part of metadata
    return parts;
}

std::vector<uint64_t> part_bytes(std::span<const uint64_t> tensor_bytes, std::span<const uint32_t> tensors_per_part) {
    std::vector<uint64_t> out;
    size_t next = 0;
    for (uint32_t n : tensors_per_part) {
        uint64_t sum = 0;
        for (uint32_t k = 0; k < n && next < tensor_bytes.size(); ++k) sum += tensor_bytes[next++];
        out.push_back(sum);
    }
    return out;
}

std::vector<Writer> split_writers(const Model& model, std::span<const uint32_t> tensors_per_part) {
    const File& first = model.first();
    const WriteOptions options{first.version(), first.big_endian()};
    std::vector<Writer> parts;
    parts.reserve(tensors_per_part.size());
    for (size_t i = 0; i < tensors_per_part.size(); ++i) parts.emplace_back(options);
    if (parts.empty()) throw std::invalid_argument("a split set has at least one part");
    for (const KeyValue& kv : model.kvs())
        if (!is_split_key(kv.key)) parts[0].set(std::string(kv.key), kv.value);
    // Alignment: every part lays its data out at the model's. gguf-split writes at 32 whatever
    // the key says, so a model that states another alignment keeps it here, in every part
    // (the first has the key already); at 32 the parts are gguf-split's byte for byte.
    if (const KeyValue* a = model.find("general.alignment"); a && a->value.is_integer() && a->value.as_int() != 32)
        for (size_t i = 1; i < parts.size(); ++i) parts[i].set("general.alignment", a->value);
    size_t next = 0;
    const auto tensors = model.tensors();
    for (size_t p = 0; p < tensors_per_part.size(); ++p)
        for (uint32_t k = 0; k < tensors_per_part[p]; ++k, ++next) {
            if (next >= tensors.size()) throw std::invalid_argument("the split plan holds more tensors than the model");
            const Model::Tensor& t = tensors[next];
            parts[p].add_tensor(model.parts()[t.part], *t.info);
        }
    if (next != tensors.size())
        throw std::invalid_argument(fmt::format("the split plan holds {} of the model's {} tensors", next, tensors.size()));
    return parts;
}

Writer merged_writer(const Model& model) {
    if (!model.is_split())
        throw std::invalid_argument(fmt::format("{} is not part of a split set (no split.count above 0): nothing to merge", model.first().path()));
    const File& first = model.first();
    Writer w({first.version(), first.big_endian()});
    for (const KeyValue& kv : model.kvs())
        if (kv.key != "split.count") w.set(std::string(kv.key), kv.value);
    w.set("split.count", OwnedValue::u16(0));  // as gguf-split --merge leaves it: last, 0
    for (const Model::Tensor& t : model.tensors()) w.add_tensor(model.parts()[t.part], *t.info);
    return w;
}

}  // namespace gguf
