// A read-only memory mapping of a whole file (the GGUF reader's, and convert/'s for
// safetensors).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace gguf {

class Mapping {
public:
    explicit Mapping(const std::filesystem::path& path);  // throws gguf::Error
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    std::span<const uint8_t> bytes() const { return {data_, size_}; }
    // The open file behind the mapping (kept open for copy_file_range), or -1.
    int fd() const { return fd_; }

private:
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    int fd_ = -1;
};

// Raises this process's soft limit of open files to its hard limit: a Mapping keeps its file
// open, so a split set of more than ~1000 parts needs more than the usual 1024. Best effort.
void raise_open_file_limit();

}  // namespace gguf
