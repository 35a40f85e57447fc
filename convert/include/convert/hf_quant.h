// Quantized Hugging Face checkpoints, read exactly: GPTQ (v1 and v2, 2/3/4/8 bits, act-order),
// AWQ (GEMM and GEMV packing), bitsandbytes (NF4 and FP4 with double-quantized absmax,
// LLM.int8), FP8 (E4M3/E5M2 with block, channel or tensor scales) and compressed-tensors
// (pack-quantized int4/int8, int8 W8A8, float-quantized FP8). spec/hf-quantized.md has each
// layout and formula and where it comes from.
//
// A quantized linear layer is decoded row by row (output channel n, its K input values) to
// the exact value its format defines, in F32: W[n][k] = s x (q - z) for the integer formats
// (a product that F32 holds exactly), the format's own F32 products for bitsandbytes and
// FP8. Where a GGUF type holds those values exactly (spec/hf-quantized.md §7: Q4_0, Q4_1,
// Q4_K, Q3_K, Q8_0 under conditions on groups, zeros and scales) `lossless_type` names it
// and `encode_lossless` writes its blocks directly from the codes, so no second rounding
// is added.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "convert/safetensors.h"
#include "gguf/types.h"

namespace convert {

enum class QuantMethod : uint8_t { None, Gptq, Awq, Bitsandbytes, Fp8, CompressedTensors };

// compressed-tensors: one entry of config_groups.
struct CtGroup {
    std::vector<std::string> targets;  // "Linear", a module name, or "re:" + a regular expression
    std::string format;                // this group's format, or the global one
    uint32_t num_bits = 0;
    std::string type;      // "int" or "float"
    bool symmetric = true;
    std::string strategy;  // "tensor", "channel", "group", "block"
    int64_t group_size = 0;
    uint32_t block_rows = 0, block_cols = 0;  // strategy "block": block_structure
};

// config.json's quantization_config (or quantize_config.json), the fields the import reads.
struct QuantConfig {
    QuantMethod method = QuantMethod::None;
    std::string source;  // the file it came from, for messages
    // GPTQ / AWQ
    uint32_t bits = 0;
    int64_t group_size = 0;  // -1: one group per row
    bool sym = true;         // GPTQ sym; AWQ: !zero_point
    bool desc_act = false;
    bool gptq_v2 = false;    // checkpoint_format "gptq_v2": zeros stored as they are
    bool has_dynamic = false;  // GPTQ per-module overrides: bits read from the shapes
    std::string awq_version;   // "gemm" or "gemv"
    // bitsandbytes
    bool load_in_4bit = false, load_in_8bit = false;
    // FP8 (DeepSeek style)
    uint32_t block_rows = 0, block_cols = 0;  // weight_block_size
    // compressed-tensors
    std::string format;
    std::vector<CtGroup> groups;
    std::vector<std::string> ignore;
    std::string describe() const;  // "GPTQ 4-bit, groups of 128, symmetric (v1)"
};

// Reads `folder`'s quantization settings: config.json's quantization_config, else
// quantize_config.json (GPTQ's own file), else method None. Throws std::runtime_error naming
// the file and field for a method that is not read, unsupported bits, a bad group size.
QuantConfig read_quant_config(const std::filesystem::path& folder);

// The GGUF types `encode_lossless` writes, in the order `lossless_type` prefers them.
std::span<const gguf::TypeId> lossless_types();

// One quantized linear layer's weight, N rows (output channels) of K values.
class QuantizedTensor {
public:
    virtual ~QuantizedTensor() = default;
    const std::string& module() const { return module_; }  // "model.layers.0.self_attn.q_proj"
    uint64_t rows() const { return rows_; }
    uint64_t cols() const { return cols_; }
    // "GPTQ 4-bit g128 sym v1", "NF4 (blocks of 64, double-quantized)": for messages and tables.
    const std::string& kind() const { return kind_; }
    // The checkpoint's tensors that hold it (the packed codes first).
    const std::vector<const SafeTensor*>& parts() const { return parts_; }
    // Bits per weight as stored: every byte of parts() over rows x cols.
    double bits_per_weight() const;
    // What the reader accepted but a user should hear about (a GPTQ v1 zero field that may
    // have wrapped).
    const std::vector<std::string>& warnings() const { return warnings_; }

    // Rows [n0, n0 + count) as F32, row after row (count x cols values).
    virtual void decode(uint64_t n0, uint64_t count, float* out) const = 0;

    // A GGUF type that holds these exact values (its blocks written by encode_lossless), or
    // nothing: the decision reads the zeros and scales (not the codes).
    virtual std::optional<gguf::TypeId> lossless_type() const { return std::nullopt; }
    // Row n in `type` (which lossless_type() returned): `out` has the row's bytes.
    virtual void encode_lossless(gguf::TypeId type, uint64_t n, std::span<uint8_t> out) const;

protected:
    std::string module_, kind_;
    std::vector<std::string> warnings_;
    uint64_t rows_ = 0, cols_ = 0;
    std::vector<const SafeTensor*> parts_;
};

// The quantized form of `module` (the Hugging Face name without ".weight") in `weights`, if
// the checkpoint stores it quantized; nothing when the module is dense (a plain F32/F16/BF16
// `.weight`) or absent. `rows` x `cols` is the shape config.json implies. Every checkpoint
// tensor it reads (scales, zeros, the per-tensor JSON...) is added to `used`. Throws
// std::runtime_error naming the file and tensor for a missing scale or zero point, an
// unsupported width or layout, shapes that contradict each other or the config.
std::unique_ptr<QuantizedTensor> find_quantized(const Checkpoint& weights, const QuantConfig& config, const std::string& module, uint64_t rows,
                                                uint64_t cols, std::vector<std::string>& used);

// ---- Number formats the importers share (spec/hf-quantized.md §4.1) ---------------------
float fp8_e4m3_to_f32(uint8_t v);
float fp8_e5m2_to_f32(uint8_t v);
// bitsandbytes' 4-bit code tables (index -> value).
const std::array<float, 16>& nf4_table();
const std::array<float, 16>& bnb_fp4_table();

}  // namespace convert
