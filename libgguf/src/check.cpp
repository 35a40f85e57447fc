#include "gguf/check.h"

#include "gguf/arch.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>

#include "gguf/names.h"

namespace gguf {

namespace {

constexpr size_t kMaxName = 63;  // llama.cpp's GGML_MAX_NAME is 64 with the terminator

using Severity = Finding::Severity;

struct Checker {
    const Model& m;
    std::vector<Finding> out;

    void error(std::string where, std::string message) { out.push_back({Severity::Error, std::move(where), std::move(message)}); }
    void warning(std::string where, std::string message) { out.push_back({Severity::Warning, std::move(where), std::move(message)}); }

    void names() {
        for (const Model::Tensor& t : m.tensors()) {
            const std::string_view n = t.info->name;
            const bool nameable = !n.empty() && valid_utf8(n);
            const std::string where = nameable ? std::string(n) : fmt::format("tensor #{}", &t - m.tensors().data());
            if (n.empty()) error(where, "tensor name is empty");
            if (n.size() > kMaxName) error(where, fmt::format("tensor name is {} bytes; llama.cpp allows {}", n.size(), kMaxName));
            if (!valid_utf8(n)) error(where, "tensor name is not valid UTF-8");
        }
        for (const KeyValue& kv : m.kvs()) {
            const bool nameable = !kv.key.empty() && valid_utf8(kv.key);
            const std::string where = nameable ? std::string(kv.key) : fmt::format("key at offset {}", kv.file_offset);
            if (kv.key.empty()) error(where, "key is empty");
            if (kv.key.size() > kMaxName) warning(where, fmt::format("key is {} bytes long", kv.key.size()));
            if (!valid_utf8(kv.key)) error(where, "key is not valid UTF-8");
        }
    }

    // A known key's value type: returns the value when it has the expected type.
    const Value* typed(std::string_view key, ValueType want, std::optional<ValueType> element = std::nullopt) {
        const KeyValue* kv = m.find(key);
        if (!kv) return nullptr;
        const Value& v = kv->value;
        if (v.type() != want || (element && v.array().element_type() != *element)) {
            const std::string have = v.type() == ValueType::Array ? fmt::format("arr[{}]", value_type_name(v.array().element_type()))
                                                                   : std::string(value_type_name(v.type()));
            const std::string expected = element ? fmt::format("arr[{}]", value_type_name(*element)) : std::string(value_type_name(want));
            error(std::string(key), fmt::format("has type {}, expected {}", have, expected));
            out.back().wrong_type = true;
            return nullptr;
        }
        return &v;
    }

    void tokenizer() {
        typed("tokenizer.ggml.model", ValueType::String);
        const Value* tokens = typed("tokenizer.ggml.tokens", ValueType::Array, ValueType::String);
        const Value* scores = typed("tokenizer.ggml.scores", ValueType::Array, ValueType::F32);
        const Value* types = typed("tokenizer.ggml.token_type", ValueType::Array, ValueType::I32);
        typed("tokenizer.ggml.merges", ValueType::Array, ValueType::String);
        for (const char* k : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"}) typed(k, ValueType::Bool);
        if (!tokens) return;
        const uint64_t n = tokens->array().size();
        if (scores && scores->array().size() != n)
            error("tokenizer.ggml.scores", fmt::format("has {} entries for {} tokens", scores->array().size(), n));
        if (types) {
            if (types->array().size() != n) error("tokenizer.ggml.token_type", fmt::format("has {} entries for {} tokens", types->array().size(), n));
            uint64_t i = 0;
            for (Value t : types->array()) {  // llama.cpp's token types: 0 undefined .. 6 byte
                if (t.i32() < 0 || t.i32() > 6) {
                    error("tokenizer.ggml.token_type", fmt::format("token {} has type {} (0 to 6 are defined)", i, t.i32()));
                    break;
                }
                ++i;
            }
        }
        for (const KeyValue& kv : m.kvs()) {
            if (!kv.key.starts_with("tokenizer.ggml.") || !kv.key.ends_with("_token_id")) continue;
            if (const Value* id = typed(kv.key, ValueType::U32); id && id->u32() >= n)
                error(std::string(kv.key), fmt::format("token id {} is outside the {}-token vocabulary", id->u32(), n));
        }
    }

    // u32 key of the architecture, when present with that type.
    std::optional<uint32_t> arch_u32(const std::string& arch, const char* suffix) {
        const std::string key = arch + "." + suffix;
        const Value* v = typed(key, ValueType::U32);
        return v ? std::optional<uint32_t>(v->u32()) : std::nullopt;
    }

    void architecture() {
        for (const char* k : {"general.file_type", "general.quantization_version"}) typed(k, ValueType::U32);
        typed("general.name", ValueType::String);
        const Value* a = typed("general.architecture", ValueType::String);
        if (!a) {
            // Files that are not models (general.type "imatrix", "adapter", ...) need none.
            const KeyValue* type = m.find("general.type");
            const bool model = !type || type->value.type() != ValueType::String || type->value.str() == "model";
            if (model && !m.find("general.architecture") && !m.tensors().empty()) warning(m.first().path(), "no general.architecture key");
            return;
        }
        const std::string arch(a->str());
        const auto blocks = arch_u32(arch, "block_count");
        const auto embd = arch_u32(arch, "embedding_length");
        // These may be one number or one per layer (llama.cpp reads either).
        auto per_layer = [&](const char* suffix) -> std::optional<uint32_t> {
            const KeyValue* kv = m.find(arch + "." + suffix);
            if (kv && kv->value.type() == ValueType::Array && blocks && *blocks && kv->value.array().size() != *blocks)
                error(std::string(kv->key), fmt::format("has {} elements for {} blocks; llama.cpp refuses a per-layer array of another length",
                                                        kv->value.array().size(), *blocks));
            if (!kv || kv->value.type() == ValueType::Array) return std::nullopt;
            return arch_u32(arch, suffix);
        };
        arch_u32(arch, "context_length");
        per_layer("feed_forward_length");
        const auto n_head = per_layer("attention.head_count"), n_head_kv = per_layer("attention.head_count_kv");
        if (blocks) {
            std::optional<uint32_t> highest;
            for (const Model::Tensor& t : m.tensors())
                if (const auto layer = layer_of(t.info->name); layer && (!highest || *layer > *highest)) highest = layer;
            if (highest && uint64_t{*highest} + 1 != *blocks)
                error(arch + ".block_count", fmt::format("is {}, but the tensors go up to blk.{}", *blocks, *highest));
        }
        if (embd)
            if (const Model::Tensor* e = m.find_tensor(tensor_name(TensorRole::TokenEmbd)); e && e->info->shape[0] != *embd)
                error(arch + ".embedding_length", fmt::format("is {}, but {} rows have {} values", *embd, e->info->name, e->info->shape[0]));
        // A head count of 0 is how converters mark models without attention (Mamba, RWKV), and
        // with attention.key_length given the heads need not divide the embedding (GLM-4.5).
        if (n_head && embd && *n_head && *embd % *n_head && !m.find(arch + ".attention.key_length"))
            error(arch + ".attention.head_count", fmt::format("{} does not divide embedding_length {}", *n_head, *embd));
        if (n_head && *n_head && n_head_kv && (*n_head_kv == 0 || *n_head % *n_head_kv))
            error(arch + ".attention.head_count_kv", fmt::format("{} does not divide head_count {}", *n_head_kv, *n_head));
        if (const Architecture* known = find_architecture(arch)) against_table(*known, blocks);
    }

    // What llama.cpp's loader requires of a known architecture: its keys, and (in a file
    // with tensors) the token embedding and each layer's attention and feed-forward output.
    void against_table(const Architecture& a, std::optional<uint32_t> blocks) {
        for (Hyper k : a.required_keys)
            if (!m.find(hyper_key(a.name, k)))
                error(hyper_key(a.name, k), fmt::format("is missing; llama.cpp cannot load a {} model without it", a.name));
        // A vocabulary-only file; or an architecture whose tensors the table does not list.
        if (m.tensors().empty() || !blocks || a.tensors.empty()) return;
        auto has = [&](TensorRole role, std::optional<uint32_t> layer) { return m.find_tensor(tensor_name(role, layer)) != nullptr; };
        auto need = [&](TensorRole role, std::optional<uint32_t> layer, std::string_view what) {
            if (!has(role, layer))
                error(tensor_name(role, layer), fmt::format("is missing: a {} model needs {}", a.name, what));
        };
        need(TensorRole::TokenEmbd, std::nullopt, "its token embedding");
        // block_count comes from the file: past the tensor count, every layer would be missing
        // everything, and block_count's own check already says it is wrong.
        for (uint32_t layer = 0; layer < *blocks && layer < m.tensors().size(); ++layer) {
            if (!a.latent_attention) {
                const bool separate = has(TensorRole::AttnQ, layer) && has(TensorRole::AttnK, layer) && has(TensorRole::AttnV, layer);
                if (a.fused_qkv && !separate) need(TensorRole::AttnQKV, layer, "the attention's q, k and v");
                else if (!separate)
                    for (TensorRole r : {TensorRole::AttnQ, TensorRole::AttnK, TensorRole::AttnV}) need(r, layer, "every attention projection");
            }
            need(TensorRole::AttnOutput, layer, "each layer's attention output");
            if (!has(TensorRole::FfnDown, layer) && !has(TensorRole::FfnDownExps, layer))
                error(tensor_name(TensorRole::FfnDown, layer), fmt::format("is missing (nor are there experts): a {} model needs each layer's feed-forward output", a.name));
        }
    }
};

}  // namespace

size_t utf8_sequence(std::string_view s, size_t i) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return 0;
    const auto c1 = static_cast<uint8_t>(n > 1 ? s[i + 1] : 0);
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) return 0;
    return n;
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::vector<Finding> check_layout(const File& f) {
    std::vector<Finding> out;
    std::vector<const TensorInfo*> order;
    bool all_inside = true;
    const uint64_t data_bytes = f.size() > f.data_section_offset() ? f.size() - f.data_section_offset() : 0;
    for (const TensorInfo& t : f.tensors()) {
        if (t.data_offset <= data_bytes && t.n_bytes <= data_bytes - t.data_offset) order.push_back(&t);
        else all_inside = false;
    }
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->data_offset < b->data_offset; });
    uint64_t expected = 0;  // where the next region would start in a canonical file
    for (const TensorInfo* t : order) {
        if (t->data_offset > expected)
            out.push_back({Severity::Warning, std::string(t->name),
                           fmt::format("{} unused bytes before its data (at data offset {})", t->data_offset - expected, expected)});
        expected = std::max(expected, (t->data_offset + t->n_bytes + f.alignment() - 1) / f.alignment() * f.alignment());
    }
    if (all_inside && !order.empty() && f.data_section_offset() + expected < f.size())
        out.push_back({Severity::Warning, f.path(), fmt::format("{} bytes after the last tensor's padded data", f.size() - f.data_section_offset() - expected)});
    return out;
}

std::vector<Finding> check_metadata(const Model& model) {
    Checker c{model, {}};
    c.names();
    c.tokenizer();
    c.architecture();
    return std::move(c.out);
}

}  // namespace gguf
