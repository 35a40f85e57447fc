// Formatting for people: sizes and counts (values and strings: gguf/render.h).
#pragma once

#include <cstdint>
#include <string>

namespace gguf::tools {

std::string human_bytes(uint64_t n);   // "4.03 MiB"
std::string human_count(uint64_t n);   // "1.06 M"

}  // namespace gguf::tools
