// Importance matrices computed by evaluating text, by llama-imatrix's method, so the result
// can stand in for the one it writes:
//
// - The text's token ids (BOS first where the vocabulary adds one) are cut into chunks of
//   n_ctx tokens exactly as for perplexity (infer/perplexity.h: size / n_ctx chunks, at least
//   two, or max_chunks; each from an empty cache, its first token replaced by BOS when the
//   vocabulary adds one). Each chunk is evaluated in one batch, every token with its logits.
// - For every weight matrix that multiplies activations inside the layers (blk.N.attn_q,
//   attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down), and output.weight only with
//   process_output (never a tied output: llama-imatrix would see token_embd.weight, which it
//   does not collect), per input column: the sum over every evaluated token (all n_ctx of each
//   chunk) of the square of the f32 activation entering the product, summed in float in
//   token order; and per matrix the count of those tokens. With a mixture of experts, the
//   router (ffn_gate_inp) as any matrix, and each expert tensor (ffn_{gate,up,down}_exps)
//   expert by expert: the sums and count of the tokens routed to that expert, as
//   llama-imatrix keeps them. llama-imatrix ignores products of fewer than 16 activation
//   columns; a chunk is one product here, so n_ctx below 16 is refused.
// - As llama-imatrix does alongside, the perplexity of each chunk's second half.
//
// The sums are accumulated column by column across the executor's threads, each column in
// token order, so the result is the same for any thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "infer/forward.h"
#include "infer/perplexity.h"
#include "quant/imatrix.h"

namespace infer {

// Collects the statistic from the products a Context reports (Context::set_observer).
class ImatrixCollector : public MatmulObserver {
public:
    // Watches `model`'s layer matrices, and its output matrix when `process_output`.
    // `threads` as EvalOptions::threads.
    ImatrixCollector(const Model& model, bool process_output, int threads = 0);

    void on_matmul(const Matrix& w, const float* x, int64_t n) override;

    // What has been collected: one entry per matrix that has seen a product, by its tensor
    // name; datasets and chunk fields left for the caller.
    quant::ImportanceMatrix matrix() const;

private:
    struct Watched {
        std::string name;
        int64_t cols = 0;
        std::vector<float> sums;      // experts x cols, expert by expert
        std::vector<uint64_t> counts;  // per expert (one for a plain matrix)
    };
    struct Index {
        const Matrix* matrix;
        size_t watched, expert;
        bool operator<(const Index& o) const { return matrix < o.matrix; }
    };
    std::vector<Index> index_;  // matrix address -> watched_ and expert, sorted
    std::vector<Watched> watched_;
    int threads_;
};

struct ImatrixOptions {
    uint32_t n_ctx = 512;      // llama-imatrix's default context
    uint32_t max_chunks = 0;   // 0: every whole chunk of the text
    bool process_output = false;
    EvalOptions eval{Arithmetic::Ggml, 0};  // as llama.cpp's CPU backend computes by default
    std::vector<std::string> datasets;      // imatrix.datasets of the result
};

struct ImatrixResult {
    quant::ImportanceMatrix matrix;  // chunk_count = chunks, chunk_size = n_ctx
    NllSums nll;                     // second halves of the chunks, as perplexity()
    uint32_t chunks = 0;
    uint64_t tokens_evaluated = 0;
    MemoryFigures memory;
};

// `on_chunk(done, total, running_ppl)` after each chunk. Throws std::invalid_argument for a
// text shorter than two chunks or n_ctx below 16.
ImatrixResult compute_imatrix(const Model& model, std::span<const int32_t> tokens, const ImatrixOptions& options,
                              const ChunkCallback& on_chunk = {});

}  // namespace infer
