// One open model file as the viewer shows it: the facts of its overview, its metadata and
// tensor tables (searched, filtered, sorted), bytes by type and by layer, and the mix map.
// Everything here reads metadata and tensor infos only, never tensor data, so a file of any
// size opens at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/model.h"
#include "gguf/summary.h"

namespace viewer {

struct TensorRow {
    uint32_t index = 0;                 // into Model::tensors()
    std::string name;
    gguf::TypeId type{};
    std::string shape;                  // "[4096, 32000]"
    uint64_t elements = 0, bytes = 0;
    uint64_t offset = 0;                // in its file
    uint32_t part = 0;                  // 0-based part of a split set
    std::optional<uint32_t> layer;      // blk.N
    double bits_per_weight = 0;
};

// Columns of the tensor table, in the order shown.
enum class TensorColumn { Index, Name, Type, Shape, Elements, Bytes, Offset };

// Bytes of the tensors of one layer (or of the global tensors: layer empty).
struct LayerBytes {
    std::optional<uint32_t> layer;
    uint64_t bytes = 0, elements = 0;
};

// A grid of layers x roles: the cell holds the tensor of that role in that layer
// ("blk.N.<role>.weight"). Roles are the stems found in the file, in the architecture
// table's order, of the tensors llama.cpp's mixes choose a type for: norms, routers and
// the other tensors it always keeps in float (TensorKind::kept) stay out of the grid, as do
// biases and names outside the scheme; `globals` lists every tensor not in the grid (in
// index order). A file naming a layer number beyond its tensor count gets no grid (no
// roles, no layers): every tensor is in `globals`.
struct MixMap {
    std::vector<std::string> roles;      // "attn_q", "ffn_down_exps", ...
    uint32_t layers = 0;                 // rows: blk.0 .. blk.(layers - 1)
    std::vector<int64_t> cells;          // layers x roles, row-major: a tensor index, or -1
    std::vector<uint32_t> globals;       // every tensor not in the grid (token_embd, output, norms...)

    int64_t at(uint32_t layer, size_t role) const { return cells[layer * roles.size() + role]; }
};

class Document {
public:
    // Opens the file (or split set) strictly; throws gguf::Error with the message `gguf
    // inspect` gives for a bad file.
    static std::unique_ptr<Document> open(const std::filesystem::path& path);
    explicit Document(gguf::Model model, std::string path);

    const gguf::Model& model() const { return model_; }
    const std::string& path() const { return path_; }
    std::string title() const;  // the file name
    const gguf::Summary& summary() const { return summary_; }
    const std::vector<gguf::Fact>& facts() const { return facts_; }
    const std::vector<TensorRow>& tensors() const { return rows_; }
    const std::vector<LayerBytes>& bytes_by_layer() const { return by_layer_; }  // globals first, then layer order
    const MixMap& mix_map() const { return mix_; }
    // The row of tensor `name`, or nullptr.
    const TensorRow* find(std::string_view name) const;

private:
    gguf::Model model_;
    std::string path_;
    gguf::Summary summary_;
    std::vector<gguf::Fact> facts_;
    std::vector<TensorRow> rows_;
    std::vector<LayerBytes> by_layer_;
    MixMap mix_;
};

MixMap build_mix_map(const gguf::Model& model);

// Tensor table rows (indices into `rows`) whose name or type name contains `filter`
// (case-insensitive; empty: all), sorted by `column` (Shape: by elements, then the shape
// text; ties: by index, ascending always), ascending or not.
std::vector<uint32_t> select_tensors(const std::vector<TensorRow>& rows, std::string_view filter, TensorColumn column,
                                     bool ascending);

// Metadata entries (indices into model.kvs()) whose key or value text contains `query`
// (case-insensitive; empty: all). Array values match on their first 64 elements' text.
std::vector<uint32_t> search_metadata(const gguf::Model& model, std::string_view query);

// The elements of an array value, for random access (an array of strings can only be
// walked in order): a virtualised list shows any row at once.
std::vector<gguf::Value> array_elements(const gguf::ArrayView& array);

// The tokenizer vocabulary (tokenizer.ggml.tokens, and where present with as many entries
// .scores and .token_type), for the side-by-side list. Absent without tokens.
struct Vocabulary {
    std::vector<gguf::Value> tokens;
    std::optional<gguf::ArrayView> scores, types;  // numbers: ArrayView::at(i)
};
std::optional<Vocabulary> vocabulary(const gguf::Model& model);
// llama.cpp's token type names: 1 "normal", 2 "unknown", 3 "control", 4 "user", 5 "unused",
// 6 "byte"; anything else "undefined".
std::string_view token_type_name(int64_t type);

// ASCII case-insensitive "contains".
bool contains_ignoring_case(std::string_view text, std::string_view part);

}  // namespace viewer
