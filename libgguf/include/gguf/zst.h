// .gguf.zst: a GGUF file compressed as independent zstd frames with zstd's seekable format's
// seek table at the end (spec/gguf-zst.md). The header is a frame of its own and each tensor
// one or more frames, so a reader decompresses only what it reads; float tensors' bytes may
// be grouped by position before compressing (all low bytes, then all high bytes), which a
// small index frame records.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "gguf/lazy_bytes.h"

namespace gguf::zst {

struct CompressOptions {
    int level = 3;                          // zstd's level, 1 to 19 (negative: faster)
    int threads = 1;                        // frames compressed at once
    uint64_t frame_bytes = 16000000;        // the most original bytes one frame holds (gguf compress: 16M)
    // Group the bytes of F16, BF16 and F32 tensors by position. Such frames decode with
    // `zstd -d` too, but to the grouped bytes: only `gguf decompress` and ggufkit's reader
    // restore them. Off: `zstd -d` restores the original file exactly.
    bool group_bytes = true;
};

struct Progress {
    uint64_t done = 0, total = 0;  // bytes of the original file
};

struct Report {
    uint64_t bytes_in = 0, bytes_out = 0;
    uint64_t frames = 0;          // zstd frames holding data (the header's included)
    uint64_t grouped_frames = 0;  // of them, frames whose bytes were grouped
    uint64_t stored_frames = 0;   // of them, frames stored (compressed again at level -1, raw literals): zstd made them less than 3% smaller
};

// Compresses the GGUF file `in` into `out` (temporary file, then rename). Throws gguf::Error
// for a file that is not a readable GGUF file, std::invalid_argument for bad options.
Report compress(const std::filesystem::path& in, const std::filesystem::path& out, const CompressOptions& o,
                const std::function<void(const Progress&)>& progress = {});

// One zstd frame of the container: where it lies in the container and which bytes of the
// original file it holds.
struct Frame {
    uint64_t at = 0, compressed = 0;  // in the container
    uint64_t offset = 0, size = 0;    // in the original file
    uint32_t checksum = 0;            // the low 32 bits of XXH64 of the frame's content, as zstd computes it
    // The transform of the frame's first `grouped` bytes (spec/gguf-zst.md): 1 none, 2 and 4
    // bytes grouped by position in 2- or 4-byte elements, 0x12 and 0x14 BF16 and F32 values
    // with the exponent split into a byte of its own. The low nibble is the element width.
    uint8_t group = 1;
    uint64_t grouped = 0;
};

// A .gguf.zst opened for reading: the seek table and index read and checked at open, frames
// decompressed on demand (each checked against its checksum).
class Container {
public:
    static Container open(const std::filesystem::path& path);  // throws gguf::Error naming the file and offset
    // The same over bytes in memory, which must outlive the container (`name` for messages).
    static Container from_bytes(std::span<const uint8_t> bytes, std::string name);
    ~Container();
    Container(Container&&) noexcept;
    Container& operator=(Container&&) noexcept;

    const std::string& path() const;
    uint64_t original_size() const;
    uint64_t container_size() const;
    std::span<const Frame> frames() const;
    // The frame holding original byte `offset`.
    size_t frame_at(uint64_t offset) const;
    // Frame i's original bytes into `out` (frames()[i].size bytes). Throws gguf::Error naming
    // the frame, its place in the container and the original bytes it holds when the frame
    // is damaged (a checksum or size mismatch, a corrupt block).
    void read_frame(size_t i, std::span<uint8_t> out) const;
    // Any range of the original file.
    void read(uint64_t offset, std::span<uint8_t> out) const;

private:
    struct State;
    explicit Container(std::unique_ptr<State> s);
    Container&& index() &&;  // reads and checks the seek table and the index
    std::unique_ptr<State> s_;
};

// A container's original file in memory, decompressed frame by frame as parts of it are
// asked for: bytes() spans all of it (address space reserved, memory committed only for the
// frames decompressed), ensure() decompresses the frames holding a range, once, from any
// thread. What libgguf's File reads a .gguf.zst through.
class LazyImage final : public LazyBytes {
public:
    explicit LazyImage(Container c);
    ~LazyImage();
    LazyImage(const LazyImage&) = delete;
    LazyImage& operator=(const LazyImage&) = delete;

    const Container& container() const { return c_; }
    std::span<const uint8_t> bytes() const override { return {data_, size_}; }
    // Throws gguf::Error for a damaged frame (as Container::read_frame).
    void ensure(uint64_t offset, uint64_t n) const override;
    // The frames wholly inside the range give their memory back (the pages wholly inside
    // each); they are decompressed again when next ensured.
    void release(uint64_t offset, uint64_t n) const override;

private:
    Container c_;
    uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    struct Done;
    std::unique_ptr<Done> done_;
};

// Whether the file starts with a zstd frame (what a .gguf.zst does; a GGUF file starts "GGUF").
bool looks_compressed(const std::filesystem::path& path);
// The same for a file's first bytes.
bool looks_compressed(std::span<const uint8_t> first_bytes);

// Restores the original file (temporary file, then rename), every frame checked; `threads`
// frames decompressed at once.
Report decompress(const std::filesystem::path& in, const std::filesystem::path& out, int threads = 1,
                  const std::function<void(const Progress&)>& progress = {});

}  // namespace gguf::zst
