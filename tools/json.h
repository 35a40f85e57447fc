// A small streaming JSON writer: keeps commas and nesting right, always emits valid UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gguf::tools {

class Json {
public:
    Json& begin_object();
    Json& end_object();
    Json& begin_array();
    Json& end_array();
    Json& key(std::string_view k);  // inside an object, before each value

    Json& value(std::string_view s);  // a string; invalid UTF-8 bytes become U+FFFD
    Json& value(const char* s) { return value(std::string_view(s)); }
    Json& value(bool b);
    Json& value(int64_t v);
    Json& value(uint64_t v);
    Json& value(uint32_t v) { return value(uint64_t{v}); }
    Json& value(double v);            // NaN and infinities become the strings "nan", "inf", "-inf"
    Json& value(float v);             // likewise, written in the shortest form that reads back as the float
    Json& null();

    template <class T> Json& field(std::string_view k, const T& v) { return key(k).value(v); }

    const std::string& str() const { return out_; }

private:
    void separate();
    template <class F> Json& number(F v);
    std::string out_;
    std::vector<bool> first_;  // per open container: no element written yet
    bool after_key_ = false;
};

// Appends s to out with JSON escapes (no quotes added).
void json_escape(std::string& out, std::string_view s);

}  // namespace gguf::tools
