// An open-addressing hash index from names to positions. Internal to libgguf.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace gguf::detail {

inline uint64_t hash_name(std::string_view s) {
    // Eight bytes at a time, multiply-xorshift mixing; names are short and trusted for nothing.
    uint64_t h = 0x9e3779b97f4a7c15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t tail = 0;
    if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
    h = (h ^ tail) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

// Builds a table for `count` names; name(i) gives the i-th. Slots hold index + 1 (0 = empty).
// Returns the index of the first name that repeats an earlier one, or -1.
template <class NameOf>
int64_t build_index(std::vector<uint32_t>& slots, uint32_t count, NameOf name) {
    size_t size = std::bit_ceil(static_cast<size_t>(count) * 2 + 2);
    slots.assign(size, 0);
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view n = name(i);
        for (size_t s = hash_name(n) & (size - 1);; s = (s + 1) & (size - 1)) {
            if (slots[s] == 0) { slots[s] = i + 1; break; }
            if (name(slots[s] - 1) == n) return i;
        }
    }
    return -1;
}

// The position of `key`, or -1.
template <class NameOf>
int64_t lookup(const std::vector<uint32_t>& slots, std::string_view key, NameOf name) {
    if (slots.empty()) return -1;
    size_t mask = slots.size() - 1;
    for (size_t s = hash_name(key) & mask; slots[s] != 0; s = (s + 1) & mask)
        if (name(slots[s] - 1) == key) return slots[s] - 1;
    return -1;
}

}  // namespace gguf::detail
