// Metadata values as text for people, the way `gguf inspect` shows them: strings in double
// quotes with control bytes escaped (UTF-8 kept as it is), numbers in their shortest exact
// form, arrays in brackets and, past a limit, shortened with a count of what was left out.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include "gguf/value.h"

namespace gguf {

// s with \n, \t, \r, \" and \\ escaped and other control bytes (below 0x20, and 0x7f) as
// \xNN; everything else, UTF-8 included, unchanged. No quotes added.
std::string escaped(std::string_view s);
// escaped(s) in double quotes.
std::string quoted(std::string_view s);

// The value as text: a string quoted, a bool true/false, numbers in decimal (floats in the
// shortest form that reads back as the same value; nan, inf, -inf), an array as
// "[a, b, c]". Arrays, nested ones too, show at most `max_elements` elements each and
// count the rest: "[7, 8, ... (1 more)]".
std::string value_text(const Value& v, uint64_t max_elements = std::numeric_limits<uint64_t>::max());

// A tensor's shape as "[4096, 32000]", ne[0] (the row length) first.
std::string shape_text(std::span<const uint64_t> dims);

// Sizes and counts for people: "4.03 MiB" (powers of 1024), "1.06 M" (powers of 1000);
// below the first step, the number itself ("512 B", "999").
std::string human_bytes(uint64_t n);
std::string human_count(uint64_t n);

// The value's type as a label: "u32", "str", ..., and for an array its element type and
// count, "arr[i32,3]".
std::string value_type_label(const Value& v);

}  // namespace gguf
