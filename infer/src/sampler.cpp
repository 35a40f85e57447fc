#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace infer {

int32_t argmax(std::span<const float> logits) {
    if (logits.empty()) throw std::invalid_argument("infer: no logits to choose from");
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
    if (!(options.top_p > 0.0f && options.top_p <= 1.0f))
        throw std::invalid_argument("infer: top_p must be in (0, 1], not " + std::to_string(options.top_p));
    if (!std::isfinite(options.temperature)) throw std::invalid_argument("infer: the temperature must be a finite number");
}

int32_t Sampler::sample(std::span<const float> logits) {
    if (logits.empty()) throw std::invalid_argument("infer: no logits to choose from");
    // NaN would break the orderings below (and means broken weights): a plain error.
    for (size_t i = 0; i < logits.size(); ++i)
        if (std::isnan(logits[i])) throw std::runtime_error("infer: the logit of token " + std::to_string(i) + " is NaN (the model's weights or activations are not finite)");
    if (options_.temperature <= 0.0f) return argmax(logits);
    candidates_.clear();
    for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
    // Highest logit first, the lower id first among equals.
    const auto before = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    size_t n = candidates_.size();
    if (options_.top_k > 0 && options_.top_k < n) {
        n = options_.top_k;
        std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(n), candidates_.end(), before);
        candidates_.resize(n);
    } else {
        std::sort(candidates_.begin(), candidates_.end(), before);
    }
    const double max = candidates_[0].first, t = options_.temperature;
    probs_.resize(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += probs_[i] = std::exp((static_cast<double>(candidates_[i].first) - max) / t);
    // top_p: the smallest prefix whose probability reaches top_p.
    size_t keep = n;
    if (options_.top_p < 1.0f) {
        double cumulative = 0;
        for (size_t i = 0; i < n; ++i) {
            cumulative += probs_[i] / sum;
            if (cumulative >= options_.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double kept = 0;
    for (size_t i = 0; i < keep; ++i) kept += probs_[i];
    // A uniform double in [0, 1) from the top 53 bits.
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double target = u * kept;
    for (size_t i = 0; i < keep; ++i) {
        if (target < probs_[i]) return candidates_[i].second;
        target -= probs_[i];
    }
    return candidates_[keep - 1].second;  // rounding left the draw past the last
}

std::vector<int32_t> generate(const Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                              std::optional<int32_t> eos, const TokenCallback& on_token) {
    if (prompt.empty()) throw std::invalid_argument("infer: generation needs a prompt of at least one token");
    const uint32_t n_vocab = model.config().n_vocab;
    // The cache holds the prompt and what is generated, up to the model's trained context.
    const uint64_t wanted = uint64_t{prompt.size()} + options.max_tokens;
    const uint64_t limit = model.config().n_ctx_train ? model.config().n_ctx_train : wanted;
    if (prompt.size() >= limit)
        throw std::invalid_argument("infer: the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context holds " +
                                    std::to_string(limit));
    const uint64_t capacity = std::min(wanted, limit);
    Context ctx(model, static_cast<uint32_t>(capacity), options.eval);
    Sampler sampler(options.sampling);
    std::vector<float> logits(n_vocab);
    std::vector<int32_t> out;
    if (options.max_tokens == 0) return out;
    ctx.eval(prompt, logits, prompt.size() - 1);
    for (;;) {
        const int32_t token = sampler.sample(logits);
        out.push_back(token);
        if (on_token && !on_token(token)) break;
        if (options.stop_at_eos && eos && token == *eos) break;
        if (out.size() >= options.max_tokens || prompt.size() + out.size() >= capacity) break;  // asked for, or the context is full
        const int32_t one[1] = {token};
        ctx.eval(one, logits, 0);
    }
    return out;
}

}  // namespace infer
