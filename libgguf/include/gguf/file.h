// Reading a GGUF file: memory-mapped, parsed once, zero-copy.
//
// File::open maps the file read-only and parses the header, every key/value and every
// tensor info, checking each count, length and offset against the bytes that remain
// before it is used. Keys, strings and arrays are views into the mapping; tensor data is
// never touched. Everything a File hands out lives as long as the File.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/error.h"
#include "gguf/http.h"
#include "gguf/lazy_bytes.h"
#include "gguf/types.h"
#include "gguf/value.h"

namespace gguf {

inline constexpr uint32_t kMaxDims = 4;           // ggml's GGML_MAX_DIMS
inline constexpr uint32_t kDefaultAlignment = 32; // when general.alignment is absent
inline constexpr uint32_t kMaxArrayDepth = 16;    // arrays nested deeper are rejected

struct KeyValue {
    std::string_view key;
    Value value;
    uint64_t file_offset = 0;  // where the key's length field is in the file
};

struct TensorInfo {
    std::string_view name;
    uint32_t n_dims = 0;
    std::array<uint64_t, kMaxDims> shape{1, 1, 1, 1};  // ne[0] is the row length; unused dims are 1
    TypeId type = TypeId::F32;
    uint64_t data_offset = 0;  // where its bytes start, counted from the start of the data section
    uint64_t n_elements = 0;
    uint64_t n_bytes = 0;
    uint64_t file_offset = 0;  // where this tensor info (its name's length field) is in the file
    // Always true from a strict open. A lenient open clears it for a tensor whose data does
    // not lie inside the file or whose row is not a whole number of blocks; File::tensor_data
    // gives such a tensor no bytes.
    bool readable = true;

    std::span<const uint64_t> dims() const { return {shape.data(), n_dims}; }
};

// A structural fault that leaves the rest of the file readable: a duplicate key or tensor
// name, a bad general.alignment, a row that is not a whole number of blocks, tensor data
// that is misaligned, overlaps another tensor's or lies outside the file, and (for a
// Model) a split set that is incomplete or inconsistent. A strict open throws the first as
// an Error; a lenient open (the overloads taking a FaultLog) records each and goes on.
// Faults that leave nothing to read further (a bad header, a truncated key or tensor info,
// an unknown value or tensor type) throw in both modes.
struct Fault {
    std::string file;
    std::optional<uint64_t> file_offset;  // of the key, tensor info or value at fault
    std::string subject;             // the key or tensor name; empty for the file itself
    std::string message;             // what is wrong, not repeating the subject
};

// The faults a lenient open records: the first kKeep in full and the count of all, so a
// file with a million duplicate keys costs a bounded amount of memory to report.
class FaultLog {
public:
    static constexpr size_t kKeep = 1000;
    void add(Fault f) {
        ++total_;
        if (kept_.size() < kKeep) kept_.push_back(std::move(f));
    }
    // Another log's faults, after this one's.
    void append(const FaultLog& other) {
        for (const Fault& f : other.kept_) add(f);
        total_ += other.total_ - other.kept_.size();
    }
    std::span<const Fault> kept() const { return kept_; }
    uint64_t total() const { return total_; }
    bool empty() const { return total_ == 0; }

private:
    std::vector<Fault> kept_;
    uint64_t total_ = 0;
};

class Mapping;

class File {
public:
    // Maps and parses `path`; throws gguf::Error naming the file and offset on bad input.
    // Takes a .gguf.zst (gguf/zst.h) and an http(s):// URL (gguf/http.h) too.
    static File open(const std::filesystem::path& path);
    // Parses bytes the caller keeps alive (tests, fuzzing); `name` appears in errors.
    static File parse(std::span<const uint8_t> bytes, std::string name);
    // Lenient: structural faults are appended to `faults` instead of thrown (see Fault).
    static File open(const std::filesystem::path& path, FaultLog& faults);
    static File parse(std::span<const uint8_t> bytes, std::string name, FaultLog& faults);

    File(File&&) noexcept;
    File& operator=(File&&) noexcept;
    ~File();

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    bool big_endian() const { return encoding_.big_endian; }
    Encoding encoding() const { return encoding_; }
    uint64_t size() const { return bytes_.size(); }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_section_offset() const { return data_section_offset_; }  // where the tensor data section starts in the file
    std::span<const uint8_t> bytes() const { return bytes_; }
    // The open file the bytes are mapped from (-1 for a File parsed from memory): its offsets
    // are those of bytes(). For copying tensor data file to file without reading it in.
    int descriptor() const;
    // Tells the kernel this process is done with the pages wholly inside `bytes` (a part of
    // bytes(), e.g. tensor data already read): they leave the process's resident set while
    // the page cache keeps them, so streaming through a model keeps memory flat whatever its
    // size. Advice only: a later read maps them in again. A .gguf.zst drops the frames wholly
    // inside `bytes` (decompressed again when next read; no thread may be reading them).
    // Does nothing for a File parsed from memory (whose pages are the caller's), a URL, or
    // bytes outside this file.
    void release_pages(std::span<const uint8_t> bytes) const;
    // The other way: asks the kernel to map the pages of `bytes` (a part of bytes()) into the
    // process now (MADV_POPULATE_READ; MADV_WILLNEED, a read-ahead, where the kernel lacks
    // it), so that a pass over every tensor then takes no page faults: llama.cpp's loader
    // does the same (MAP_POPULATE). Advice only, and it reads the bytes in from disk where
    // the page cache lacks them. Does nothing for a .gguf.zst, a URL or a File parsed from
    // memory.
    void map_in(std::span<const uint8_t> bytes) const;

    std::span<const KeyValue> kvs() const { return kvs_; }
    const KeyValue* find(std::string_view key) const;

    std::span<const TensorInfo> tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    std::span<const uint8_t> tensor_data(const TensorInfo& t) const {
        if (!t.readable) [[unlikely]] return {};
        if (lazy_) [[unlikely]] decompress(t);
        return bytes_.subspan(data_section_offset_ + t.data_offset, t.n_bytes);
    }
    // A .gguf.zst (open() takes either): bytes() are its original file, each tensor's part
    // decompressed (and checked) when tensor_data() first asks for it.
    bool compressed() const { return compressed_; }
    // A file read over HTTP (opened from a URL): the traffic so far. Empty for any other.
    std::optional<http::Transfer> transfer() const { return lazy_ ? lazy_->transfer() : std::nullopt; }

private:
    File() = default;
    static File open_mapped(const std::filesystem::path& path, FaultLog* faults);
    static File parse_bytes(std::span<const uint8_t> bytes, std::string name, FaultLog* faults);
    static File open_compressed(const std::filesystem::path& path, FaultLog* faults);
    static File open_remote(const std::string& url, FaultLog* faults);
    void clear_parsed();
    void decompress(const TensorInfo& t) const;  // throws gguf::Error naming the tensor and the damaged frame or failed transfer
    friend class Parser;

    std::unique_ptr<Mapping> mapping_;
    std::unique_ptr<LazyBytes> lazy_;  // a .gguf.zst or a URL
    bool compressed_ = false;
    std::span<const uint8_t> bytes_;
    std::string path_;
    uint32_t version_ = 0;
    Encoding encoding_;
    uint64_t alignment_ = kDefaultAlignment;
    uint64_t data_section_offset_ = 0;
    std::vector<KeyValue> kvs_;
    std::vector<TensorInfo> tensors_;
    std::vector<uint64_t> kv_index_;      // open-addressing hash of keys (see name_index.h)
    std::vector<uint64_t> tensor_index_;  // likewise for tensor names
};

}  // namespace gguf
