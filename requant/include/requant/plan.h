// What `gguf requant` makes of each tensor: the target (a storage type or one of llama.cpp's
// named mixes) and, for a mix, llama.cpp's per-tensor choice of type, so a requantized model
// holds the same types llama.cpp's quantizer would have written.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/arch.h"
#include "gguf/file_type.h"
#include "gguf/model.h"
#include "gguf/types.h"
#include "gguf/writer.h"

namespace gguf::requant {

// A value of `--type`.
struct Target {
    std::string_view name;  // as llama.cpp spells it: "Q4_K_M", "IQ2_XS", "F16", "COPY"
    uint32_t file_type;     // general.file_type written (llama.cpp's ftype id); COPY keeps the input's
    TypeId base;            // what a quantizable tensor gets before the mix's rules
    bool rules;             // llama.cpp's per-tensor rules apply (a named mix with a quantized base)
    bool copy;              // COPY: every tensor as it is, only metadata changes
    std::string_view note;  // for --list
};

// Every target: llama.cpp's mixes in file type order (derived from libgguf's file type
// table), llama-quantize's aliases (Q4_K for Q4_K_M ...), MXFP4 (mxfp4 throughout), COPY.
std::span<const Target> targets();
// By name, case-insensitive, or by llama.cpp's file type id ("15" is Q4_K_M); nullptr when
// nothing has that name.
const Target* find_target(std::string_view name);

struct Options {
    const Target* target = nullptr;
    bool pure = false;               // the base type everywhere, no per-tensor rules
    bool leave_output = false;       // output.weight keeps its type
    bool has_imatrix = false;        // some rules depend on it
    std::optional<TypeId> output_type, token_embd_type;
    std::vector<std::pair<std::regex, TypeId>> tensor_types;  // --tensor-type REGEX=TYPE, first match wins
    std::vector<std::string> tensor_type_patterns;            // the same patterns as text, for messages
    // --prune-layers: these blocks (sorted, no repeats) are left out and the rest renumbered
    // from 0 in order, as llama-quantize does; its rules then count the attn_v tensors left
    // but size the feed-forward rules by the original block count.
    std::vector<uint32_t> prune_layers;
};

// What the rules look at in a model: its hyperparameters (libgguf's architecture table),
// with the layer count taken from the tensors' names when the metadata lacks it.
Hyperparameters shape_of(const Model& m);

// Why llama.cpp never quantizes `t`, whatever the mix (a 1-D vector, a norm, a position
// table, output.weight with leave_output ...), or "" when a mix may convert it.
std::string never_quantized(const TensorInfo& t, bool leave_output = false);

struct TensorPlan {
    const Model::Tensor* tensor = nullptr;  // nullptr for tensors planned outside a file
    const TensorInfo* info = nullptr;
    std::string name;               // the name written: info->name, renumbered by prune_layers
    TypeId from = TypeId::F32;
    TypeId to = TypeId::F32;
    bool requires_imatrix = false;  // llama.cpp refuses these types without importance data
    std::string fallback;           // set when the row length forced another type: why
    bool convert() const { return from != to; }
};

// One plan per tensor, in the order llama.cpp's quantizer writes them (by layer, then name;
// tensors outside blk.N first). Throws std::runtime_error for what llama.cpp refuses (a
// tensor type without a fallback, a bad layer number in an expert tensor) and for a
// prune_layers entry the model does not have or one that would leave no block.
std::vector<TensorPlan> plan(const Model& m, const Options& o);

// --prune-layers: the new number of block `layer` (nullopt when it is pruned); and the
// metadata a pruned model gets: block_count lowered, per-layer arrays (feed_forward_length,
// attention.head_count, head_count_kv, sliding_window_pattern as one element per block)
// without the pruned blocks' elements.
// llama-quantize sets only block_count, leaving per-layer arrays a block too long for
// llama.cpp's loader.
std::optional<uint32_t> renumbered_layer(uint32_t layer, std::span<const uint32_t> pruned);
void prune_metadata(Writer& w, const Model& m, std::span<const uint32_t> pruned);
// The same for tensors not in a file yet (gguf convert): the model's hyperparameters and its
// tensors' infos (their type the one they have before conversion). TensorPlan::tensor is
// nullptr; TensorPlan::info points into `tensors`.
std::vector<TensorPlan> plan(const Hyperparameters& shape, std::span<const TensorInfo> tensors, const Options& o);

}  // namespace gguf::requant
