// A file over HTTP as LazyBytes: what File::open reads a URL through. Internal to libgguf.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "gguf/lazy_bytes.h"

namespace gguf::http {

class Connection;

class RemoteFile final : public LazyBytes {
public:
    // Fetches the first `first_read` bytes (fewer when the file is smaller), which tells the
    // file's size. Throws gguf::Error naming the URL: unreachable, not found, access denied,
    // ranges ignored, an empty file.
    static std::unique_ptr<RemoteFile> open(const std::string& url, std::vector<std::string> headers, uint64_t first_read);
    ~RemoteFile() override;

    std::span<const uint8_t> bytes() const override { return {data_, size_}; }
    void ensure(uint64_t offset, uint64_t n) const override;
    // The pages wholly inside the range give their memory back and are fetched again when
    // next ensured.
    void release(uint64_t offset, uint64_t n) const override;
    std::optional<Transfer> transfer() const override;

    // The file's first bytes held since open: [0, prefix()).
    uint64_t prefix() const { return prefix_; }
    // Fetches up to `end` (at most the file's size).
    void extend_prefix(uint64_t end);

private:
    RemoteFile(std::string url, std::vector<std::string> headers);
    void fetch(uint64_t start, uint64_t end) const;  // lock held

    std::string url_;
    std::unique_ptr<Connection> connection_;
    uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    uint64_t prefix_ = 0;
    mutable std::mutex lock_;
    mutable std::map<uint64_t, uint64_t> held_;  // start -> end of the ranges fetched, apart and not touching
};

}  // namespace gguf::http
