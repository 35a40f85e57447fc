// Writing a GGUF file in the canonical layout: header, key/values, tensor infos, padding
// to the alignment, then each tensor's data in order, each padded to the alignment with
// zero bytes. This is the layout ggml's own writer produces, so a file read and written
// again comes out byte-identical.
//
// write() streams into a temporary file beside the target and renames it into place only
// when everything is written; on any failure the temporary file is removed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gguf/file.h"
#include "gguf/types.h"
#include "gguf/value.h"

namespace gguf {

struct WriteOptions {
    uint32_t version = 3;     // 1, 2 or 3 (version 1 writes 32-bit lengths and counts)
    bool big_endian = false;  // numbers of the header in big-endian order (tensor bytes are copied as given)
    // Write past the page cache (O_DIRECT) where the file system allows it, else as usual; the
    // same bytes either way. For outputs of new bytes (requant): the kernel then neither copies
    // them into the cache nor writes them back at the closing fsync. Tensors copied from a file
    // are then written from its mapping instead of by copy_file_range.
    bool direct_io = false;
};

// Where a tensor's bytes go; a source calls write() any number of times.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(std::span<const uint8_t> bytes) = 0;
    // Copies up to n bytes of file `fd` from `offset` into the sink's file in the kernel
    // (copy_file_range), where the sink is a file and the kernel can; returns the bytes
    // copied, from 0 (nothing: write them instead) to n.
    virtual uint64_t copy_from(int fd, uint64_t offset, uint64_t n) {
        (void)fd, (void)offset, (void)n;
        return 0;
    }
};

// Produces a tensor's bytes when the writer reaches it; must write exactly its byte size.
using TensorSource = std::function<void(ByteSink&)>;

// Streams what `produce` writes into a temporary file beside `path`, then renames it into
// place; on any failure the temporary file is removed and nothing appears at `path`. With
// `direct`, written with O_DIRECT where the file system allows (WriteOptions::direct_io).
void write_file_atomically(const std::filesystem::path& path, const std::function<void(ByteSink&)>& produce, bool direct = false);

class Writer {
public:
    explicit Writer(WriteOptions options = {});

    // Everything `f` holds (its version and byte order too), tensor data read from its mapping.
    static Writer copy_of(const File& f);
    static Writer copy_of(File&&) = delete;  // the writer reads the file when it writes: keep it open

    // Sets a key: replaces the value of an existing key in place, or appends.
    void set(std::string key, OwnedValue value);
    void set(std::string key, const Value& value) { set(std::move(key), OwnedValue::from(value)); }
    void remove(std::string_view key);
    // The value set for `key` so far, or nullptr.
    const OwnedValue* find(std::string_view key) const;

    // Appends a tensor; shape lists ne[0] (the row length) first. Throws std::invalid_argument
    // for a retired type, a row length not a multiple of the block size, or a repeated name.
    void add_tensor(std::string name, TypeId type, std::vector<uint64_t> shape, TensorSource source);
    // The bytes must stay valid until write() returns.
    void add_tensor(std::string name, TypeId type, std::vector<uint64_t> shape, std::span<const uint8_t> data);
    // Tensor `t` of `f` as it is: name, type, shape and bytes. Written to a file, the bytes are
    // copied file to file by the kernel where it can (copy_file_range: no pass through this
    // process's memory), else from f's mapping. `f` must stay open until write() returns.
    void add_tensor(const File& f, const TensorInfo& t);
    void add_tensor(File&&, const TensorInfo&) = delete;
    // A temporary buffer would be gone by then: refused at compile time.
    void add_tensor(std::string name, TypeId type, std::vector<uint64_t> shape, std::vector<uint8_t>&& data) = delete;

    uint32_t alignment() const;
    size_t tensor_count() const { return tensors_.size(); }

    // The header as write() lays it out (magic to the last tensor info, before the padding).
    // With `offsets` (one per tensor), the tensor infos carry those data offsets instead of
    // the packed ones: a header rewritten in place over data laid out otherwise.
    std::vector<uint8_t> header(std::span<const uint64_t> offsets = {}) const;

    // Writes the file: temporary file in the target's folder, then rename.
    void write(const std::filesystem::path& path) const;
    // Writes into memory (tests, fuzzing seeds).
    std::vector<uint8_t> write_to_memory() const;

private:
    struct PendingTensor {
        std::string name;
        TypeId type;
        std::vector<uint64_t> shape;
        uint64_t n_bytes;
        TensorSource source;
    };
    void emit(ByteSink& out, const std::string& target) const;

    WriteOptions options_;
    std::vector<std::pair<std::string, OwnedValue>> kvs_;
    std::unordered_map<std::string, size_t> kv_position_;  // key -> index into kvs_
    std::vector<PendingTensor> tensors_;
    std::unordered_set<std::string> tensor_names_;
};

// Writes a split set as llama.cpp's gguf-split lays one out: parts[i] becomes
// PREFIX-0000(i+1)-of-0000N.gguf (PREFIX is `output` without ".gguf"), each with split.no,
// split.count and split.tensors.count set (the model's keys belong in parts[0]). Each part
// is complete before it appears (Writer::write); if any part fails, the parts already
// written are removed: all parts or none. Refuses to replace any of `inputs`. Returns the
// paths written, first to last.
std::vector<std::filesystem::path> write_split_set(std::span<Writer> parts, const std::filesystem::path& output,
                                                   std::span<const std::filesystem::path> inputs = {});

namespace testing {
// Direct (O_DIRECT) writes this process's writers have made so far.
uint64_t direct_writes();
// While on, every direct write fails as on a file system that refuses its blocks (EINVAL), so
// that the fallback to a plain write runs.
void fail_direct_writes(bool on);
}  // namespace testing

}  // namespace gguf
