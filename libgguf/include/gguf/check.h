// Checking a model's metadata and names beyond what opening it requires: what llama.cpp
// and other readers would trip over later.
#pragma once

#include <string>
#include <vector>

#include "gguf/model.h"

namespace gguf {

struct Finding {
    enum class Severity { Error, Warning };
    Severity severity;
    std::string where;    // tensor name, key, or the file
    std::string message;
    bool wrong_type = false;  // a known key with another value type than llama.cpp reads
};

// Names and keys (empty, longer than llama.cpp's 63 bytes, not UTF-8), known keys with the
// wrong value type, the tokenizer's arrays and special token ids, and an architecture's
// shape keys against the tensors (block_count against blk.N, embedding_length against
// token_embd, head counts dividing).
std::vector<Finding> check_metadata(const Model& model);

// One file's data section against the layout a canonical writer produces: gaps between
// tensor regions (each reported at the tensor after it) and bytes after the last tensor's
// padded data. Readers skip both, so they are warnings. Tensors whose data does not lie in
// the file are left out (opening reports them); with any such tensor, where the file should
// end is unknown and trailing bytes are not reported.
std::vector<Finding> check_layout(const File& file);

// Whether s is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
bool valid_utf8(std::string_view s);
// Bytes of the well-formed UTF-8 sequence starting at s[i], or 0 if there is none there.
size_t utf8_sequence(std::string_view s, size_t i);

}  // namespace gguf
