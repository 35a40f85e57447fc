// Safetensors checkpoints, memory-mapped: one `model.safetensors`, or shards named by
// `model.safetensors.index.json`'s weight_map.
//
// The format: an 8-byte little-endian header length N, N bytes of JSON (an object: per
// tensor name {"dtype", "shape", "data_offsets": [begin, end]}, and an optional
// "__metadata__" object of strings), then the tensors' bytes, offsets counted from the end of
// the header. The reader checks what a converter relies on and names the file and tensor of
// any fault: a header inside the file, at most 100,000,000 bytes, a JSON object; each name
// once; every dtype known; shape entries non-negative integers whose product (and bit count)
// fits 64 bits; begin <= end inside the data; end - begin = the shape's element count x the
// dtype's size; no two tensors overlapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/mapping.h"

namespace convert {

// Every dtype the format names. The converter reads F32, F16 and BF16; the others are
// recognised so that a quantized checkpoint is refused by name.
enum class Dtype : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, Bool, F8_E4M3, F8_E5M2, F8_E8M0, F4 };
std::string_view dtype_name(Dtype d);  // "BF16", as the header spells it
// Bits per element (F4: 4).
uint32_t dtype_bits(Dtype d);

struct SafeTensor {
    std::string name;
    Dtype dtype = Dtype::F32;
    std::vector<uint64_t> shape;  // as Hugging Face writes it: outermost first ([rows, cols] for a matrix)
    std::span<const uint8_t> data;
    const std::filesystem::path* file = nullptr;  // the shard it lives in
    uint64_t elements() const;
};

// Gives back the memory of the whole pages inside `bytes` (part of a file mapping): they are
// read from the file again if touched. The converter calls it for each tensor written, so its
// resident memory stays near one tensor's size, not the checkpoint's.
void release_pages(std::span<const uint8_t> bytes);

// One .safetensors file, mapped. Throws std::runtime_error naming the file (and tensor).
class SafetensorsFile {
public:
    static SafetensorsFile open(const std::filesystem::path& path);
    // Bytes in memory (tests), named `name` in errors.
    static SafetensorsFile parse(std::span<const uint8_t> bytes, std::string name);

    const std::filesystem::path& path() const { return *path_; }
    const std::vector<SafeTensor>& tensors() const { return tensors_; }  // in data order
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // Gives back every page of the mapping (release_pages over the whole file).
    void release_pages() const;

private:
    SafetensorsFile() = default;
    void read(std::span<const uint8_t> bytes);

    std::unique_ptr<std::filesystem::path> path_;  // stable address for SafeTensor::file
    std::unique_ptr<gguf::Mapping> mapping_;
    std::vector<SafeTensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

// A checkpoint folder's weights: model.safetensors, or the shards its index names (each
// tensor in the shard the index says; a tensor missing from it, or in two shards, is an
// error naming both).
class Checkpoint {
public:
    static Checkpoint open(const std::filesystem::path& folder);

    const std::filesystem::path& folder() const { return folder_; }
    // Every tensor, by name.
    const std::map<std::string, const SafeTensor*>& tensors() const { return by_name_; }
    const SafeTensor* find(std::string_view name) const;
    const std::vector<SafetensorsFile>& files() const { return files_; }
    // Gives back the pages every file has mapped so far: the kernel maps large folios of the
    // page cache at once, so reading the scales and zeros of every layer while planning would
    // otherwise keep much of the checkpoint resident.
    void release_pages() const;

private:
    std::filesystem::path folder_;
    std::vector<SafetensorsFile> files_;
    std::map<std::string, const SafeTensor*> by_name_;
};

}  // namespace convert
