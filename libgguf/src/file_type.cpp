#include "gguf/file_type.h"

#include <array>

#include "gguf/names.h"

namespace gguf {

namespace {

using F = FileType;
using T = TypeId;
constexpr FileTypeInfo live(F id, std::string_view name, T base, std::string_view description) { return {id, name, base, false, description}; }
constexpr FileTypeInfo retired(F id, std::string_view name) { return {id, name, T::F32, true, ""}; }

constexpr std::array kFileTypes = {
    live(F::F32, "F32", T::F32, "32-bit floats, unquantized"),
    live(F::F16, "F16", T::F16, "16-bit floats"),
    live(F::Q4_0, "Q4_0", T::Q4_0, "legacy 4-bit, one scale per 32 values"),
    live(F::Q4_1, "Q4_1", T::Q4_1, "legacy 4-bit, scale and minimum per 32 values"),
    retired(F::Q4_1_SOME_F16, "Q4_1_SOME_F16"),
    retired(F::Q4_2, "Q4_2"),
    retired(F::Q4_3, "Q4_3"),
    live(F::Q8_0, "Q8_0", T::Q8_0, "8-bit, one scale per 32 values"),
    live(F::Q5_0, "Q5_0", T::Q5_0, "legacy 5-bit, one scale per 32 values"),
    live(F::Q5_1, "Q5_1", T::Q5_1, "legacy 5-bit, scale and minimum per 32 values"),
    live(F::Q2_K, "Q2_K", T::Q2_K, "q2_K with q3_K/q4_K for attn_v and ffn_down, q6_K output"),
    live(F::Q3_K_S, "Q3_K_S", T::Q3_K, "q3_K throughout but the output (q6_K)"),
    live(F::Q3_K_M, "Q3_K_M", T::Q3_K, "q3_K with q4_K/q5_K for attn_v, ffn_down, attn_output"),
    live(F::Q3_K_L, "Q3_K_L", T::Q3_K, "q3_K with q5_K for attn_v, ffn_down, attn_output"),
    live(F::Q4_K_S, "Q4_K_S", T::Q4_K, "q4_K with q5_K for the first attn_v and ffn_down"),
    live(F::Q4_K_M, "Q4_K_M", T::Q4_K, "q4_K with q6_K for half of attn_v and ffn_down, and the output"),
    live(F::Q5_K_S, "Q5_K_S", T::Q5_K, "q5_K throughout but the output (q6_K)"),
    live(F::Q5_K_M, "Q5_K_M", T::Q5_K, "q5_K with q6_K for half of attn_v and ffn_down, and the output"),
    live(F::Q6_K, "Q6_K", T::Q6_K, "q6_K throughout"),
    live(F::IQ2_XXS, "IQ2_XXS", T::IQ2_XXS, "2-bit grid i-quant; needs an importance matrix"),
    live(F::IQ2_XS, "IQ2_XS", T::IQ2_XS, "2-bit grid i-quant; needs an importance matrix"),
    live(F::Q2_K_S, "Q2_K_S", T::Q2_K, "smaller q2_K mix; needs an importance matrix"),
    live(F::IQ3_XS, "IQ3_XS", T::IQ3_S, "iq3_s with iq3_xxs in places"),
    live(F::IQ3_XXS, "IQ3_XXS", T::IQ3_XXS, "3-bit grid i-quant; needs an importance matrix"),
    live(F::IQ1_S, "IQ1_S", T::IQ1_S, "1-bit grid i-quant; needs an importance matrix"),
    live(F::IQ4_NL, "IQ4_NL", T::IQ4_NL, "4-bit non-linear, one scale per 32 values"),
    live(F::IQ3_S, "IQ3_S", T::IQ3_S, "3-bit grid i-quant"),
    live(F::IQ3_M, "IQ3_M", T::IQ3_S, "iq3_s with larger types for attention and ffn_down"),
    live(F::IQ2_S, "IQ2_S", T::IQ2_XS, "iq2_xs with iq2_s/iq3 in places; needs an importance matrix"),
    live(F::IQ2_M, "IQ2_M", T::IQ2_S, "iq2_s with iq3 in places; needs an importance matrix"),
    live(F::IQ4_XS, "IQ4_XS", T::IQ4_XS, "4-bit non-linear, one scale per 32 values in superblocks of 256"),
    live(F::IQ1_M, "IQ1_M", T::IQ1_M, "1-bit grid i-quant with per-group scales"),
    live(F::BF16, "BF16", T::BF16, "bfloat16"),
    retired(F::Q4_0_4_4, "Q4_0_4_4"),
    retired(F::Q4_0_4_8, "Q4_0_4_8"),
    retired(F::Q4_0_8_8, "Q4_0_8_8"),
    live(F::TQ1_0, "TQ1_0", T::TQ1_0, "ternary, packed base 3"),
    live(F::TQ2_0, "TQ2_0", T::TQ2_0, "ternary, 2 bits each"),
    live(F::MXFP4_MOE, "MXFP4_MOE", T::MXFP4, "mxfp4 experts, q8_0 elsewhere"),
    live(F::NVFP4, "NVFP4", T::NVFP4, "4-bit floats with an fp8 scale per 16 values"),
    live(F::Q1_0, "Q1_0", T::Q1_0, "1-bit, one scale per 128 values"),
    live(F::Q2_0, "Q2_0", T::Q2_0, "2-bit, one scale per 64 values"),
};

constexpr bool ids_match_positions() {
    for (uint32_t i = 0; i < kFileTypes.size(); ++i)
        if (static_cast<uint32_t>(kFileTypes[i].id) != i) return false;
    return true;
}
static_assert(ids_match_positions(), "the file type table must be indexed by id");

}  // namespace

std::span<const FileTypeInfo> all_file_types() { return kFileTypes; }

const FileTypeInfo* find_file_type(uint32_t id) {
    id &= ~kFileTypeGuessed;
    return id < kFileTypes.size() ? &kFileTypes[id] : nullptr;
}

std::optional<FileType> file_type_from_name(std::string_view name) {
    for (const FileTypeInfo& f : kFileTypes)
        if (!f.retired && equal_ignoring_case(f.name, name)) return f.id;
    return std::nullopt;
}

std::string file_type_name(uint32_t id) {
    const std::string suffix = id & kFileTypeGuessed ? " (guessed)" : "";
    const FileTypeInfo* f = find_file_type(id);
    if (!f) return "unknown (" + std::to_string(id & ~kFileTypeGuessed) + ")" + suffix;
    const std::string name = f->id == FileType::F32 ? "ALL_F32" : "MOSTLY_" + std::string(f->name);
    return name + (f->retired ? " (retired)" : "") + suffix;
}

}  // namespace gguf
