#include "edit.h"

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "gguf/check.h"
#include "gguf/error.h"
#include "gguf/model.h"
#include "gguf/render.h"
#include "gguf/writer.h"
#include "options.h"
#include "quant/byteorder.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct EditArgs {
    std::string input, output;
    std::vector<std::string> set, remove, rename, rename_tensor;
    std::optional<std::string> chat_template, name, byte_order;
    bool in_place = false, dry_run = false;
};

std::pair<std::string, std::string> split_pair(const std::string& s, const std::string& option) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
        throw CLI::ValidationError(option, fmt::format("'{}' is not OLD=NEW", s));
    return {s.substr(0, eq), s.substr(eq + 1)};
}

// A number as text for a type: whole numbers in range for the integer types.
OwnedValue number_as(ValueType t, const std::string& text, const std::string& key) {
    auto bad = [&] { return CLI::ValidationError("--set", fmt::format("{}: '{}' is not a {} value", key, text, value_type_name(t))); };
    try {
        size_t used = 0;
        switch (t) {
            case ValueType::F32: {
                const float v = std::stof(text, &used);
                if (used != text.size()) throw bad();
                return OwnedValue::f32(v);
            }
            case ValueType::F64: {
                const double v = std::stod(text, &used);
                if (used != text.size()) throw bad();
                return OwnedValue::f64(v);
            }
            case ValueType::Bool:
                if (text == "true" || text == "1") return OwnedValue::boolean(true);
                if (text == "false" || text == "0") return OwnedValue::boolean(false);
                throw bad();
            default: break;
        }
        // Decimal, or hexadecimal with 0x; no spaces (std::stoll would skip them), no octal.
        if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) throw bad();
        const std::string_view digits = std::string_view(text).substr(text[0] == '-' || text[0] == '+' ? 1 : 0);
        const int base = digits.starts_with("0x") || digits.starts_with("0X") ? 16 : 10;
        const bool is_signed = t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64;
        if (is_signed) {
            const long long v = std::stoll(text, &used, base);
            if (used != text.size()) throw bad();
            const int64_t lo = t == ValueType::I8 ? INT8_MIN : t == ValueType::I16 ? INT16_MIN : t == ValueType::I32 ? INT32_MIN : INT64_MIN;
            const int64_t hi = t == ValueType::I8 ? INT8_MAX : t == ValueType::I16 ? INT16_MAX : t == ValueType::I32 ? INT32_MAX : INT64_MAX;
            if (v < lo || v > hi) throw bad();
            switch (t) {
                case ValueType::I8: return OwnedValue::i8(static_cast<int8_t>(v));
                case ValueType::I16: return OwnedValue::i16(static_cast<int16_t>(v));
                case ValueType::I32: return OwnedValue::i32(static_cast<int32_t>(v));
                default: return OwnedValue::i64(v);
            }
        }
        if (!text.empty() && text[0] == '-') throw bad();
        const unsigned long long v = std::stoull(text, &used, base);
        if (used != text.size()) throw bad();
        const uint64_t hi = t == ValueType::U8 ? UINT8_MAX : t == ValueType::U16 ? UINT16_MAX : t == ValueType::U32 ? UINT32_MAX : UINT64_MAX;
        if (v > hi) throw bad();
        switch (t) {
            case ValueType::U8: return OwnedValue::u8(static_cast<uint8_t>(v));
            case ValueType::U16: return OwnedValue::u16(static_cast<uint16_t>(v));
            case ValueType::U32: return OwnedValue::u32(static_cast<uint32_t>(v));
            case ValueType::U64: return OwnedValue::u64(v);
            default: throw bad();
        }
    } catch (const std::logic_error&) {  // stoll & co: not a number, out of range
        throw bad();
    }
}

std::optional<ValueType> scalar_type(std::string_view name) {
    static const std::map<std::string_view, ValueType> names = {
        {"u8", ValueType::U8},   {"i8", ValueType::I8},   {"u16", ValueType::U16}, {"i16", ValueType::I16}, {"u32", ValueType::U32},
        {"i32", ValueType::I32}, {"u64", ValueType::U64}, {"i64", ValueType::I64}, {"f32", ValueType::F32}, {"f64", ValueType::F64},
        {"bool", ValueType::Bool}, {"str", ValueType::String},
        // llama.cpp's --override-kv names: int as i64 (converted to a known key's own type), float as f32
        {"int", ValueType::I64}, {"float", ValueType::F32}};
    auto it = names.find(name);
    return it == names.end() ? std::nullopt : std::optional(it->second);
}

// The elements of an array value: a JSON array file (*.json), else a text file of one
// element a line.
std::vector<std::string> array_items(const std::string& path, const std::string& key) {
    const std::string text = read_text_file(path);
    std::vector<std::string> items;
    if (path.ends_with(".json")) {
        simdjson::dom::parser p;
        simdjson::dom::array a;
        if (p.parse(text).get(a) != simdjson::SUCCESS)
            throw CLI::ValidationError("--set", fmt::format("{}: {} is not a JSON array", key, path));
        for (simdjson::dom::element e : a) {
            std::string_view s;
            if (e.get(s) == simdjson::SUCCESS)
                items.emplace_back(s);
            else
                items.push_back(simdjson::to_string(e));
        }
        return items;
    }
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        items.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return items;
}

// KEY=TYPE:VALUE: TYPE a scalar type (u8..f64, bool, str; int, float), or arr[TYPE] with VALUE
// @FILE. A key the edit has so far (`current`: the file's keys after the deletes and renames)
// keeps its type: int and float take its own integer or float type, anything else must match.
std::pair<std::string, OwnedValue> parse_set(const std::string& s, const Writer& current) {
    const size_t eq = s.find('='), colon = s.find(':', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || eq == 0 || colon == std::string::npos)
        throw CLI::ValidationError("--set", fmt::format("'{}' is not KEY=TYPE:VALUE", s));
    const std::string key = s.substr(0, eq), type = s.substr(eq + 1, colon - eq - 1), value = s.substr(colon + 1);
    const OwnedValue* existing = current.find(key);
    auto is_int = [](ValueType t) {
        return t == ValueType::U8 || t == ValueType::I8 || t == ValueType::U16 || t == ValueType::I16 || t == ValueType::U32 ||
               t == ValueType::I32 || t == ValueType::U64 || t == ValueType::I64;
    };
    auto is_float = [](ValueType t) { return t == ValueType::F32 || t == ValueType::F64; };
    // The type a spelling stands for, given the type the key has now (if any).
    auto resolve = [&](std::string_view spelling, std::optional<ValueType> own) -> ValueType {
        const auto t = scalar_type(spelling);
        if (!t) throw CLI::ValidationError("--set", fmt::format("{}: '{}' is not a type (u8 ... f64, bool, str, int, float, arr[TYPE])", key, spelling));
        if (own && ((spelling == "int" && is_int(*own)) || (spelling == "float" && is_float(*own)))) return *own;
        return *t;
    };
    auto label = [](const OwnedValue& v) {
        return v.type() == ValueType::Array ? fmt::format("arr[{}]", value_type_name(v.element_type())) : std::string(value_type_name(v.type()));
    };
    if (type.starts_with("arr[") && type.ends_with("]")) {
        const bool own_array = existing && existing->type() == ValueType::Array;
        const ValueType t = resolve(std::string_view(type).substr(4, type.size() - 5), own_array ? std::optional(existing->element_type()) : std::nullopt);
        if (existing && (!own_array || existing->element_type() != t))
            throw CLI::ValidationError("--set", fmt::format("{} is {}; an array of {} would change its type (delete it first to replace it)", key,
                                                            label(*existing), value_type_name(t)));
        if (!value.starts_with("@")) throw CLI::ValidationError("--set", fmt::format("{}: an array's value is @FILE (JSON array, or one element a line)", key));
        const std::vector<std::string> items = array_items(value.substr(1), key);
        if (t == ValueType::String) return {key, OwnedValue::strings(items)};
        std::vector<OwnedValue> values;
        for (const std::string& it : items) values.push_back(number_as(t, it, key));
        return {key, OwnedValue::array(t, std::move(values))};
    }
    const ValueType t = resolve(type, existing ? std::optional(existing->type()) : std::nullopt);
    if (existing && existing->type() != t)
        throw CLI::ValidationError("--set", fmt::format("{} is {}; a {} value would change its type (delete it first to replace it)", key,
                                                        label(*existing), value_type_name(t)));
    if (t == ValueType::String) return {key, OwnedValue::string(value)};
    return {key, number_as(t, value, key)};
}

// The edited model as a writer: keys and tensors of `m` (one file) with the edits applied.
Writer edited(const File& f, const EditArgs& a) {
    std::map<std::string, std::string> tensor_names;
    for (const std::string& r : a.rename_tensor) {
        auto [from, to] = split_pair(r, "--rename-tensor");
        if (!f.find_tensor(from)) throw CLI::ValidationError("--rename-tensor", fmt::format("{} has no tensor {}", f.path(), from));
        tensor_names[from] = to;
    }
    const bool big = a.byte_order ? *a.byte_order == "big" : f.big_endian();
    const bool swap = big != f.big_endian();
    if (swap)
        for (const TensorInfo& t : f.tensors())
            if (!quant::can_swap_byte_order(t.type))
                throw std::runtime_error(fmt::format("{}: tensor {} is {}, whose block fields are not known here: its byte order cannot be changed",
                                                     f.path(), t.name, type_info(t.type).name));
    Writer w({f.version(), big});
    for (const KeyValue& kv : f.kvs()) w.set(std::string(kv.key), kv.value);
    for (const std::string& k : a.remove) {
        if (!f.find(k)) throw CLI::ValidationError("--delete", fmt::format("{} has no key {}", f.path(), k));
        w.remove(k);
    }
    for (const std::string& r : a.rename) {
        auto [from, to] = split_pair(r, "--rename");
        const OwnedValue* kv = w.find(from);
        if (!kv) throw CLI::ValidationError("--rename", fmt::format("{} has no key {} (after the deletes)", f.path(), from));
        if (w.find(to)) throw CLI::ValidationError("--rename", fmt::format("{} has a key {} already", f.path(), to));
        const OwnedValue moved = *kv;
        w.remove(from);
        w.set(to, moved);
    }
    for (const std::string& s : a.set) {
        auto [key, value] = parse_set(s, w);
        w.set(key, std::move(value));
    }
    if (a.chat_template) w.set("tokenizer.chat_template", OwnedValue::string(read_text_file(*a.chat_template)));
    if (a.name) w.set("general.name", OwnedValue::string(*a.name));
    for (const TensorInfo& t : f.tensors()) {
        auto it = tensor_names.find(std::string(t.name));
        if (it == tensor_names.end() && !swap) {
            w.add_tensor(f, t);
            continue;
        }
        const std::string name = it == tensor_names.end() ? std::string(t.name) : it->second;
        w.add_tensor(name, t.type, {t.dims().begin(), t.dims().end()}, [&f, &t, swap](ByteSink& sink) {
            const std::span<const uint8_t> data = f.tensor_data(t);
            if (!swap) return sink.write(data);
            // A few MiB at a time, whole blocks: swapped in a buffer, then written.
            const size_t block = std::max<size_t>(1, type_info(t.type).type_size);
            const size_t step = std::max<size_t>(1, (size_t{4} << 20) / block) * block;
            std::vector<uint8_t> buffer;
            for (size_t at = 0; at < data.size(); at += step) {
                const auto piece = data.subspan(at, std::min(step, data.size() - at));
                buffer.assign(piece.begin(), piece.end());
                quant::swap_byte_order(t.type, buffer);
                sink.write(buffer);
            }
        });
    }
    return w;
}

// Refuses a header `gguf check` would reject: the findings of its metadata check, errors only.
void require_clean(const std::vector<uint8_t>& bytes, const std::string& path) {
    FaultLog faults;  // the header alone: the faults of the absent tensor data are expected
    std::vector<File> parts;
    parts.push_back(File::parse(bytes, path, faults));
    const Model m = Model::from_parts(std::move(parts));
    std::string problems;
    size_t errors = 0;
    constexpr size_t kShown = 10;
    for (const Finding& f : check_metadata(m))
        if (f.severity == Finding::Severity::Error && ++errors <= kShown) problems += fmt::format("\n  {}: {}", f.where, f.message);
    if (errors > kShown) problems += fmt::format("\n  ... and {} more", errors - kShown);
    if (!problems.empty()) throw std::runtime_error(fmt::format("{}: the edit would make a file gguf check rejects; nothing written:{}", path, problems));
}

int run_edit(const EditArgs& a) {
    if (a.byte_order && a.in_place) throw CLI::ValidationError("--byte-order", "changes every tensor: write a new file (gguf edit IN OUT --byte-order ...)");
    if (a.in_place == !a.output.empty())
        throw CLI::ValidationError("output", a.in_place ? "--in-place rewrites the input: give no OUT" : "give OUT, or --in-place to rewrite the input's header");
    const Model m = Model::open(a.input);
    if (m.parts().size() > 1) throw std::runtime_error(fmt::format("{} is part of a split set: merge it first (gguf merge), or edit a single file", a.input));
    const File& f = m.first();
    if (a.in_place && f.transfer())
        throw std::runtime_error(fmt::format("{} is read over HTTP: it cannot be rewritten in place; write a new file (gguf edit URL OUT ...)", a.input));
    if (a.in_place && f.compressed())
        throw std::runtime_error(fmt::format("{} is a .gguf.zst: its header is compressed, so it cannot be rewritten in place; "
                                             "write a new file (gguf edit IN OUT ...)", a.input));
    const Writer w = edited(f, a);
    const std::vector<uint8_t> header = w.header();
    require_clean(header, a.in_place ? a.input : a.output);

    if (!a.in_place) {
        refuse_overwrite(a.output, a.input);
        std::printf("%s -> %s: %zu keys, %zu tensors\n", a.input.c_str(), a.output.c_str(), f.kvs().size(), f.tensors().size());
        if (!a.dry_run) w.write(a.output);
        return 0;
    }
    // In place: the data section must start where it does now, so the new header, padded to
    // the alignment, must end exactly there (tensor offsets kept as they are).
    if (w.alignment() != f.alignment()) throw std::runtime_error(fmt::format("{}: --in-place cannot change general.alignment", a.input));
    std::vector<uint64_t> offsets;
    for (const TensorInfo& t : f.tensors()) offsets.push_back(t.data_offset);
    const std::vector<uint8_t> in_place = w.header(offsets);
    const uint64_t start = f.data_section_offset(), room_from = start >= f.alignment() ? start - f.alignment() + 1 : 0;
    if (in_place.size() > start)
        throw std::runtime_error(fmt::format("{}: the new header is {} bytes; {} fit before the tensor data: {} bytes missing. Write a new file (gguf edit IN OUT)",
                                             a.input, in_place.size(), start, in_place.size() - start));
    if (in_place.size() < room_from)
        throw std::runtime_error(fmt::format("{}: the new header is {} bytes, {} shorter than the smallest that keeps the tensor data where it is ({}). Write a new file (gguf edit IN OUT)",
                                             a.input, in_place.size(), room_from - in_place.size(), room_from));
    std::printf("%s: header rewritten in place (%zu bytes of %llu)\n", a.input.c_str(), in_place.size(), static_cast<unsigned long long>(start));
    if (a.dry_run) return 0;
    std::vector<uint8_t> block = in_place;
    block.resize(start, 0);  // the padding up to the data, zeroed
    const int fd = ::open(a.input.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Error(a.input, std::nullopt, fmt::format("cannot open for writing: {}", std::strerror(errno)));
    size_t done = 0;
    while (done < block.size()) {
        const ssize_t n = ::pwrite(fd, block.data() + done, block.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            throw Error(a.input, std::nullopt, fmt::format("writing the header failed: {}", std::strerror(e)));
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) throw Error(a.input, std::nullopt, fmt::format("cannot finish writing: {}", std::strerror(errno)));
    return 0;
}

}  // namespace

void add_edit(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<EditArgs>();
    CLI::App* c = app.add_subcommand("edit", "Change a model's metadata and tensor names: into a new file, or the header in place");
    c->add_option("input", a->input, "The model (one file)")->required();
    c->add_option("output", a->output, "The edited copy (tensor data copied file to file); omit with --in-place");
    c->add_option("--set", a->set,
                  "KEY=TYPE:VALUE: TYPE u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, str (int and float take an existing key's "
                  "own type), or arr[TYPE] with VALUE @FILE (a .json array, else one element a line); an existing key keeps its type")
        ->type_name("KEY=TYPE:VALUE");
    c->add_option("--delete", a->remove, "Remove KEY")->type_name("KEY");
    c->add_option("--rename", a->rename, "Rename a key: OLD=NEW")->type_name("OLD=NEW");
    c->add_option("--chat-template", a->chat_template, "Set tokenizer.chat_template to FILE's text")->type_name("FILE");
    c->add_option("--name", a->name, "Set general.name")->type_name("NAME");
    c->add_option("--rename-tensor", a->rename_tensor, "Rename a tensor: OLD=NEW")->type_name("OLD=NEW");
    c->add_option("--byte-order", a->byte_order,
                  "Write the file in this byte order (header and every tensor's fields), as gguf-py's gguf_convert_endian does; "
                  "the i-quants are refused (their block fields are not known here)")
        ->check(CLI::IsMember({"little", "big"}));
    c->add_flag("--in-place", a->in_place,
                "Rewrite the input's header where it is, when the new header ends within the padding before the tensor data (as "
                "gguf-py's gguf_set_metadata does for same-size values); otherwise refused, saying how many bytes are missing");
    c->add_flag("--dry-run", a->dry_run, "Check the edits; write nothing");
    add_header_option(c);  // the input may be a URL (then OUT is a new local file)
    c->footer("Edits apply in this order: --delete, --rename, --set, --chat-template, --name, --rename-tensor, --byte-order. An edit that would make a file "
              "gguf check rejects (a known key of the wrong type, a bad name...) is refused before anything is written.");
    c->callback([a, &run] { run = [a] { return run_edit(*a); }; });
}

}  // namespace gguf::tools
