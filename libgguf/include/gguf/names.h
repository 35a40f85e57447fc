// What llama.cpp's tensor names say about a tensor, for the rules that key on them (the
// metadata check, the quantization mixes).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gguf {

// The layer of a per-layer tensor, "blk.N.<rest>": N in decimal digits only (no sign, no
// spaces; leading zeros allowed), at most UINT32_MAX. std::nullopt for any other name,
// "blk.N" without the dot after N included.
std::optional<uint32_t> layer_of(std::string_view tensor_name);

// A table of embeddings looked up by token id (token_embd.weight, and the per-layer one
// Gemma 3n has): its rows are read one at a time, never multiplied by activations, so
// importance matrices say nothing about its columns and the mixes give it its own type.
bool is_token_embedding(std::string_view tensor_name);

// ASCII case-insensitive equality, for names users type ("q4_k_m" for "Q4_K_M").
bool equal_ignoring_case(std::string_view a, std::string_view b);

}  // namespace gguf
