#include "gguf/render.h"

#include <fmt/format.h>

namespace gguf {

namespace {

void append_text(std::string& out, const Value& v, uint64_t limit) {
    switch (v.type()) {
        case ValueType::String: out += quoted(v.str()); return;
        case ValueType::Bool: out += v.boolean() ? "true" : "false"; return;
        case ValueType::F32: out += fmt::format("{}", v.f32()); return;
        case ValueType::F64: out += fmt::format("{}", v.f64()); return;
        case ValueType::U64: out += fmt::format("{}", v.u64()); return;  // past as_int()'s int64_t range
        case ValueType::Array: {
            ArrayView a = v.array();
            out += '[';
            uint64_t i = 0;
            for (Value x : a) {
                if (i == limit) break;
                if (i++) out += ", ";
                append_text(out, x, limit);
            }
            if (a.size() > limit) out += fmt::format("{}... ({} more)", limit ? ", " : "", a.size() - limit);
            out += ']';
            return;
        }
        default: out += fmt::format("{}", v.as_int());
    }
}

}  // namespace

std::string escaped(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", static_cast<uint8_t>(c));
                else out += c;
        }
    }
    return out;
}

std::string quoted(std::string_view s) {
    std::string out = "\"";
    out += escaped(s);
    out += '"';
    return out;
}

std::string value_text(const Value& v, uint64_t max_elements) {
    std::string out;
    append_text(out, v, max_elements);
    return out;
}

std::string value_type_label(const Value& v) {
    if (v.type() != ValueType::Array) return std::string(value_type_name(v.type()));
    ArrayView a = v.array();
    return fmt::format("arr[{},{}]", value_type_name(a.element_type()), a.size());
}

std::string shape_text(std::span<const uint64_t> dims) { return fmt::format("[{}]", fmt::join(dims, ", ")); }

}  // namespace gguf

namespace gguf {

namespace {
// n divided by `base` until it is below base, with the unit it reached; units[0] is for n itself.
std::string scaled(uint64_t n, double base, std::span<const char* const> units) {
    double v = static_cast<double>(n);
    size_t u = 0;
    while (v >= base && u + 1 < units.size()) {
        v /= base;
        ++u;
    }
    return u == 0 ? fmt::format("{}{}", n, units[0]) : fmt::format("{:.2f}{}", v, units[u]);
}
}  // namespace

std::string human_bytes(uint64_t n) {
    static constexpr const char* units[] = {" B", " KiB", " MiB", " GiB", " TiB", " PiB"};
    return scaled(n, 1024, units);
}

std::string human_count(uint64_t n) {
    static constexpr const char* units[] = {"", " K", " M", " B", " T"};
    return scaled(n, 1000, units);
}

}  // namespace gguf
