// Hugging Face checkpoints to GGUF: config.json read through a table of architectures (the
// Hugging Face class, the GGUF architecture, each tensor's Hugging Face name by role), the
// safetensors weights streamed from their mapping into the writer, converted on the way.
//
// What is written follows llama.cpp's converter: its metadata keys; 1-D tensors (norms,
// biases) as F32; for llama and mistral the rows of Q and K permuted from Hugging Face's
// rotate-half rotary layout to GGUF's interleaved pairs (qwen2 and qwen3 keep rotate-half,
// which GGUF calls NeoX); no output.weight when the embeddings are tied.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "convert/hf_quant.h"
#include "convert/safetensors.h"
#include "gguf/split.h"
#include "gguf/types.h"
#include "gguf/value.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

namespace convert {

// config.json, the fields the converter reads.
struct HfConfig {
    std::string architecture;  // architectures[0]: "LlamaForCausalLM"
    std::string name;          // the folder's name (general.name)
    uint32_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
    uint32_t num_attention_heads = 0, num_key_value_heads = 0, max_position_embeddings = 0;
    uint32_t head_dim = 0;  // given explicitly (Qwen3), else hidden_size / num_attention_heads
    double rms_norm_eps = 1e-6, rope_theta = 10000.0;
    bool tie_word_embeddings = false;
    uint32_t num_experts = 0, num_experts_per_tok = 0;  // num_local_experts (Mixtral) or num_experts (Qwen3-MoE)
    uint32_t moe_intermediate_size = 0;                 // an expert's width (intermediate_size when not given)
    std::string rope_scaling_type;  // "", "linear", "yarn", "llama3"
    double rope_scaling_factor = 0;
    uint32_t rope_original_context = 0;
    double rope_low_freq_factor = 1, rope_high_freq_factor = 4;  // llama3
};
// Throws std::runtime_error naming config.json and the field.
HfConfig read_config(const std::filesystem::path& folder);

// The Hugging Face classes the converter knows ("LlamaForCausalLM", ...).
std::vector<std::string> supported_architectures();

// Output: a tensor type as llama.cpp's converter writes it (f32, f16, bf16, q8_0: every
// matrix of that type), "auto" (F16 and BF16 sources keep their type, F32 ones become F16;
// quantized layers become BF16 in a BF16 model, else F16), "lossless" (every tensor in a
// type that holds its values exactly: dense ones keep their type, quantized layers take the
// GGUF type of QuantizedTensor::lossless_type, written from their codes, or F32), or any
// type or mix `gguf requant` accepts (Q4_K_M, IQ4_XS, ...): llama.cpp's per-tensor rules
// (requant/plan.h) on the converted tensors, each row quantized straight from the
// checkpoint (no intermediate file), with importance weights from `imatrix` when given.
// Quantized checkpoints (convert/hf_quant.h) are decoded exactly on the way.
struct ConvertOptions {
    std::string outtype = "auto";
    const quant::ImportanceMatrix* imatrix = nullptr;
    quant::Effort effort = quant::Effort::Default;  // how hard the quantizers search (gguf requant --effort)
    std::vector<std::pair<std::string, gguf::OwnedValue>> extra_keys;  // set last (tokenizer, --metadata)
    bool tokenizer = true;  // false: no tokenizer keys (a plan read for its weights alone)
};

// One output tensor: its GGUF name, type and shape (ne[0] first), and where it comes from.
struct TensorPlan {
    std::string name;
    gguf::TypeId type;
    std::vector<uint64_t> shape;
    const SafeTensor* source;                // expert 0's for a stacked tensor; nullptr for a computed one
    std::vector<const SafeTensor*> sources;  // a stacked expert tensor's sources, expert by expert
    std::vector<float> values;               // a computed tensor's values (rope_freqs.weight), F32
    // A quantized layer's decoder (one per expert for a stacked tensor); `source` is then its
    // packed codes.
    std::vector<std::shared_ptr<const QuantizedTensor>> quantized;
    bool exact_blocks = false;   // `type` is quantized[...]->lossless_type(): blocks written from the codes
    uint32_t permute_heads = 0;  // > 0: Q/K rows permuted with this many heads
    uint64_t rows() const {
        uint64_t n = 1;
        for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
        return n;
    }
    const std::vector<float>* importance = nullptr;  // per column, for the quantizer
};

struct Plan {
    HfConfig config;
    QuantConfig quantization;  // the checkpoint's (method None for a dense one)
    std::string arch;  // GGUF architecture
    std::vector<std::pair<std::string, gguf::OwnedValue>> keys;
    std::vector<TensorPlan> tensors;
    uint32_t file_type = 0;  // general.file_type
    std::string tokenizer;   // what the tokenizer keys hold ("gpt2 (llama-bpe), 128256 tokens"); "" without one
    quant::Effort effort = quant::Effort::Default;  // ConvertOptions::effort, for the quantized types
};

// Output rows [begin, end) of `t` as F32, exactly as the checkpoint defines them (dense
// sources widened, quantized layers decoded), in GGUF's order (Q/K rows permuted, experts
// stacked): rows x shape[0] values into `out`. Safe to call from several threads.
void decode_rows(const TensorPlan& t, uint64_t begin, uint64_t end, float* out);

// The GGUF type --outtype lossless writes a quantized tensor in: one type that holds every
// expert's values exactly (QuantizedTensor::lossless_type), or nothing (then F32).
std::optional<gguf::TypeId> lossless_type(const TensorPlan& t);

// What convert() writes, without writing it: the metadata, the tokenizer's keys
// (convert/hf_tokenizer.h) when the folder has tokenizer.json or tokenizer.model, each
// tensor. Throws std::runtime_error naming the file and tensor for an unknown architecture,
// a missing or unexpected tensor, a shape that contradicts the config, a dtype the converter
// does not read, a tokenizer it cannot convert.
Plan plan(const std::filesystem::path& folder, const Checkpoint& weights, const ConvertOptions& options);
// The vocabulary alone (llama.cpp's --vocab-only): config.json's name and vocabulary size and
// the tokenizer's keys, no tensors; the weights need not be there.
Plan vocab_only_plan(const std::filesystem::path& folder, const ConvertOptions& options);


// What writing an imported (quantized) tensor in its output type cost: the written values
// against the exact decoded ones.
struct ImportError {
    std::string name;  // the GGUF tensor
    std::string kind;  // QuantizedTensor::kind()
    gguf::TypeId type;
    bool exact = false;  // written losslessly (error 0 by construction; still measured)
    double rmse = 0, max_abs = 0, rms = 0;  // rms: of the exact values
    uint64_t values = 0;
};

// Writes `out` (a temporary file renamed into place when complete), or with `split` limits a
// split set partitioned as llama-gguf-split does (gguf/split.h; all parts or none), rows converted on `threads` threads (0: every core). `progress(done, total)` after
// each tensor. With `import_errors`, one entry per quantized source tensor, in plan order,
// summed in row order (the same figures for every thread count). Returns the files written.
std::vector<std::filesystem::path> write(const Plan& plan, const std::filesystem::path& out,
                                         const std::function<void(size_t, size_t)>& progress = {}, int threads = 0,
                                         gguf::SplitLimits split = {}, std::vector<ImportError>* import_errors = nullptr);

}  // namespace convert
