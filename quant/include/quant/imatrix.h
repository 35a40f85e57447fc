// Importance matrices: per weight tensor, how much each input column matters (the mean of
// the squared activations that multiply it), as llama.cpp's importance tool measures them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace quant {

class ImportanceMatrix {
public:
    // Reads llama.cpp's GGUF importance file: for each weight tensor NAME, tensors
    // NAME.in_sum2 (f32: sums of squared activations, one per column, times the number of
    // experts for expert tensors) and NAME.counts (f32: how many activations were summed,
    // one per expert). Importance = in_sum2 / counts. An expert that was never active
    // (count 0) gets uniform weights. Throws gguf::Error naming the file and tensor for a
    // missing partner tensor, lengths that disagree, or negative or non-finite values.
    static ImportanceMatrix load(const std::filesystem::path& path);

    // The weights for weight tensor `name` (columns x experts values), or nullptr.
    const std::vector<float>* find(std::string_view name) const;
    size_t size() const { return weights_.size(); }
    const std::map<std::string, std::vector<float>, std::less<>>& entries() const { return weights_; }

    std::vector<std::string> datasets;  // imatrix.datasets
    uint32_t chunk_count = 0;           // imatrix.chunk_count
    uint32_t chunk_size = 0;            // imatrix.chunk_size

private:
    std::map<std::string, std::vector<float>, std::less<>> weights_;
};

}  // namespace quant
