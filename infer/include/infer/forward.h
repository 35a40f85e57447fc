// The forward pass: token ids in, next-token logits out, with a KV cache.
//
// A Context evaluates a batch of tokens at the positions after those already in its cache
// (a whole chunk at once for perplexity, one token at a time for generation) and keeps
// their keys and values. Each matrix product runs through kernels::matmul with the weights
// in their own types, its output rows split across the executor's threads; every output
// value is computed alone, in the same order whatever the thread count and batch size, so
// the results are the same bits with 1 thread or 16, batched or token by token. (The one
// exception: attention's value product runs over the whole batch's keys, the later ones
// with probability 0, and 0 x inf is NaN: a value that overflows the ggml arithmetic's f16
// cache poisons the batch's earlier queries too, as in llama.cpp.) A MatmulBackend's
// products (a GPU) have their own arithmetic.
//
// Nothing is printed; what the pass holds in memory is reported by memory().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/model.h"

namespace infer {

// How the activations meet the weights.
enum class Arithmetic : uint8_t {
    // f32 activations against dequantized weights (kernels' DequantizedPanel), f32 KV cache:
    // what the weights alone lose.
    F32,
    // As llama.cpp's CPU backend computes: each matrix product's input rounded to the weight
    // type's activation format (8-bit blocks Q8_0 / Q8_K for quantized weights, f16 for F16,
    // bf16 for BF16), keys and values stored as f16 (its default cache type), attention
    // itself in f32. The rounded activations then meet the dequantized weights in the same
    // f32 product as F32 (kernels' DequantizedPanel with round_activations): the values
    // llama.cpp multiplies, summed in float instead of ggml's integer blocks, so figures agree
    // with llama-perplexity's to float rounding.
    Ggml,
};
std::string_view arithmetic_name(Arithmetic a);  // "f32", "ggml"

// Where the weight products run instead of the CPU kernels: a GPU (infer/cuda.h, in builds
// with CUDA). The attention and everything elementwise stay on the CPU. Called from the
// evaluating thread only (a Context's products are sequential); one backend may serve
// several Contexts used one after the other, not at once.
class MatmulBackend {
public:
    virtual ~MatmulBackend() = default;
    virtual std::string_view name() const = 0;  // "CUDA: NVIDIA H200"
    // y = W x for n vectors (x: n x w.cols floats, y: n x w.rows), W one of the model's
    // matrices (by address, as MatmulObserver sees them). Returns false, computing nothing,
    // for a matrix the backend leaves to the CPU.
    virtual bool matmul(const Matrix& w, const float* x, int64_t n, float* y) = 0;
};

struct EvalOptions;
// Where the weight products of an evaluation with `options` run, for records and warnings:
// "cpu avx512", "cpu avx2", "cpu scalar" (kernels' active path), or the backend's name. The
// same text on two machines means the same bits for the same model and arithmetic.
std::string product_path(const EvalOptions& options);

struct EvalOptions {
    Arithmetic arithmetic = Arithmetic::F32;
    int threads = 0;  // 0: every thread of quant::default_executor()
    // Runs the weight products (nullptr: the CPU kernels); must outlive the Context. The
    // backend's arithmetic is its own (a GPU rounds both factors to f16, whatever
    // `arithmetic` says; keys and values are stored as `arithmetic` says).
    MatmulBackend* backend = nullptr;
};

// Bytes held by the forward pass. Peak resident memory is about their sum.
struct MemoryFigures {
    uint64_t mapped_weights = 0;  // the weight bytes read through the mapping (Model::weight_bytes)
    uint64_t kv_cache = 0;        // keys and values for n_ctx positions, every layer
    uint64_t activations = 0;     // the largest the per-batch buffers have been
};

// Sees every product of a weight matrix with activations, before it is computed: `w` (one
// of the model's matrices, by address: Model::layers(), Model::output()) times the n
// activation columns at x (n x w.cols floats, token by token). The attention products of
// queries with keys and values are not weight products and are not reported. The observer
// is called on the evaluating thread, between products; with none set (the default) the
// forward pass checks one pointer per product and nothing else.
class MatmulObserver {
public:
    virtual ~MatmulObserver() = default;
    virtual void on_matmul(const Matrix& w, const float* x, int64_t n) = 0;
};

class Context {
public:
    // A cache for n_ctx positions. Throws std::invalid_argument for n_ctx 0.
    Context(const Model& model, uint32_t n_ctx, EvalOptions options = {});

    const Model& model() const { return *model_; }
    uint32_t n_ctx() const { return n_ctx_; }
    uint32_t n_past() const { return n_past_; }  // positions in the cache
    const EvalOptions& options() const { return options_; }
    void clear() { n_past_ = 0; }                // an empty cache
    // Reports each weight product to `observer` (nullptr: to nobody); it must outlive the
    // evaluations it observes.
    void set_observer(MatmulObserver* observer) { observer_ = observer; }

    // Evaluates `tokens` at positions n_past() ... n_past() + size - 1, adds them to the
    // cache, and writes the logits of tokens first_logit ... size - 1 into `logits`
    // ((size - first_logit) x n_vocab floats, token by token). Throws std::out_of_range for a
    // token id outside the vocabulary or more tokens than the cache has room for, and
    // std::invalid_argument when `logits` has the wrong size.
    void eval(std::span<const int32_t> tokens, std::span<float> logits, size_t first_logit = 0);

    MemoryFigures memory() const;
    // What memory() reports for a Context of n_ctx positions once it has evaluated batches of
    // at most `batch` tokens: known before any evaluation, for printing at the start.
    static MemoryFigures planned_memory(const Model& model, uint32_t n_ctx, int64_t batch);

private:
    void embed(std::span<const int32_t> tokens, float* x);
    void matmul(const Matrix& w, const float* x, int64_t n, float* y);
    void attention_block(const Layer& l, uint32_t layer, int64_t n);
    void ffn_block(const Layer& l, int64_t n);
    void ffn_experts(const Layer& l, int64_t n);
    void rope(float* v, int64_t begin, int64_t end, uint32_t heads) const;
    void attend(uint32_t layer, int64_t n);
    void grow(int64_t n);

    const Model* model_;
    uint32_t n_ctx_;
    EvalOptions options_;
    uint32_t n_past_ = 0;
    int64_t capacity_ = 0;                 // batch size the buffers hold
    std::vector<float> k_cache_;            // [layer][position][kv_dim]
    std::vector<float> v_cache_;            // [layer][kv_dim][position]: rows of the attention's value product
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_;
    std::vector<float> moe_router_, moe_out_;  // mixture of experts: router logits, chosen experts' outputs
    std::vector<float> rope_cos_, rope_sin_;  // [position in batch][n_dims / 2]
    uint64_t peak_activations_ = 0;
    MatmulObserver* observer_ = nullptr;
};

}  // namespace infer
