// Small text helpers shared inside libgguf.
#pragma once

#include <cctype>
#include <string_view>

namespace gguf::detail {

// ASCII case-insensitive equality ("Q4_K" and "q4_k").
inline bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

}  // namespace gguf::detail
