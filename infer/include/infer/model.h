// A llama-family model ready for the forward pass: its hyperparameters read once from the
// metadata, and its weights as views into the memory-mapped file, in their own types.
//
// The matrices are never dequantized whole: the forward pass hands them to kernels::matmul
// as they lie in the file (the token embedding is read one row per token). Only the small
// one-dimensional tensors (norm weights, biases: a few KiB each) are converted to f32 when
// the model is loaded.
//
// Architectures (general.architecture), as llama.cpp builds them:
//   llama (mistral's files say llama too): rotary embeddings on interleaved pairs
//     (x[2i], x[2i+1]); biases on q/k/v/o used where a file has them.
//   qwen2: the NeoX pairing (x[i], x[i + d/2]) and biases on q, k and v.
//   qwen3: the NeoX pairing and an RMSNorm of each query and key head (attn_q_norm,
//     attn_k_norm) before the rotation.
// All of them: RMSNorm before attention and feed-forward, grouped-query attention, SwiGLU,
// a final RMSNorm, and the output matrix (the token embedding when output.weight is absent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/model.h"
#include "gguf/types.h"

namespace infer {

// Which elements the rotation pairs up.
enum class RopePairing : uint8_t {
    Normal,  // (x[2i], x[2i+1]): llama
    NeoX,    // (x[i], x[i + n_dims/2]): qwen2, qwen3
};

enum class RopeScaling : uint8_t { None, Linear, Yarn };

struct RopeParams {
    uint32_t n_dims = 0;         // rope.dimension_count: the leading dimensions of each head that rotate
    float freq_base = 10000.0f;  // rope.freq_base
    RopePairing pairing = RopePairing::Normal;
    RopeScaling scaling = RopeScaling::None;
    float freq_scale = 1.0f;     // 1 / rope.scaling.factor (linear and YaRN)
    // YaRN (rope.scaling.type = yarn): the training context, and the ramp between the
    // interpolated and extrapolated frequencies (llama.cpp's defaults: beta_fast 32, beta_slow 1).
    uint32_t n_ctx_orig = 0;
    float ext_factor = 0.0f;     // 1 for YaRN, 0 otherwise
    float attn_factor = 1.0f;    // rope.scaling.attn_factor (YaRN's magnitude scaling multiplies it)
    float beta_fast = 32.0f, beta_slow = 1.0f;
    // rope_freqs.weight when the file has one (n_dims / 2 values): pair i's angle divided by
    // factor i (Llama 3.1's frequency-dependent scaling, as llama.cpp's converter writes it).
    std::vector<float> freq_factors;
};

struct Config {
    std::string arch;            // general.architecture
    uint32_t n_vocab = 0;        // rows of token_embd
    uint32_t n_embd = 0, n_layer = 0, n_ff = 0, n_ctx_train = 0;
    uint32_t n_head = 0, n_head_kv = 0;
    uint32_t head_dim = 0;       // attention.key_length, else n_embd / n_head
    float rms_eps = 1e-5f;       // attention.layer_norm_rms_epsilon
    RopeParams rope;
    // Mixture of experts (Mixtral, written as llama; qwen3moe): expert_count experts per
    // layer, expert_used_count of them per token, chosen by a router (softmax over its
    // logits, the top ones, their probabilities renormalized to sum 1). 0: a dense model.
    uint32_t n_expert = 0, n_expert_used = 0;
    uint32_t n_ff_expert = 0;    // an expert's feed-forward width (qwen3moe: expert_feed_forward_length)
    bool tied_output = false;    // no output.weight: the token embedding produces the logits
    // The vocabulary's beginning-of-sequence token and whether it is prepended, as
    // infer::Tokenizer decides them (no vocabulary in the file: no BOS).
    std::optional<int32_t> bos;
    bool add_bos = false;
};

// A matrix as it lies in the file: rows of `cols` values of `type`, row r at data + r x row_bytes.
// In ggml's terms ne[0] = cols (the length each input vector must have), ne[1] = rows (outputs).
struct Matrix {
    gguf::TypeId type = gguf::TypeId::F32;
    const uint8_t* data = nullptr;
    int64_t rows = 0, cols = 0, row_bytes = 0;
    uint64_t bytes() const { return static_cast<uint64_t>(rows) * static_cast<uint64_t>(row_bytes); }
};

struct Layer {
    std::vector<float> attn_norm;
    Matrix wq, wk, wv, wo;
    std::vector<float> bq, bk, bv, bo;   // empty where the file has no bias
    std::vector<float> q_norm, k_norm;   // qwen3: head_dim each; empty otherwise
    std::vector<float> ffn_norm;
    Matrix ffn_gate, ffn_up, ffn_down;   // dense layers
    // Mixture of experts: the router (n_expert rows) and each expert's matrices, views into
    // the 3-D ffn_{gate,up,down}_exps tensors (expert e at rows e x n_ff_expert ...).
    Matrix ffn_gate_inp;
    std::vector<Matrix> gate_exps, up_exps, down_exps;
    bool moe() const { return !gate_exps.empty(); }
};

// Throws std::runtime_error naming what is missing or inconsistent: an architecture other than
// llama, qwen2, qwen3 (and qwen3moe), a missing hyperparameter or tensor, a shape that does not fit the others,
// a type kernels/ cannot dequantize. The gguf::Model must outlive this object.
class Model {
public:
    explicit Model(const gguf::Model& file);

    const Config& config() const { return config_; }
    const gguf::Model& file() const { return *file_; }
    const Matrix& token_embd() const { return token_embd_; }
    const Matrix& output() const { return output_; }   // token_embd() when tied
    std::span<const float> output_norm() const { return output_norm_; }
    std::span<const Layer> layers() const { return layers_; }
    // Bytes of the mapped weights the forward pass reads (the tied matrix once).
    uint64_t weight_bytes() const { return weight_bytes_; }
    // Maps in the pages of every matrix the products read whole (gguf::File::map_in): each
    // layer's and the output, so that evaluation takes no page faults on them. Not the token
    // embedding where it is only that: read a row per token, its pages stay out (llama.cpp's
    // loader maps the whole file in, this included). Call when the products run on this
    // machine's CPU.
    void map_in() const;

private:
    const gguf::Model* file_;
    Config config_;
    Matrix token_embd_, output_;
    std::vector<float> output_norm_;
    std::vector<Layer> layers_;
    uint64_t weight_bytes_ = 0;
};

}  // namespace infer
