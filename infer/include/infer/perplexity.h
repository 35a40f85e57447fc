// Perplexity and KL divergence over token ids, by llama-perplexity's method so the figures
// compare with its own:
//
// - The token ids (the whole text tokenized, BOS first where the vocabulary adds one) are
//   cut into chunks of n_ctx tokens; chunk i is tokens [i n_ctx, (i + 1) n_ctx), and there
//   are size / n_ctx of them (at least two are required), or max_chunks.
// - Each chunk is evaluated from an empty cache, its first token replaced by BOS when the
//   vocabulary adds one.
// - Only the second half is scored: the logits at positions first = n_ctx / 2 ... n_ctx - 2
//   predict tokens first + 1 ... n_ctx - 1 (n_ctx - 1 - first tokens per chunk).
// - Per scored token, nll = log(sum exp(logit - max)) + max - logit[token] (the sum in
//   double). PPL = exp(mean nll); its uncertainty is PPL x sqrt((mean nll^2 - mean nll^2) /
//   (count - 1)), as llama.cpp prints after "+/-".
//
// KL divergence compares MODEL with BASE on the same chunks, evaluated in lockstep, per
// scored position: KLD = sum over the vocabulary of p_base (log p_base - log p_model), the
// terms with log p_base <= -16 left out as llama.cpp does; Δp = p_model(token) -
// p_base(token); "same top" when both argmaxes agree. The statistics and their
// uncertainties are llama.cpp's (KldSummary).
//
// Nothing here prints; format_kld_summary() renders llama.cpp's summary text.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "infer/forward.h"

namespace infer {

struct PerplexityOptions {
    uint32_t n_ctx = 512;
    uint32_t max_chunks = 0;  // 0: every whole chunk of the text
    EvalOptions eval;
};

// The chunk count for `n_tokens` ids; throws std::invalid_argument when the text is shorter
// than two chunks (llama-perplexity's requirement) or n_ctx is below 2.
uint32_t chunk_count(size_t n_tokens, const PerplexityOptions& options);

// Chunk `index` as evaluated: n_ctx ids, the first replaced by BOS when `bos` is given.
std::vector<int32_t> chunk_tokens(std::span<const int32_t> tokens, uint32_t index, uint32_t n_ctx, std::optional<int32_t> bos);

// The negative log-likelihood of `token` under one row of logits (llama.cpp's log-softmax:
// max in float, the sum of exp in double).
double token_nll(std::span<const float> logits, int32_t token);

// Sums of per-token negative log-likelihoods.
struct NllSums {
    double sum = 0, sum2 = 0;
    uint64_t count = 0;
    void add(double nll) { sum += nll; sum2 += nll * nll; ++count; }
    double ppl() const;
    double ppl_uncertainty() const;  // llama.cpp's "+/-"
};

struct PerplexityResult {
    NllSums nll;
    std::vector<double> running_ppl;  // after each chunk, as llama.cpp prints [1]..., [2]...
    uint32_t chunks = 0;
    uint64_t tokens_evaluated = 0;    // chunks x n_ctx
    Arithmetic arithmetic = Arithmetic::F32;
    MemoryFigures memory;
};

// `on_chunk(done, total, running_ppl)`, when given, is called after each chunk.
using ChunkCallback = std::function<void(uint32_t done, uint32_t total, double running_ppl)>;
PerplexityResult perplexity(const Model& model, std::span<const int32_t> tokens, const PerplexityOptions& options,
                            const ChunkCallback& on_chunk = {});

// ---- KL divergence ---------------------------------------------------------------------

// Per-token sums and values, added one scored position at a time.
class KldAccumulator {
public:
    // What one scored position contributes (a pure function of its logits, so positions can
    // be measured on several threads and added in order).
    struct Position {
        double nll = 0, nll_base = 0, kld = 0, p_diff = 0;
        bool same_top = false;
    };
    static Position measure(std::span<const float> logits, std::span<const float> base_logits, int32_t token);
    void add(const Position& p);
    // One scored position: the model's and the base's logits (n_vocab each) and the token
    // that follows.
    void add(std::span<const float> logits, std::span<const float> base_logits, int32_t token) { add(measure(logits, base_logits, token)); }

    NllSums nll, nll_base;
    double sum_nll_nll_base = 0;
    double sum_kld = 0, sum_kld2 = 0;
    double sum_p_diff = 0, sum_p_diff2 = 0, sum_p_diff4 = 0;
    double max_p_diff = 0;
    uint64_t same_top = 0, count = 0;
    std::vector<float> kld_values, p_diff_values;
};

// A value and its uncertainty, as llama.cpp prints "X ± Y".
struct Estimate {
    double value = 0, uncertainty = 0;
};

// What llama-perplexity --kl-divergence prints at the end (and per chunk: ppl, ln_ratio,
// kld, rms_p_diff, same_top).
struct KldSummary {
    Estimate ppl, ppl_base, ln_ratio, ratio, difference;
    double correlation = 0;  // of the per-token log-likelihoods
    Estimate kld;
    double kld_max = 0, kld_min = 0, kld_median = 0;
    double kld_p999 = 0, kld_p99 = 0, kld_p95 = 0, kld_p90 = 0, kld_p10 = 0, kld_p05 = 0, kld_p01 = 0, kld_p001 = 0;
    Estimate p_diff_mean, p_diff_rms;  // fractions (llama.cpp prints percent)
    double p_diff_max = 0, p_diff_min = 0, p_diff_median = 0;
    double p_diff_p999 = 0, p_diff_p99 = 0, p_diff_p95 = 0, p_diff_p90 = 0, p_diff_p75 = 0, p_diff_p25 = 0, p_diff_p10 = 0,
           p_diff_p05 = 0, p_diff_p01 = 0, p_diff_p001 = 0;
    Estimate same_top;  // a fraction
    uint64_t count = 0;
};
KldSummary summarize(const KldAccumulator& a);

// llama.cpp's interpolated percentile of sorted values (fraction in [0, 1]).
double percentile(std::span<const float> sorted, double fraction);

struct KldOptions {
    uint32_t n_ctx = 512;
    uint32_t max_chunks = 0;
    EvalOptions eval;  // both models
};

struct KldResult {
    KldAccumulator totals;
    std::vector<KldSummary> per_chunk;  // running figures after each chunk (percentiles left 0)
    uint32_t chunks = 0;
    uint64_t tokens_evaluated = 0;      // per model
    Arithmetic arithmetic = Arithmetic::F32;
    MemoryFigures memory, memory_base;
};

// MODEL against BASE on the same chunks (the chunks' BOS taken from BASE's vocabulary; the
// vocabularies must have the same size). Throws std::invalid_argument otherwise.
KldResult kl_divergence(const Model& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const ChunkCallback& on_chunk = {});

// llama.cpp's closing report: "====== Perplexity statistics ======" ... "Same top p: ...".
std::string format_kld_summary(const KldSummary& s);

}  // namespace infer
