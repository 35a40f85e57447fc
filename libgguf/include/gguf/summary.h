// What a model file holds, in figures: what `gguf inspect` shows at the top.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/model.h"

namespace gguf {

struct TypeTotal {
    TypeId type;
    uint64_t tensors = 0;
    uint64_t elements = 0;
    uint64_t bytes = 0;
};

struct Summary {
    std::string architecture;              // general.architecture, or empty
    std::string name;                      // general.name, or empty
    std::optional<uint32_t> file_type;     // general.file_type
    std::string file_type_name;            // decoded, e.g. "MOSTLY_Q4_K_M"
    uint64_t parameters = 0;               // elements of all tensors
    uint64_t tensor_bytes = 0;             // bytes of all tensor data (padding excluded)
    double bits_per_weight = 0;            // 8 * tensor_bytes / parameters; 0 without tensors
    std::vector<TypeTotal> by_type;        // in type id order, types present only
};

// Reads only metadata and tensor infos: never tensor data.
Summary summarize(const Model& model);

// The file facts `gguf inspect` prints first and the viewer's overview shows, as label and
// text: file, size, parts (split sets only), version, alignment, key/values, tensors, data
// offset, architecture, name, file type, parameters, bits/weight ("-" where absent).
struct Fact {
    std::string label;
    std::string value;
};
std::vector<Fact> facts(const Model& model, const Summary& summary);

}  // namespace gguf
