// The table of ggml tensor types: every id a GGUF file may name, with its block geometry.
//
// A tensor's bytes are a sequence of blocks. A block holds `block_size` consecutive values
// of a row in `type_size` bytes; non-quantized types have a block of one value. This table
// knows only that geometry; the arithmetic inside a block belongs to quant/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace gguf {

// ggml's type ids, as stored in a tensor info's u32 type field.
enum class TypeId : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
    Q4_2 = 4, Q4_3 = 5,  // retired
    Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    Q4_0_4_4 = 31, Q4_0_4_8 = 32, Q4_0_8_8 = 33,  // retired (run-time repacking replaced them)
    TQ1_0 = 34, TQ2_0 = 35,
    IQ4_NL_4_4 = 36, IQ4_NL_4_8 = 37, IQ4_NL_8_8 = 38,  // retired
    MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

struct TypeInfo {
    TypeId id;
    std::string_view name;   // ggml's lower-case name, e.g. "q4_K"
    uint32_t block_size;     // values per block; 0 for a retired id
    uint32_t type_size;      // bytes per block; 0 for a retired id
    bool quantized;
    bool retired;            // the id once existed; no current reader accepts it
};

namespace detail {
constexpr TypeInfo live_type(TypeId id, std::string_view name, uint32_t block, uint32_t bytes, bool quantized) {
    return {id, name, block, bytes, quantized, false};
}
constexpr TypeInfo retired_type(TypeId id, std::string_view name) { return {id, name, 0, 0, true, true}; }

// The table itself: one row per id, in id order. Adding a type is adding its enum value and row.
inline constexpr std::array kTypes = {
    live_type(TypeId::F32, "f32", 1, 4, false),
    live_type(TypeId::F16, "f16", 1, 2, false),
    live_type(TypeId::Q4_0, "q4_0", 32, 18, true),
    live_type(TypeId::Q4_1, "q4_1", 32, 20, true),
    retired_type(TypeId::Q4_2, "q4_2"),
    retired_type(TypeId::Q4_3, "q4_3"),
    live_type(TypeId::Q5_0, "q5_0", 32, 22, true),
    live_type(TypeId::Q5_1, "q5_1", 32, 24, true),
    live_type(TypeId::Q8_0, "q8_0", 32, 34, true),
    live_type(TypeId::Q8_1, "q8_1", 32, 36, true),
    live_type(TypeId::Q2_K, "q2_K", 256, 84, true),
    live_type(TypeId::Q3_K, "q3_K", 256, 110, true),
    live_type(TypeId::Q4_K, "q4_K", 256, 144, true),
    live_type(TypeId::Q5_K, "q5_K", 256, 176, true),
    live_type(TypeId::Q6_K, "q6_K", 256, 210, true),
    live_type(TypeId::Q8_K, "q8_K", 256, 292, true),
    live_type(TypeId::IQ2_XXS, "iq2_xxs", 256, 66, true),
    live_type(TypeId::IQ2_XS, "iq2_xs", 256, 74, true),
    live_type(TypeId::IQ3_XXS, "iq3_xxs", 256, 98, true),
    live_type(TypeId::IQ1_S, "iq1_s", 256, 50, true),
    live_type(TypeId::IQ4_NL, "iq4_nl", 32, 18, true),
    live_type(TypeId::IQ3_S, "iq3_s", 256, 110, true),
    live_type(TypeId::IQ2_S, "iq2_s", 256, 82, true),
    live_type(TypeId::IQ4_XS, "iq4_xs", 256, 136, true),
    live_type(TypeId::I8, "i8", 1, 1, false),
    live_type(TypeId::I16, "i16", 1, 2, false),
    live_type(TypeId::I32, "i32", 1, 4, false),
    live_type(TypeId::I64, "i64", 1, 8, false),
    live_type(TypeId::F64, "f64", 1, 8, false),
    live_type(TypeId::IQ1_M, "iq1_m", 256, 56, true),
    live_type(TypeId::BF16, "bf16", 1, 2, false),
    retired_type(TypeId::Q4_0_4_4, "q4_0_4x4"),
    retired_type(TypeId::Q4_0_4_8, "q4_0_4x8"),
    retired_type(TypeId::Q4_0_8_8, "q4_0_8x8"),
    live_type(TypeId::TQ1_0, "tq1_0", 256, 54, true),
    live_type(TypeId::TQ2_0, "tq2_0", 256, 66, true),
    retired_type(TypeId::IQ4_NL_4_4, "iq4_nl_4x4"),
    retired_type(TypeId::IQ4_NL_4_8, "iq4_nl_4x8"),
    retired_type(TypeId::IQ4_NL_8_8, "iq4_nl_8x8"),
    live_type(TypeId::MXFP4, "mxfp4", 32, 17, true),
    live_type(TypeId::NVFP4, "nvfp4", 64, 36, true),
    live_type(TypeId::Q1_0, "q1_0", 128, 18, true),
    live_type(TypeId::Q2_0, "q2_0", 64, 18, true),
};

constexpr bool type_ids_match_positions() {
    for (uint32_t i = 0; i < kTypes.size(); ++i)
        if (static_cast<uint32_t>(kTypes[i].id) != i) return false;
    return true;
}
static_assert(type_ids_match_positions(), "the type table must be indexed by id");

}  // namespace detail

// Ids 0 .. kTypeCount - 1 are in the table.
inline constexpr uint32_t kTypeCount = static_cast<uint32_t>(detail::kTypes.size());

// Every id from 0 to kTypeCount - 1, in id order.
constexpr std::span<const TypeInfo> all_types() { return detail::kTypes; }

// These functions are constexpr so that layouts can be checked against the table at compile
// time (quant/blocks.h); CUDA device code uses the results, not the functions.

// The entry for `id`, or nullptr when the id is beyond the table.
constexpr const TypeInfo* find_type(uint32_t id) { return id < detail::kTypes.size() ? &detail::kTypes[id] : nullptr; }
constexpr const TypeInfo& type_info(TypeId id) { return detail::kTypes[static_cast<uint32_t>(id)]; }

// Bytes of `n_elements` values of a live type (n_elements a whole number of blocks).
constexpr uint64_t tensor_bytes(TypeId id, uint64_t n_elements) {
    const TypeInfo& t = type_info(id);
    return t.block_size ? n_elements / t.block_size * t.type_size : 0;
}
// Storage cost of a live type: 8 x bytes per block / values per block (4.5 for q4_0).
constexpr double bits_per_weight(TypeId id) {
    const TypeInfo& t = type_info(id);
    return t.block_size ? 8.0 * t.type_size / t.block_size : 0;
}
// The mean storage cost of `n_elements` values held in `bytes` (a model's tensors, a mix of
// types); 0 for no values.
constexpr double average_bits_per_weight(uint64_t bytes, uint64_t n_elements) {
    return n_elements ? 8.0 * static_cast<double>(bytes) / static_cast<double>(n_elements) : 0;
}

// Case-insensitive lookup by name ("Q4_K", "q4_k", "bf16"); retired names are not found.
std::optional<TypeId> type_from_name(std::string_view name);

}  // namespace gguf
