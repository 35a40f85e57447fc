#include "gguf/diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "gguf/render.h"

namespace gguf {

namespace {

bool is_split_key(std::string_view k) { return k == "split.no" || k == "split.count" || k == "split.tensors.count"; }

bool same_value(const Value& x, const Value& y);

// The first element where two arrays of one element type differ, or their common length.
uint64_t first_difference(const ArrayView& x, const ArrayView& y) {
    auto i = x.begin(), j = y.begin();
    uint64_t k = 0;
    for (; k < x.size() && k < y.size(); ++k, ++i, ++j)
        if (!same_value(*i, *j)) return k;
    return k;
}

bool same_value(const Value& x, const Value& y) {
    if (x.type() != y.type()) return false;
    if (x.type() == ValueType::Array) {
        const ArrayView a = x.array(), b = y.array();
        if (a.element_type() != b.element_type() || a.size() != b.size()) return false;
        // Fixed-size elements in the same byte order compare as bytes; others element by element.
        if (a.element_type() != ValueType::String && a.element_type() != ValueType::Array && x.encoding().big_endian == y.encoding().big_endian)
            return std::ranges::equal(a.bytes(), b.bytes());
        return first_difference(a, b) == a.size();
    }
    if (x.type() == ValueType::String) return x.str() == y.str();
    // Numbers and bools: equal as values (NaN equals NaN: the same bits stored).
    return value_text(x) == value_text(y);
}

std::string describe(const Value& x, const Value& y) {
    if (x.type() != y.type()) return fmt::format("type {} -> {}", value_type_label(x), value_type_label(y));
    if (x.type() != ValueType::Array) return fmt::format("{} -> {}", value_text(x, 8), value_text(y, 8));
    const ArrayView a = x.array(), b = y.array();
    if (a.element_type() != b.element_type()) return fmt::format("type {} -> {}", value_type_label(x), value_type_label(y));
    const uint64_t k = first_difference(a, b);
    if (a.size() != b.size())
        return k == std::min(a.size(), b.size()) ? fmt::format("length {} -> {}, the same up to element {}", a.size(), b.size(), k)
                                                 : fmt::format("length {} -> {}, first difference at element {}", a.size(), b.size(), k);
    if (k == a.size()) return fmt::format("the same {} values, stored differently (NaN payloads)", a.size());
    auto at = [&](const ArrayView& v) {
        auto it = v.begin();
        for (uint64_t n = 0; n < k; ++n) ++it;
        return value_text(*it, 8);
    };
    return fmt::format("element {} of {}: {} -> {}", k, a.size(), at(a), at(b));
}

}  // namespace

std::vector<KeyDifference> diff_metadata(const Model& a, const Model& b) {
    std::vector<KeyDifference> out;
    for (const KeyValue& kv : a.kvs()) {
        if (is_split_key(kv.key)) continue;
        const KeyValue* other = b.find(kv.key);
        if (!other)
            out.push_back({KeyDifference::Kind::OnlyA, kv.key, &kv, nullptr, {}});
        else if (!same_value(kv.value, other->value))
            out.push_back({KeyDifference::Kind::Changed, kv.key, &kv, other, describe(kv.value, other->value)});
    }
    for (const KeyValue& kv : b.kvs())
        if (!is_split_key(kv.key) && !a.find(kv.key)) out.push_back({KeyDifference::Kind::OnlyB, kv.key, nullptr, &kv, {}});
    return out;
}

bool TensorPair::same_type() const { return a && b && a->info->type == b->info->type; }

bool TensorPair::same_shape() const {
    if (!a || !b) return false;
    const auto x = a->info->dims(), y = b->info->dims();
    return std::ranges::equal(x, y);
}

std::vector<TensorPair> pair_tensors(const Model& a, const Model& b) {
    std::vector<TensorPair> out;
    for (const Model::Tensor& t : a.tensors()) out.push_back({t.info->name, &t, b.find_tensor(t.info->name)});
    for (const Model::Tensor& t : b.tensors())
        if (!a.find_tensor(t.info->name)) out.push_back({t.info->name, nullptr, &t});
    return out;
}

uint64_t fingerprint(std::span<const uint8_t> bytes) {
    // Four independent lanes over 32-byte steps (multiply, rotate, xor: no carried chain
    // between lanes, so they run in parallel), then the tail and the length, then a final
    // avalanche. The constants are arbitrary odd numbers.
    constexpr uint64_t k1 = 0x9d2c5680a3e1f7b5ull, k2 = 0xc6a4a7935bd1e995ull, k3 = 0x8ebc6af09c88c6e3ull;
    uint64_t lane[4] = {k1, k2, k3, k1 ^ k2};
    auto word = [](const uint8_t* p) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        return w;
    };
    size_t i = 0;
    const uint8_t* p = bytes.data();
    for (; i + 32 <= bytes.size(); i += 32)
        for (int l = 0; l < 4; ++l) lane[l] = std::rotl((lane[l] ^ word(p + i + 8 * l)) * k2, 29) * k1;
    uint64_t h = bytes.size() * k3;
    for (int l = 0; l < 4; ++l) h = std::rotl(h ^ (lane[l] * k3), 31) * k1;
    for (; i + 8 <= bytes.size(); i += 8) h = std::rotl(h ^ (word(p + i) * k2), 27) * k1;
    for (; i < bytes.size(); ++i) h = std::rotl(h ^ (p[i] * k3), 11) * k1;
    h ^= h >> 33;
    h *= k2;
    h ^= h >> 29;
    h *= k3;
    h ^= h >> 32;
    return h;
}

}  // namespace gguf
