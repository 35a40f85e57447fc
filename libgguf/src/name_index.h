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
    // splitmix64's finaliser: every input bit reaches the low bits the table index uses.
    h ^= tail;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

// A slot holds, in its high 32 bits, hash bits the position does not use, and in its low
// 32 bits the name's index + 1 (0 = empty): names are compared only when those bits agree,
// so a probe rarely touches the names themselves.
inline uint64_t slot_tag(uint64_t h) { return h & 0xffffffff00000000ull; }

// Builds a table for `count` names; name(i) gives the i-th. A name that repeats an earlier
// one is left out of the table (lookups find the first) after on_duplicate(i, first) is
// called, which may throw.
template <class NameOf, class OnDuplicate>
void build_index(std::vector<uint64_t>& slots, uint32_t count, NameOf name, OnDuplicate on_duplicate) {
    const size_t size = std::bit_ceil(static_cast<size_t>(count) * 2 + 2);
    slots.assign(size, 0);
    // Hash everything first, so each insert can prefetch the slot of one a few places ahead:
    // with many names the table outgrows the caches and each probe would wait on memory.
    std::vector<uint64_t> hashes(count);
    for (uint32_t i = 0; i < count; ++i) hashes[i] = hash_name(name(i));
    constexpr uint32_t kAhead = 8;
    for (uint32_t i = 0; i < count; ++i) {
        if (i + kAhead < count) __builtin_prefetch(&slots[hashes[i + kAhead] & (size - 1)]);
        const uint64_t h = hashes[i];
        for (size_t s = h & (size - 1);; s = (s + 1) & (size - 1)) {
            if (slots[s] == 0) {
                slots[s] = slot_tag(h) | (i + 1);
                break;
            }
            const uint32_t other = static_cast<uint32_t>(slots[s]) - 1;
            if (slot_tag(slots[s]) == slot_tag(h) && name(other) == name(i)) {
                on_duplicate(i, other);
                break;
            }
        }
    }
}

// The position of `key`, or -1.
template <class NameOf>
int64_t lookup(const std::vector<uint64_t>& slots, std::string_view key, NameOf name) {
    if (slots.empty()) return -1;
    const size_t mask = slots.size() - 1;
    const uint64_t h = hash_name(key);
    for (size_t s = h & mask; slots[s] != 0; s = (s + 1) & mask) {
        const uint32_t i = static_cast<uint32_t>(slots[s]) - 1;
        if (slot_tag(slots[s]) == slot_tag(h) && name(i) == key) return i;
    }
    return -1;
}

}  // namespace gguf::detail
