// Formatting for people: sizes and counts (values and strings: gguf/render.h).
#pragma once

#include <cstdint>
#include <string>

namespace gguf::tools {

std::string human_bytes(uint64_t n);   // "4.03 MiB"
std::string human_count(uint64_t n);   // "1.06 M"

// A whole text file; throws std::runtime_error naming the file when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace gguf::tools
