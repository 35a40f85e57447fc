// A model: one GGUF file, or a split set (NAME-00001-of-00003.gguf ...) opened as one.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gguf/file.h"

namespace gguf {

// The split naming convention of llama.cpp's gguf-split: PREFIX-NNNNN-of-MMMMM.gguf.
struct SplitName {
    std::string prefix;  // path up to "-NNNNN-of-MMMMM.gguf"
    uint32_t number = 0; // 1-based
    uint32_t count = 0;
    std::string suffix = ".gguf";  // or ".gguf.zst" (parts compressed one by one)
    // Also a URL's path: a split set over HTTP is found from any part's URL.
    static std::optional<SplitName> parse(const std::filesystem::path& path);
    std::filesystem::path path_of(uint32_t part) const;  // 1-based
};

class Model {
public:
    struct Tensor {
        const TensorInfo* info;
        uint32_t part;  // index into parts()
    };

    // Opens `path`; if its name follows the split convention, opens every part of the set
    // and checks split.no, split.count and split.tensors.count. Any part may be named.
    static Model open(const std::filesystem::path& path);
    // Lenient: every part opened leniently; a missing part, inconsistent split keys and a
    // tensor in two parts are appended to `faults` (see gguf::Fault) instead of thrown.
    static Model open(const std::filesystem::path& path, FaultLog& faults);
    // Combines files already open (tests); they must form a valid split set or be one file.
    static Model from_parts(std::vector<File> parts);

    std::span<const File> parts() const { return parts_; }
    const File& first() const { return parts_.front(); }
    // A file with split.count 0 is not part of a set: llama-gguf-split --merge writes that.
    bool is_split() const;

    // Metadata is the first part's (gguf-split writes the model's keys there).
    std::span<const KeyValue> kvs() const { return first().kvs(); }
    const KeyValue* find(std::string_view key) const { return first().find(key); }

    // Tensors of all parts, in part order.
    std::span<const Tensor> tensors() const { return tensors_; }
    const Tensor* find_tensor(std::string_view name) const;
    std::span<const uint8_t> tensor_data(const Tensor& t) const { return parts_[t.part].tensor_data(*t.info); }
    // File::release_pages for bytes of tensor t's data.
    void release_pages(const Tensor& t, std::span<const uint8_t> bytes) const { parts_[t.part].release_pages(bytes); }

    uint64_t total_size() const;

private:
    static Model open_set(const std::filesystem::path& path, FaultLog* faults);
    // `numbers`: each part's 1-based number in a set of `count` (parts may be missing).
    static Model assemble(std::vector<File> parts, std::vector<uint32_t> numbers, uint32_t count, FaultLog* faults);
    void index_tensors(FaultLog* faults);
    std::vector<File> parts_;
    std::vector<Tensor> tensors_;
    std::vector<uint64_t> index_;  // tensor names (see name_index.h)
};

}  // namespace gguf
