#include "gguf/summary.h"

#include <fmt/format.h>

#include <array>

#include "gguf/file_type.h"
#include "gguf/memory.h"
#include "gguf/render.h"

namespace gguf {

namespace {
std::string string_key(const Model& m, std::string_view key) {
    const KeyValue* kv = m.find(key);
    return kv && kv->value.type() == ValueType::String ? std::string(kv->value.str()) : std::string();
}
}  // namespace

Summary summarize(const Model& model) {
    Summary s;
    s.architecture = string_key(model, "general.architecture");
    s.name = string_key(model, "general.name");
    if (const KeyValue* ft = model.find("general.file_type"); ft && ft->value.is_integer()) {
        int64_t v = ft->value.as_int();
        if (v >= 0 && v <= UINT32_MAX) {
            s.file_type = static_cast<uint32_t>(v);
            s.file_type_name = file_type_name(*s.file_type);
        }
    }
    std::array<TypeTotal, kTypeCount> totals{};
    for (const Model::Tensor& t : model.tensors()) {
        TypeTotal& tt = totals[static_cast<uint32_t>(t.info->type)];
        tt.type = t.info->type;
        tt.tensors += 1;
        tt.elements += t.info->n_elements;
        tt.bytes += t.info->n_bytes;
        s.parameters += t.info->n_elements;
        s.tensor_bytes += t.info->n_bytes;
    }
    for (const TypeTotal& tt : totals)
        if (tt.tensors) s.by_type.push_back(tt);
    s.bits_per_weight = average_bits_per_weight(s.tensor_bytes, s.parameters);
    return s;
}

namespace {

// What each 1,000 tokens of context add to the KV cache in f16 (gguf mem has the rest).
std::string kv_cache_fact(const Model& m) {
    KvPerToken k;
    try {
        k = kv_per_token(m);
    } catch (const std::exception&) {
        return "-";  // not a model whose layers the header describes
    }
    std::string out;
    if (k.full_layers)
        out = fmt::format("{} per 1,000 tokens of context (f16, {} layer{})", human_bytes(k.full_bytes_per_token * 1000), k.full_layers,
                          k.full_layers == 1 ? "" : "s");
    else
        out = "none per token";
    if (k.sliding_layers)
        out += fmt::format("; {} sliding-window layer{} stop at the window", k.sliding_layers, k.sliding_layers == 1 ? "" : "s");
    if (k.recurrent_layers)
        out += fmt::format("; {} recurrent layer{} keep a fixed state", k.recurrent_layers, k.recurrent_layers == 1 ? "" : "s");
    return out;
}

}  // namespace

std::vector<Fact> facts(const Model& m, const Summary& s) {
    const File& f = m.first();
    std::vector<Fact> out;
    auto add = [&](std::string label, std::string value) { out.push_back({std::move(label), std::move(value)}); };
    add("file", f.path());
    add("size", fmt::format("{} bytes ({})", m.total_size(), human_bytes(m.total_size())));
    if (m.parts().size() > 1) add("parts", fmt::format("{} (split set)", m.parts().size()));
    add("version", fmt::format("{}, {}", f.version(), f.big_endian() ? "big-endian" : "little-endian"));
    add("alignment", fmt::format("{}", f.alignment()));
    add("key/values", fmt::format("{}", f.kvs().size()));
    add("tensors", fmt::format("{}", m.tensors().size()));
    add("data offset", fmt::format("{}", f.data_section_offset()));
    add("architecture", s.architecture.empty() ? "-" : s.architecture);
    add("name", s.name.empty() ? "-" : s.name);
    add("file type", s.file_type ? fmt::format("{} ({})", s.file_type_name, *s.file_type) : "-");
    add("parameters", fmt::format("{} ({})", human_count(s.parameters), s.parameters));
    add("bits/weight", s.parameters ? fmt::format("{:.2f}", s.bits_per_weight) : "-");
    add("KV cache", kv_cache_fact(m));
    return out;
}

}  // namespace gguf
