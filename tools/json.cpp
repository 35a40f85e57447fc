#include "json.h"

#include <fmt/format.h>

#include <cmath>

namespace gguf::tools {

namespace {
// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
size_t utf8_sequence(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    uint8_t c = b(i);
    if (c < 0x80) return 1;
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((b(i + k) & 0xc0) != 0x80) return 0;
    if (n == 3 && ((c == 0xe0 && b(i + 1) < 0xa0) || (c == 0xed && b(i + 1) >= 0xa0))) return 0;  // overlong, surrogate
    if (n == 4 && ((c == 0xf0 && b(i + 1) < 0x90) || (c == 0xf4 && b(i + 1) >= 0x90))) return 0;  // overlong, > U+10FFFF
    return n;
}
}  // namespace

void json_escape(std::string& out, std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        char c = s[i];
        size_t n = utf8_sequence(s, i);
        if (n == 0) {
            out += "\xef\xbf\xbd";  // U+FFFD for a byte that is not UTF-8
            ++i;
            continue;
        }
        if (n > 1) {
            out.append(s.substr(i, n));
            i += n;
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<uint8_t>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<int>(c));
                else out += c;
        }
        ++i;
    }
}

void Json::separate() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (!first_.empty()) {
        if (!first_.back()) out_ += ',';
        first_.back() = false;
    }
}

Json& Json::begin_object() { separate(); out_ += '{'; first_.push_back(true); return *this; }
Json& Json::end_object() { out_ += '}'; first_.pop_back(); return *this; }
Json& Json::begin_array() { separate(); out_ += '['; first_.push_back(true); return *this; }
Json& Json::end_array() { out_ += ']'; first_.pop_back(); return *this; }

Json& Json::key(std::string_view k) {
    separate();
    out_ += '"';
    json_escape(out_, k);
    out_ += "\":";
    after_key_ = true;
    return *this;
}

Json& Json::value(std::string_view s) {
    separate();
    out_ += '"';
    json_escape(out_, s);
    out_ += '"';
    return *this;
}

Json& Json::value(bool b) { separate(); out_ += b ? "true" : "false"; return *this; }
Json& Json::value(int64_t v) { separate(); fmt::format_to(std::back_inserter(out_), "{}", v); return *this; }
Json& Json::value(uint64_t v) { separate(); fmt::format_to(std::back_inserter(out_), "{}", v); return *this; }
Json& Json::null() { separate(); out_ += "null"; return *this; }

template <class F> Json& Json::number(F v) {
    if (std::isnan(v)) return value("nan");
    if (std::isinf(v)) return value(v > 0 ? "inf" : "-inf");
    separate();
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
}
Json& Json::value(double v) { return number(v); }
Json& Json::value(float v) { return number(v); }

}  // namespace gguf::tools
