// Split sets, as llama.cpp's gguf-split makes and merges them: which tensors go in which
// part, a model written as a set, and a set written back as one file. (Reading a set is
// gguf::Model; the part names are gguf::SplitName.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

#include "gguf/model.h"

namespace gguf {

// Where a new part starts, as llama-gguf-split decides it:
// - max_tensors N: before tensor i (counted over the whole model) when i > 0 and i % N == 0;
// - max_bytes S: before a tensor that would take the part's tensor data past S, each tensor
//   counted at its size rounded up to 32 bytes (metadata not counted: a part can be larger
//   than S); a tensor larger than S alone gets a part of its own;
// - no_tensor_first_split: the first part holds the metadata only, the tensors start in the
//   second (the rules above unchanged).
// Exactly one of max_tensors and max_bytes is set (llama-gguf-split's default is 128 tensors).
struct SplitLimits {
    uint64_t max_bytes = 0;
    uint32_t max_tensors = 0;
    bool no_tensor_first_split = false;
};

// The number of tensors in each part, for tensors of `tensor_bytes` in model order. Never an
// empty part but the metadata-only first one. Throws std::invalid_argument for limits that
// set both or neither, or more than 65535 parts.
std::vector<uint32_t> plan_split(std::span<const uint64_t> tensor_bytes, const SplitLimits& limits);

// Writers for the parts of `model` split by `tensors_per_part` (plan_split's result): the
// first part with the model's keys (its own split.* keys left out: write_split_set sets them),
// every part its tensors' data copied from the model's files (copy_file_range where the
// kernel can, Writer::add_tensor(File, TensorInfo)). The model must outlive the writers.
std::vector<class Writer> split_writers(const Model& model, std::span<const uint32_t> tensors_per_part);

// The writer of `model` as one file, as llama-gguf-split --merge lays it out: the first
// part's keys in their order with split.count 0 (moved last), then every tensor of every
// part in part order. Throws std::invalid_argument when the model is not a split set.
Writer merged_writer(const Model& model);

// The tensor data bytes of each part of a plan, for printing (sizes as in the file: the
// data each part holds, padding between tensors excluded).
std::vector<uint64_t> part_bytes(std::span<const uint64_t> tensor_bytes, std::span<const uint32_t> tensors_per_part);

}  // namespace gguf
