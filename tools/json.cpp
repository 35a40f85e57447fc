#include "json.h"

#include <fmt/format.h>

#include <cmath>

#include "gguf/check.h"

namespace gguf::tools {

void json_escape(std::string& out, std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        char c = s[i];
        size_t n = gguf::utf8_sequence(s, i);
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
