#include "inspect.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <filesystem>
#include <map>
#include <regex>

#include "gguf/memory.h"
#include "gguf/model.h"
#include "gguf/names.h"
#include "gguf/render.h"
#include "gguf/summary.h"
#include "json.h"
#include "options.h"
#include "text.h"

namespace gguf::tools {

namespace {

constexpr uint64_t kShownElements = 8;  // array elements shown without --full

std::regex compile(const std::string& pattern, std::string_view option) {
    try {
        return std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw CLI::ValidationError(std::string(option), fmt::format("invalid regular expression '{}': {}", pattern, e.what()));
    }
}

// ---- values as JSON -------------------------------------------------------------------

void json_value(Json& j, const Value& v, uint64_t limit) {
    switch (v.type()) {
        case ValueType::String: j.value(v.str()); return;
        case ValueType::Bool: j.value(v.boolean()); return;
        case ValueType::F32: j.value(v.f32()); return;
        case ValueType::F64: j.value(v.f64()); return;
        case ValueType::U64: j.value(v.u64()); return;
        case ValueType::Array: {
            ArrayView a = v.array();
            j.begin_object().field("element_type", value_type_name(a.element_type())).field("count", a.size());
            j.key("values").begin_array();
            uint64_t i = 0;
            for (Value x : a) {
                if (i++ == limit) break;
                json_value(j, x, limit);
            }
            j.end_array().field("truncated", a.size() > limit).end_object();
            return;
        }
        default: j.value(v.as_int());
    }
}

struct Selection {
    std::vector<const KeyValue*> kvs;
    std::vector<uint32_t> tensors;  // indices into Model::tensors()
};

Selection select(const Model& m, const InspectOptions& o) {
    Selection s;
    if (!o.no_kv) {
        std::optional<std::regex> re;
        if (o.keys) re = compile(*o.keys, "--keys");
        for (const KeyValue& kv : m.kvs())
            if (!re || std::regex_search(kv.key.begin(), kv.key.end(), *re)) s.kvs.push_back(&kv);
    }
    if (!o.no_tensors) {
        std::optional<std::regex> re;
        if (o.tensors) re = compile(*o.tensors, "--tensors");
        for (uint32_t i = 0; i < m.tensors().size(); ++i) {
            std::string_view n = m.tensors()[i].info->name;
            if (!re || std::regex_search(n.begin(), n.end(), *re)) s.tensors.push_back(i);
        }
    }
    return s;
}


uint64_t file_offset(const Model& m, const Model::Tensor& t) { return m.parts()[t.part].data_section_offset() + t.info->data_offset; }

// ---- human output ---------------------------------------------------------------------

void print_text(const Model& m, const Summary& s, const Selection& sel, const InspectOptions& o) {
    std::string out;
    auto line = [&](std::string_view label, const std::string& value) { out += fmt::format("{:<14}{}\n", label, value); };
    for (const Fact& fact : facts(m, s)) line(fact.label, fact.value);
    for (size_t i = 0; i < s.by_type.size(); ++i) {
        const TypeTotal& t = s.by_type[i];
        line(i == 0 ? "bytes by type" : "", fmt::format("{:<8} {:>6} tensors {:>14} bytes  ({})", type_info(t.type).name,
                                                        t.tensors, t.bytes, human_bytes(t.bytes)));
    }

    if (!o.no_kv) {
        out += fmt::format("\nmetadata ({} of {} keys)\n", sel.kvs.size(), m.kvs().size());
        size_t width = 0;
        for (const KeyValue* kv : sel.kvs) width = std::max(width, std::min<size_t>(kv->key.size(), 48));
        const uint64_t limit = o.full ? UINT64_MAX : kShownElements;
        for (const KeyValue* kv : sel.kvs) {
            out += fmt::format("  {:<{}}  {:<16} = {}\n", escaped(kv->key), width, value_type_label(kv->value), value_text(kv->value, limit));
        }
    }

    if (!o.no_tensors) {
        const bool split = m.parts().size() > 1;
        out += fmt::format("\ntensors ({} of {})\n", sel.tensors.size(), m.tensors().size());
        size_t width = 4;
        for (uint32_t i : sel.tensors) width = std::max(width, std::min<size_t>(m.tensors()[i].info->name.size(), 48));
        out += fmt::format("  {:>5}  {:<{}}  {:<8} {:<24} {:>14} {:>14} {:>14}{}\n", "#", "name", width, "type", "shape",
                           "elements", "bytes", "file offset", split ? "  part" : "");
        for (uint32_t i : sel.tensors) {
            const Model::Tensor& t = m.tensors()[i];
            out += fmt::format("  {:>5}  {:<{}}  {:<8} {:<24} {:>14} {:>14} {:>14}", i, escaped(t.info->name),
                               width, type_info(t.info->type).name, shape_text(t.info->dims()), t.info->n_elements,
                               t.info->n_bytes, file_offset(m, t));
            out += split ? fmt::format("  {:>4}\n", t.part + 1) : "\n";
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

// ---- JSON output ----------------------------------------------------------------------

void print_json(const Model& m, const Summary& s, const Selection& sel, const InspectOptions& o) {
    const File& f = m.first();
    Json j;
    j.begin_object();
    j.field("file", f.path()).field("size", m.total_size());
    j.field("version", f.version()).field("byte_order", f.big_endian() ? "big" : "little");
    j.field("alignment", f.alignment()).field("data_offset", f.data_section_offset());
    j.field("kv_count", uint64_t{f.kvs().size()}).field("tensor_count", uint64_t{m.tensors().size()});
    j.key("parts").begin_array();
    for (const File& p : m.parts()) {
        j.begin_object().field("path", p.path()).field("size", p.size()).field("version", p.version());
        j.field("byte_order", p.big_endian() ? "big" : "little").field("alignment", p.alignment());
        j.field("data_offset", p.data_section_offset()).field("kv_count", uint64_t{p.kvs().size()});
        j.field("tensor_count", uint64_t{p.tensors().size()});
        if (auto t = p.transfer()) j.key("transfer").begin_object().field("bytes", t->bytes).field("requests", t->requests).end_object();
        j.end_object();
    }
    j.end_array();
    auto text_or_null = [&](std::string_view k, const std::string& v) { v.empty() ? j.key(k).null() : j.field(k, v); };
    text_or_null("architecture", s.architecture);
    text_or_null("name", s.name);
    j.key("file_type");
    if (s.file_type) j.begin_object().field("id", *s.file_type).field("name", s.file_type_name).end_object();
    else j.null();
    j.field("parameters", s.parameters).field("tensor_bytes", s.tensor_bytes);
    j.key("bits_per_weight");
    s.parameters ? j.value(s.bits_per_weight) : j.null();
    j.key("kv_cache");
    try {
        const KvPerToken k = kv_per_token(m);
        j.begin_object().field("f16_bytes_per_token", k.full_bytes_per_token).field("full_layers", uint64_t{k.full_layers})
            .field("sliding_layers", uint64_t{k.sliding_layers}).field("recurrent_layers", uint64_t{k.recurrent_layers}).end_object();
    } catch (const std::exception&) {
        j.null();
    }
    j.key("bytes_by_type").begin_array();
    for (const TypeTotal& t : s.by_type)
        j.begin_object().field("type", type_info(t.type).name).field("tensors", t.tensors).field("elements", t.elements)
            .field("bytes", t.bytes).end_object();
    j.end_array();

    const uint64_t limit = o.full ? UINT64_MAX : kShownElements;
    if (!o.no_kv) {
        j.key("metadata").begin_array();
        for (const KeyValue* kv : sel.kvs) {
            j.begin_object().field("key", kv->key).field("type", value_type_name(kv->value.type())).field("offset", kv->file_offset);
            j.key("value");
            json_value(j, kv->value, limit);
            j.end_object();
        }
        j.end_array();
    }
    if (!o.no_tensors) {
        j.key("tensors").begin_array();
        for (uint32_t i : sel.tensors) {
            const Model::Tensor& t = m.tensors()[i];
            j.begin_object().field("index", i).field("name", t.info->name).field("type", type_info(t.info->type).name);
            j.key("shape").begin_array();
            for (uint64_t d : t.info->dims()) j.value(d);
            j.end_array();
            j.field("elements", t.info->n_elements).field("bytes", t.info->n_bytes);
            j.field("offset", t.info->data_offset).field("file_offset", file_offset(m, t)).field("part", t.part);
            j.end_object();
        }
        j.end_array();
    }
    j.end_object();
    std::string out = j.str() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

// ---- Markdown output ------------------------------------------------------------------

// Text for a table cell: pipes escaped, line breaks as spaces, inside backticks when asked.
std::string cell(std::string_view text, bool code = false) {
    std::string out;
    for (char c : text) {
        if (c == '|') out += "\\|";
        else if (c == '\n' || c == '\r') out += ' ';
        else out += c;
    }
    if (!code) return out;
    // Backticks inside a code span: a longer fence around it.
    const std::string fence = out.find('`') == std::string::npos ? "`" : "`` ";
    return fence + out + (fence == "`" ? "`" : " ``");
}

void print_markdown(const Model& m, const Summary& s, const Selection& sel, const InspectOptions& o) {
    std::string out = fmt::format("# {}\n\n| | |\n|---|---|\n", cell(std::filesystem::path(m.first().path()).filename().string()));
    for (const Fact& f : facts(m, s))
        if (f.label != "file") out += fmt::format("| {} | {} |\n", f.label, cell(f.value));
    out += "\n| type | tensors | bytes | bits/weight |\n|---|---:|---:|---:|\n";
    for (const TypeTotal& t : s.by_type)
        out += fmt::format("| {} | {} | {} | {:.2f} |\n", type_info(t.type).name, t.tensors, human_bytes(t.bytes),
                           average_bits_per_weight(t.bytes, t.elements));
    if (!o.no_kv) {
        out += fmt::format("\n## Metadata ({} of {} keys)\n\n| key | type | value |\n|---|---|---|\n", sel.kvs.size(), m.kvs().size());
        const uint64_t limit = o.full ? UINT64_MAX : kShownElements;
        for (const KeyValue* kv : sel.kvs)
            out += fmt::format("| {} | {} | {} |\n", cell(escaped(kv->key), true), value_type_label(kv->value), cell(value_text(kv->value, limit), true));
    }
    if (!o.no_tensors) {
        // One table per group: the tensors outside the layers, then each layer.
        out += fmt::format("\n## Tensors ({} of {})\n", sel.tensors.size(), m.tensors().size());
        std::map<std::optional<uint32_t>, std::vector<uint32_t>> groups;
        for (uint32_t i : sel.tensors) groups[layer_of(m.tensors()[i].info->name)].push_back(i);
        for (const auto& [layer, members] : groups) {
            uint64_t elements = 0;
            for (uint32_t i : members) elements += m.tensors()[i].info->n_elements;
            out += fmt::format("\n### {} ({} tensors, {} parameters)\n\n| # | name | type | shape | elements | bytes |\n|---:|---|---|---|---:|---:|\n",
                               layer ? fmt::format("blk.{}", *layer) : std::string("Global"), members.size(), human_count(elements));
            for (uint32_t i : members) {
                const TensorInfo& t = *m.tensors()[i].info;
                out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", i, cell(escaped(t.name), true), type_info(t.type).name,
                                   shape_text(t.dims()), t.n_elements, t.n_bytes);
            }
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

int inspect(const InspectOptions& o) {
    Model m = Model::open(o.path);
    Selection sel = select(m, o);
    Summary s = summarize(m);
    if (o.json) print_json(m, s, sel, o);
    else if (o.markdown) print_markdown(m, s, sel, o);
    else print_text(m, s, sel, o);
    report_transfer(m);
    return 0;
}

void add_inspect(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<InspectOptions>();
    CLI::App* c = app.add_subcommand("inspect", "Show what a GGUF file holds: summary, metadata, tensors (header only)");
    c->add_option("file", o->path, "GGUF file, or any part of a split set (NAME-00001-of-00003.gguf); a .gguf.zst or an http(s):// URL too (only the header is read)")->required();
    auto* json = c->add_flag("--json", o->json, "Print JSON (schema: spec/inspect-json.md)");
    c->add_flag("--markdown", o->markdown, "Print Markdown tables (summary, metadata, tensors by layer), for a model card")->excludes(json);
    c->add_flag("--full", o->full, "Show every element of arrays, not the first 8");
    c->add_option("--keys", o->keys, "Show only keys matching this regular expression (ECMAScript, searched)");
    c->add_option("--tensors", o->tensors, "Show only tensors whose names match this regular expression");
    c->add_flag("--no-kv", o->no_kv, "Leave out the metadata list");
    c->add_flag("--no-tensors", o->no_tensors, "Leave out the tensor table");
    add_header_option(c);
    c->callback([o, &run] { run = [o] { return inspect(*o); }; });
}

}  // namespace gguf::tools
