#include "viewer/document.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "gguf/arch.h"
#include "gguf/names.h"
#include "gguf/render.h"

namespace viewer {

std::unique_ptr<Document> Document::open(const std::filesystem::path& path) {
    return std::make_unique<Document>(gguf::Model::open(path), path.string());
}

Document::Document(gguf::Model model, std::string path) : model_(std::move(model)), path_(std::move(path)) {
    summary_ = gguf::summarize(model_);
    facts_ = gguf::facts(model_, summary_);
    std::map<std::optional<uint32_t>, LayerBytes> layers;  // nullopt (globals) sorts first
    rows_.reserve(model_.tensors().size());
    for (uint32_t i = 0; i < model_.tensors().size(); ++i) {
        const gguf::Model::Tensor& t = model_.tensors()[i];
        TensorRow r;
        r.index = i;
        r.name = std::string(t.info->name);
        r.type = t.info->type;
        r.shape = gguf::shape_text(t.info->dims());
        r.elements = t.info->n_elements;
        r.bytes = t.info->n_bytes;
        r.offset = model_.parts()[t.part].data_section_offset() + t.info->data_offset;
        r.part = t.part;
        r.layer = gguf::layer_of(t.info->name);
        r.bits_per_weight = gguf::average_bits_per_weight(r.bytes, r.elements);
        LayerBytes& lb = layers[r.layer];
        lb.layer = r.layer;
        lb.bytes += r.bytes;
        lb.elements += r.elements;
        rows_.push_back(std::move(r));
    }
    for (auto& [layer, lb] : layers) by_layer_.push_back(lb);
    mix_ = build_mix_map(model_);
}

std::string Document::title() const { return std::filesystem::path(path_).filename().string(); }

const TensorRow* Document::find(std::string_view name) const {
    const gguf::Model::Tensor* t = model_.find_tensor(name);
    return t ? &rows_[static_cast<size_t>(t - model_.tensors().data())] : nullptr;
}

MixMap build_mix_map(const gguf::Model& model) {
    MixMap mix;
    const auto kinds = gguf::all_tensor_kinds();
    struct Cell {
        uint32_t layer;
        size_t kind;
        uint32_t tensor;
    };
    std::vector<Cell> found;
    std::vector<bool> kind_seen(kinds.size(), false);
    for (uint32_t i = 0; i < model.tensors().size(); ++i) {
        const auto name = gguf::parse_tensor_name(model.tensors()[i].info->name);
        if (!name || !name->layer || name->suffix != "weight" || name->kind->kept) {
            mix.globals.push_back(i);
            continue;
        }
        const size_t kind = static_cast<size_t>(name->kind - kinds.data());
        found.push_back({*name->layer, kind, i});
    }
    // Rows up to the highest layer named. A file that names a layer beyond its tensor count
    // (blk.4000000000.*) would ask for a grid of mostly empty rows, billions of them: such a
    // file gets no grid, its tensors listed among the others.
    uint64_t layers = 0;
    for (const Cell& c : found) layers = std::max<uint64_t>(layers, uint64_t{c.layer} + 1);
    if (layers > model.tensors().size()) {
        for (const Cell& c : found) mix.globals.push_back(c.tensor);
        std::sort(mix.globals.begin(), mix.globals.end());
        return mix;
    }
    mix.layers = static_cast<uint32_t>(layers);
    for (const Cell& c : found) kind_seen[c.kind] = true;
    std::vector<int64_t> column(kinds.size(), -1);
    for (size_t k = 0; k < kinds.size(); ++k)
        if (kind_seen[k]) {
            column[k] = static_cast<int64_t>(mix.roles.size());
            mix.roles.emplace_back(kinds[k].stem);
        }
    mix.cells.assign(size_t{mix.layers} * mix.roles.size(), -1);
    for (const Cell& c : found) mix.cells[c.layer * mix.roles.size() + static_cast<size_t>(column[c.kind])] = c.tensor;
    return mix;
}

bool contains_ignoring_case(std::string_view text, std::string_view part) {
    if (part.empty()) return true;
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return std::search(text.begin(), text.end(), part.begin(), part.end(), [&](char a, char b) { return lower(a) == lower(b); }) !=
           text.end();
}

std::vector<uint32_t> select_tensors(const std::vector<TensorRow>& rows, std::string_view filter, TensorColumn column, bool ascending) {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < rows.size(); ++i)
        if (contains_ignoring_case(rows[i].name, filter) || contains_ignoring_case(gguf::type_info(rows[i].type).name, filter))
            out.push_back(i);
    auto compare = [&](const TensorRow& a, const TensorRow& b) -> int {  // -1, 0, 1
        auto cmp = [](const auto& x, const auto& y) { return x < y ? -1 : (y < x ? 1 : 0); };
        switch (column) {
            case TensorColumn::Index: return cmp(a.index, b.index);
            case TensorColumn::Name: return cmp(a.name, b.name);
            case TensorColumn::Type: return cmp(gguf::type_info(a.type).name, gguf::type_info(b.type).name);
            case TensorColumn::Shape:  // by size, then by the text ("[64, 320]" before "[320, 64]")
                return cmp(a.elements, b.elements) != 0 ? cmp(a.elements, b.elements) : cmp(a.shape, b.shape);
            case TensorColumn::Elements: return cmp(a.elements, b.elements);
            case TensorColumn::Bytes: return cmp(a.bytes, b.bytes);
            case TensorColumn::Offset: return cmp(std::pair(a.part, a.offset), std::pair(b.part, b.offset));
        }
        return 0;
    };
    std::stable_sort(out.begin(), out.end(), [&](uint32_t x, uint32_t y) {
        const int c = compare(rows[x], rows[y]);
        if (c != 0) return ascending ? c < 0 : c > 0;
        return rows[x].index < rows[y].index;
    });
    return out;
}

std::vector<uint32_t> search_metadata(const gguf::Model& model, std::string_view query) {
    std::vector<uint32_t> out;
    const auto kvs = model.kvs();
    for (uint32_t i = 0; i < kvs.size(); ++i) {
        if (query.empty() || contains_ignoring_case(kvs[i].key, query) || contains_ignoring_case(gguf::value_text(kvs[i].value, 64), query))
            out.push_back(i);
    }
    return out;
}

std::vector<gguf::Value> array_elements(const gguf::ArrayView& array) {
    std::vector<gguf::Value> out;
    out.reserve(static_cast<size_t>(array.size()));
    for (gguf::Value v : array) out.push_back(v);
    return out;
}

std::optional<Vocabulary> vocabulary(const gguf::Model& model) {
    const gguf::KeyValue* tokens = model.find("tokenizer.ggml.tokens");
    if (!tokens || tokens->value.type() != gguf::ValueType::Array) return std::nullopt;
    const gguf::ArrayView a = tokens->value.array();
    if (a.element_type() != gguf::ValueType::String) return std::nullopt;
    Vocabulary v;
    v.tokens = array_elements(a);
    auto numbers = [&](std::string_view key) -> std::optional<gguf::ArrayView> {
        const gguf::KeyValue* kv = model.find(key);
        if (!kv || kv->value.type() != gguf::ValueType::Array) return std::nullopt;
        const gguf::ArrayView x = kv->value.array();
        if (x.size() != a.size() || x.element_type() == gguf::ValueType::String || x.element_type() == gguf::ValueType::Array)
            return std::nullopt;
        return x;
    };
    v.scores = numbers("tokenizer.ggml.scores");
    v.types = numbers("tokenizer.ggml.token_type");
    return v;
}

std::string_view token_type_name(int64_t type) {
    switch (type) {
        case 1: return "normal";
        case 2: return "unknown";
        case 3: return "control";
        case 4: return "user";
        case 5: return "unused";
        case 6: return "byte";
        default: return "undefined";
    }
}

}  // namespace viewer
