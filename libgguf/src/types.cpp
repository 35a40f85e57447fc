#include "gguf/types.h"

#include <array>
#include <cctype>

namespace gguf {
namespace {

constexpr TypeInfo live(TypeId id, std::string_view name, uint32_t block, uint32_t bytes, bool quantized) {
    return {id, name, block, bytes, quantized, false};
}
constexpr TypeInfo retired(TypeId id, std::string_view name) { return {id, name, 0, 0, true, true}; }

using T = TypeId;
constexpr std::array<TypeInfo, kTypeCount> kTypes = {{
    live(T::F32, "f32", 1, 4, false),
    live(T::F16, "f16", 1, 2, false),
    live(T::Q4_0, "q4_0", 32, 18, true),
    live(T::Q4_1, "q4_1", 32, 20, true),
    retired(T::Q4_2, "q4_2"),
    retired(T::Q4_3, "q4_3"),
    live(T::Q5_0, "q5_0", 32, 22, true),
    live(T::Q5_1, "q5_1", 32, 24, true),
    live(T::Q8_0, "q8_0", 32, 34, true),
    live(T::Q8_1, "q8_1", 32, 36, true),
    live(T::Q2_K, "q2_K", 256, 84, true),
    live(T::Q3_K, "q3_K", 256, 110, true),
    live(T::Q4_K, "q4_K", 256, 144, true),
    live(T::Q5_K, "q5_K", 256, 176, true),
    live(T::Q6_K, "q6_K", 256, 210, true),
    live(T::Q8_K, "q8_K", 256, 292, true),
    live(T::IQ2_XXS, "iq2_xxs", 256, 66, true),
    live(T::IQ2_XS, "iq2_xs", 256, 74, true),
    live(T::IQ3_XXS, "iq3_xxs", 256, 98, true),
    live(T::IQ1_S, "iq1_s", 256, 50, true),
    live(T::IQ4_NL, "iq4_nl", 32, 18, true),
    live(T::IQ3_S, "iq3_s", 256, 110, true),
    live(T::IQ2_S, "iq2_s", 256, 82, true),
    live(T::IQ4_XS, "iq4_xs", 256, 136, true),
    live(T::I8, "i8", 1, 1, false),
    live(T::I16, "i16", 1, 2, false),
    live(T::I32, "i32", 1, 4, false),
    live(T::I64, "i64", 1, 8, false),
    live(T::F64, "f64", 1, 8, false),
    live(T::IQ1_M, "iq1_m", 256, 56, true),
    live(T::BF16, "bf16", 1, 2, false),
    retired(T::Q4_0_4_4, "q4_0_4x4"),
    retired(T::Q4_0_4_8, "q4_0_4x8"),
    retired(T::Q4_0_8_8, "q4_0_8x8"),
    live(T::TQ1_0, "tq1_0", 256, 54, true),
    live(T::TQ2_0, "tq2_0", 256, 66, true),
    retired(T::IQ4_NL_4_4, "iq4_nl_4x4"),
    retired(T::IQ4_NL_4_8, "iq4_nl_4x8"),
    retired(T::IQ4_NL_8_8, "iq4_nl_8x8"),
    live(T::MXFP4, "mxfp4", 32, 17, true),
    live(T::NVFP4, "nvfp4", 64, 36, true),
    live(T::Q1_0, "q1_0", 128, 18, true),
    live(T::Q2_0, "q2_0", 64, 18, true),
}};

constexpr bool ids_match_positions() {
    for (uint32_t i = 0; i < kTypes.size(); ++i)
        if (static_cast<uint32_t>(kTypes[i].id) != i) return false;
    return true;
}
static_assert(ids_match_positions(), "the type table must be indexed by id");

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

}  // namespace

std::span<const TypeInfo> all_types() { return kTypes; }

const TypeInfo* find_type(uint32_t id) { return id < kTypes.size() ? &kTypes[id] : nullptr; }

std::optional<TypeId> type_from_name(std::string_view name) {
    for (const TypeInfo& t : kTypes)
        if (!t.retired && iequal(t.name, name)) return t.id;
    return std::nullopt;
}

}  // namespace gguf
