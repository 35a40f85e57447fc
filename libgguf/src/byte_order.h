// Loading little- or big-endian numbers from unaligned bytes. Internal to libgguf.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace gguf::detail {

template <class T> T byteswap(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(&v, b, sizeof(T));
    return v;
}

// Reads a T stored at p in the given byte order (the host is little-endian or big-endian).
template <class T> T load(const uint8_t* p, bool big_endian) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    if (big_endian != (std::endian::native == std::endian::big)) v = byteswap(v);
    return v;
}

// Reads a length or count: u32 in GGUF version 1, u64 after.
inline uint64_t load_count(const uint8_t* p, bool big_endian, bool narrow) {
    return narrow ? load<uint32_t>(p, big_endian) : load<uint64_t>(p, big_endian);
}

}  // namespace gguf::detail
