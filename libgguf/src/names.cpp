#include "gguf/names.h"

#include <algorithm>
#include <cctype>

namespace gguf {

std::optional<uint32_t> layer_of(std::string_view name) {
    constexpr std::string_view kPrefix = "blk.";
    if (!name.starts_with(kPrefix)) return std::nullopt;
    uint64_t layer = 0;
    size_t i = kPrefix.size();
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
        layer = layer * 10 + static_cast<uint64_t>(name[i] - '0');
        if (layer > UINT32_MAX) return std::nullopt;
    }
    if (i == kPrefix.size() || i == name.size() || name[i] != '.') return std::nullopt;
    return static_cast<uint32_t>(layer);
}

bool is_token_embedding(std::string_view name) { return name == "token_embd.weight" || name == "per_layer_token_embd.weight"; }

bool equal_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace gguf
