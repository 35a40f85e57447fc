// What differs between two models: keys only in one, keys whose values differ (arrays to
// the first differing element), tensors only in one, tensors whose type, shape or bytes
// differ. The numbers inside differing tensors (RMSE, cosine...) are kernels' to compute
// (kernels::compare_rows); this is the format-level part, shared by `gguf diff`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gguf/model.h"

namespace gguf {

struct KeyDifference {
    enum class Kind { OnlyA, OnlyB, Changed };
    Kind kind;
    std::string_view key;
    const KeyValue* a = nullptr;  // null for OnlyB
    const KeyValue* b = nullptr;  // null for OnlyA
    // For Changed: what differs, for people: "type u32 -> str", "length 320 -> 321, first
    // difference at element 318", "element 17: "x" -> "y"", or "3 -> 4".
    std::string detail;
};

// Differences of a's and b's metadata: a's keys in a's order, then b's own keys in b's order.
// The split keys (split.no, split.count, split.tensors.count) describe a file's layout, not
// the model: left out, so a split set and its merge compare equal.
std::vector<KeyDifference> diff_metadata(const Model& a, const Model& b);

struct TensorPair {
    std::string_view name;
    const Model::Tensor* a = nullptr;  // null: only in b
    const Model::Tensor* b = nullptr;  // null: only in a
    bool same_type() const;
    bool same_shape() const;
};

// Every tensor name of a (in a's order) and then b's own, paired by name.
std::vector<TensorPair> pair_tensors(const Model& a, const Model& b);

// A 64-bit fingerprint of bytes, for telling contents apart in listings (not cryptographic:
// equal contents always give equal fingerprints, different ones almost always different).
// About memory speed.
uint64_t fingerprint(std::span<const uint8_t> bytes);

}  // namespace gguf
