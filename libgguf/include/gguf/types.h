// The table of ggml tensor types: every id a GGUF file may name, with its block geometry.
//
// A tensor's bytes are a sequence of blocks. A block holds `block_size` consecutive values
// of a row in `type_size` bytes; non-quantized types have a block of one value. This table
// knows only that geometry; the arithmetic inside a block belongs to quant/.
#pragma once

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

inline constexpr uint32_t kTypeCount = 43;  // ids 0 .. 42

struct TypeInfo {
    TypeId id;
    std::string_view name;   // ggml's lower-case name, e.g. "q4_K"
    uint32_t block_size;     // values per block; 0 for a retired id
    uint32_t type_size;      // bytes per block; 0 for a retired id
    bool quantized;
    bool retired;            // the id once existed; no current reader accepts it
};

// Every id from 0 to kTypeCount - 1, in id order.
std::span<const TypeInfo> all_types();

// The entry for `id`, or nullptr when the id is beyond the table.
const TypeInfo* find_type(uint32_t id);
inline const TypeInfo& type_info(TypeId id) { return *find_type(static_cast<uint32_t>(id)); }

// Case-insensitive lookup by name ("Q4_K", "q4_k", "bf16"); retired names are not found.
std::optional<TypeId> type_from_name(std::string_view name);

}  // namespace gguf
