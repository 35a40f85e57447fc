// Text files for the tools (sizes and counts for people: gguf/render.h).
#pragma once

#include <cstdint>
#include <string>

#include "gguf/render.h"  // human_bytes, human_count: the tools use them with this header

namespace gguf::tools {

// A whole text file; throws std::runtime_error naming the file when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace gguf::tools
