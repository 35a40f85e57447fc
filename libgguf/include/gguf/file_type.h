// general.file_type: llama.cpp's id for the mix of tensor types a model file holds (what
// llama-quantize's TYPE names), and the storage type most of the mix's tensors get.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gguf/types.h"

namespace gguf {

inline constexpr uint32_t kFileTypeGuessed = 1024;  // flag llama.cpp sets when it guessed the type

// llama.cpp's file type ids, named as llama-quantize names the mixes.
enum class FileType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
    Q4_1_SOME_F16 = 4, Q4_2 = 5, Q4_3 = 6,  // retired
    Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15,
    Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, IQ2_XXS = 19, IQ2_XS = 20, Q2_K_S = 21, IQ3_XS = 22, IQ3_XXS = 23,
    IQ1_S = 24, IQ4_NL = 25, IQ3_S = 26, IQ3_M = 27, IQ2_S = 28, IQ2_M = 29, IQ4_XS = 30, IQ1_M = 31, BF16 = 32,
    Q4_0_4_4 = 33, Q4_0_4_8 = 34, Q4_0_8_8 = 35,  // retired
    TQ1_0 = 36, TQ2_0 = 37, MXFP4_MOE = 38, NVFP4 = 39, Q1_0 = 40, Q2_0 = 41,
};

struct FileTypeInfo {
    FileType id;
    std::string_view name;         // llama-quantize's name: "Q4_K_M", "F16"
    TypeId base;                   // what a tensor of the mix gets unless a per-tensor rule says otherwise
    bool retired;                  // the id once existed; nothing writes it now
    std::string_view description;  // for lists: what the mix holds
};

// Every id from 0 to the last, in id order.
std::span<const FileTypeInfo> all_file_types();
// The entry for `id` (the guessed flag cleared), or nullptr for an id nobody defined.
const FileTypeInfo* find_file_type(uint32_t id);
// Case-insensitive lookup by name ("q4_k_m"); retired names are not found.
std::optional<FileType> file_type_from_name(std::string_view name);

// "MOSTLY_Q4_K_M" for 15, "ALL_F32" for 0 (llama.cpp's spelling in general.file_type
// listings); retired ids read "MOSTLY_Q4_2 (retired)"; a guessed id gets " (guessed)"; an id
// nobody defined reads "unknown (N)".
std::string file_type_name(uint32_t id);

}  // namespace gguf
