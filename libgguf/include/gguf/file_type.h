// general.file_type: llama.cpp's id for the mix of tensor types a model file holds.
#pragma once

#include <cstdint>
#include <string>

namespace gguf {

inline constexpr uint32_t kFileTypeGuessed = 1024;  // flag llama.cpp sets when it guessed the type

// "MOSTLY_Q4_K_M" for 15, "ALL_F32" for 0; retired ids read "MOSTLY_Q4_2 (retired)"; a
// guessed id gets " (guessed)"; an id nobody defined reads "unknown (N)".
std::string file_type_name(uint32_t id);

}  // namespace gguf
