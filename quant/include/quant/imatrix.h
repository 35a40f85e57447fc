// Importance matrices: per weight tensor, how much each input column matters (the mean of
// the squared activations that multiply it), as llama.cpp's importance tool measures them.
// Both of its file formats are read and written; spec/imatrix.md describes them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace quant {

// What the importance tool collected for one weight tensor: sums of squared activations per
// column (columns x experts values, expert by expert) and, per expert, how many activation
// rows went into them. The importance of a column is sum / count.
struct ImatrixEntry {
    std::vector<float> sums;
    std::vector<float> counts;

    size_t experts() const { return counts.size(); }
    size_t columns() const { return counts.empty() ? 0 : sums.size() / counts.size(); }
    // sums / counts, expert by expert; an expert never reached (count 0) gets weights of 1,
    // as llama.cpp treats it.
    std::vector<float> importance() const;
};

// How much data an entry saw and how its importance is spread: what `gguf imatrix show`
// reports per tensor.
struct ImatrixStats {
    double chunks = 0;  // activation rows of its busiest expert over the chunk size: chunks of text seen
    double mean = 0;    // mean importance over all columns x experts values
    double max = 0;     // largest importance
    // The most important values, most important first (ties: lower index first), as indices
    // into the importance: expert * columns() + column.
    std::vector<size_t> top;
};

// Statistics of entry `e` whose importance (e.importance(), or ImportanceMatrix::find) is
// `importance`, for text cut in chunks of `chunk_size` tokens (0: chunks left 0), keeping the
// `top` most important values. An empty entry gives all zeros.
ImatrixStats stats(const ImatrixEntry& e, const std::vector<float>& importance, uint32_t chunk_size, size_t top);

enum class ImatrixFormat {
    Gguf,    // general.type "imatrix": tensors NAME.in_sum2 and NAME.counts, imatrix.* keys
    Legacy,  // the older binary .dat file: per-entry means scaled by a call count
};

class ImportanceMatrix {
public:
    // The chunk size a legacy file is assumed to have been computed with (it does not record
    // it): llama.cpp's default context of 512.
    static constexpr uint32_t kLegacyChunkSize = 512;

    // Reads either format (a GGUF file by its magic, else legacy). Throws gguf::Error naming
    // the file, the offset and the tensor for anything malformed: a missing partner tensor,
    // lengths that disagree, negative or non-finite values, truncation.
    static ImportanceMatrix load(const std::filesystem::path& path, uint32_t legacy_chunk_size = kLegacyChunkSize);

    // Writes the matrix in `format` (to a temporary file renamed into place). The GGUF form
    // is laid out as llama.cpp writes it; the legacy form holds what llama.cpp's legacy writer
    // would hold for the same sums and counts.
    void save(const std::filesystem::path& path, ImatrixFormat format) const;

    // Adds `other` in: sums and counts summed entry by entry (an entry with one count meets
    // one with several by repeating it, as for a legacy file), so each input weighs by how
    // much data it saw; datasets appended, chunk count recomputed. Throws for entries whose
    // sizes disagree, naming them.
    void merge(const ImportanceMatrix& other);

    // The weights for weight tensor `name` (columns x experts values), or nullptr.
    const std::vector<float>* find(std::string_view name) const;
    size_t size() const { return entries_.size(); }
    const std::map<std::string, ImatrixEntry, std::less<>>& entries() const { return entries_; }

    // Replaces or adds an entry (tests, and tools that build matrices).
    void set(std::string name, ImatrixEntry entry);

    std::vector<std::string> datasets;  // imatrix.datasets (legacy: the one it names)
    uint32_t chunk_count = 0;           // imatrix.chunk_count
    uint32_t chunk_size = 0;            // imatrix.chunk_size (legacy: assumed, see load)
    ImatrixFormat format = ImatrixFormat::Gguf;  // the format it was read from

private:
    std::map<std::string, ImatrixEntry, std::less<>> entries_;
    std::map<std::string, std::vector<float>, std::less<>> weights_;  // importance(), per entry
};

}  // namespace quant
