// Choosing the next token from logits, and text generation with it.
//
// Greedy (temperature 0, the default) takes the highest logit (the lowest id among equals).
// With a temperature T > 0 the candidates are the top_k highest logits (all when 0), their
// probabilities softmax(logit / T); top_p keeps the smallest set of the most probable whose
// probabilities add up to at least top_p (at least one); one is drawn from those in
// proportion to their probabilities. The random numbers come from std::mt19937_64 seeded
// with `seed`, turned into a uniform double by this code (not a standard distribution,
// whose output differs between standard libraries): the same seed gives the same tokens
// on every machine.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "infer/forward.h"

namespace infer {

struct SamplerOptions {
    float temperature = 0.0f;  // <= 0: greedy
    uint32_t top_k = 0;        // 0: no limit
    float top_p = 1.0f;        // 1: no limit
    uint64_t seed = 0;
};

// The index of the largest value (the first among equals). Throws std::invalid_argument for
// an empty span.
int32_t argmax(std::span<const float> logits);

class Sampler {
public:
    // Throws std::invalid_argument for top_p outside (0, 1] or a temperature that is not finite.
    explicit Sampler(const SamplerOptions& options = {});
    const SamplerOptions& options() const { return options_; }
    int32_t sample(std::span<const float> logits);

private:
    SamplerOptions options_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> candidates_;
    std::vector<double> probs_;
};

struct GenerateOptions {
    uint32_t max_tokens = 64;
    SamplerOptions sampling;
    EvalOptions eval;
    bool stop_at_eos = true;  // stop after the vocabulary's EOS (the model's tokenizer.ggml.eos_token_id)
};

// Called with each generated token as it comes; returning false stops the generation.
using TokenCallback = std::function<bool(int32_t token)>;

// Evaluates `prompt` (at least one token) in one batch, then samples and evaluates one token
// at a time: up to max_tokens tokens, or up to and including EOS. Returns the generated tokens.
// `eos` is the id that ends the generation (none: only max_tokens does).
std::vector<int32_t> generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                              std::optional<int32_t> eos = std::nullopt, const TokenCallback& on_token = {});

}  // namespace infer
