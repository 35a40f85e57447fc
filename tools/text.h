// Formatting for people: sizes, counts, quoted strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gguf::tools {

std::string human_bytes(uint64_t n);   // "4.03 MiB"
std::string human_count(uint64_t n);   // "1.06 M"
// s in double quotes, with \n, \t, \", \\ and other control bytes escaped; UTF-8 kept.
std::string quoted(std::string_view s);

}  // namespace gguf::tools
