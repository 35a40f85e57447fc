// Bytes a File reads through something other than a plain mapping of a local file: a
// .gguf.zst decompressed frame by frame, a URL fetched by range. bytes() spans the whole
// original file (address space reserved, memory committed only where written); a range of
// it holds the file's bytes once ensure() has returned for it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "gguf/http.h"

namespace gguf {

class LazyBytes {
public:
    virtual ~LazyBytes() = default;
    virtual std::span<const uint8_t> bytes() const = 0;
    // Makes [offset, offset + n) valid, once, from any thread; throws gguf::Error when it
    // cannot (a damaged frame, a failed transfer).
    virtual void ensure(uint64_t offset, uint64_t n) const = 0;
    // Done with [offset, offset + n): what was made valid for it may be dropped (its memory
    // returned), to be made valid again by a later ensure(). The caller guarantees that no
    // thread reads those bytes meanwhile. By default nothing is dropped.
    virtual void release(uint64_t /*offset*/, uint64_t /*n*/) const {}
    // For bytes fetched over HTTP, the traffic so far.
    virtual std::optional<http::Transfer> transfer() const { return std::nullopt; }
};

}  // namespace gguf
