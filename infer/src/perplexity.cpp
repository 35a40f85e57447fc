#include "infer/perplexity.h"

#include "infer/kld_base.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "quant/executor.h"

namespace infer {

namespace {

// A row's log-softmax pieces: its maximum (and where), and log(sum exp(x - max)), the sum
// of exp in double as llama.cpp does.
struct LogSoftmax {
    float max = 0;
    size_t argmax = 0;
    double log_sum = 0;
};

LogSoftmax log_softmax(std::span<const float> x) {
    LogSoftmax r;
    r.max = x[0];
    for (size_t i = 1; i < x.size(); ++i)
        if (x[i] > r.max) {
            r.max = x[i];
            r.argmax = i;
        }
    double sum = 0;
    for (float v : x) sum += std::exp(v - r.max);
    r.log_sum = std::log(sum);
    return r;
}

// f(j) for j < count on the executor's threads, each result in its own slot: the values
// do not depend on the thread count, and the caller adds them in order.
template <class T, class F> std::vector<T> per_position(uint32_t count, int threads, F&& f) {
    std::vector<T> out(count);
    quant::RunOptions run;
    run.threads = threads;
    quant::default_executor().run(
        count, [&](int64_t begin, int64_t end) {
            for (int64_t j = begin; j < end; ++j) out[static_cast<size_t>(j)] = f(static_cast<uint32_t>(j));
        },
        run);
    return out;
}

Estimate mean_and_uncertainty(double sum, double sum2, uint64_t count) {
    Estimate e;
    if (count == 0) return e;
    e.value = sum / static_cast<double>(count);
    const double var = sum2 / static_cast<double>(count) - e.value * e.value;
    e.uncertainty = count > 1 && var > 0 ? std::sqrt(var / static_cast<double>(count - 1)) : 0.0;
    return e;
}

double covariance(double a, double b, double ab, uint64_t count) {
    if (count < 2) return 0;
    const auto n = static_cast<double>(count);
    return (ab / n - (a / n) * (b / n)) / (n - 1);
}

void check_token(int32_t token, size_t n_vocab) {
    if (token < 0 || static_cast<size_t>(token) >= n_vocab)
        throw std::out_of_range("infer: token id " + std::to_string(token) + " is outside the vocabulary of " + std::to_string(n_vocab));
}

KldSummary summarize_sums(const KldAccumulator& a) {
    KldSummary s;
    s.count = a.count;
    if (a.count == 0) return s;
    const Estimate log_ppl = mean_and_uncertainty(a.nll.sum, a.nll.sum2, a.count);
    const Estimate log_ppl_base = mean_and_uncertainty(a.nll_base.sum, a.nll_base.sum2, a.count);
    s.ppl = {std::exp(log_ppl.value), std::exp(log_ppl.value) * log_ppl.uncertainty};
    s.ppl_base = {std::exp(log_ppl_base.value), std::exp(log_ppl_base.value) * log_ppl_base.uncertainty};
    const double cov = covariance(a.nll.sum, a.nll_base.sum, a.sum_nll_nll_base, a.count);
    const double denominator = log_ppl.uncertainty * log_ppl_base.uncertainty;
    s.correlation = denominator > 0 ? cov / denominator : 0.0;
    s.ln_ratio.value = log_ppl.value - log_ppl_base.value;
    s.ln_ratio.uncertainty = std::sqrt(std::max(0.0, log_ppl.uncertainty * log_ppl.uncertainty +
                                                         log_ppl_base.uncertainty * log_ppl_base.uncertainty - 2.0 * cov));
    s.ratio = {std::exp(s.ln_ratio.value), std::exp(s.ln_ratio.value) * s.ln_ratio.uncertainty};
    s.difference.value = s.ppl.value - s.ppl_base.value;
    s.difference.uncertainty = std::sqrt(std::max(0.0, s.ppl.uncertainty * s.ppl.uncertainty + s.ppl_base.uncertainty * s.ppl_base.uncertainty -
                                                           2.0 * cov * s.ppl.value * s.ppl_base.value));
    s.kld = mean_and_uncertainty(a.sum_kld, a.sum_kld2, a.count);
    s.p_diff_mean = mean_and_uncertainty(a.sum_p_diff, a.sum_p_diff2, a.count);
    const Estimate mse = mean_and_uncertainty(a.sum_p_diff2, a.sum_p_diff4, a.count);
    s.p_diff_rms.value = std::sqrt(mse.value);
    s.p_diff_rms.uncertainty = s.p_diff_rms.value > 0 ? 0.5 / s.p_diff_rms.value * mse.uncertainty : 0.0;
    const double same = static_cast<double>(a.same_top) / static_cast<double>(a.count);
    s.same_top = {same, a.count > 1 ? std::sqrt(same * (1 - same) / static_cast<double>(a.count - 1)) : 0.0};
    return s;
}

}  // namespace

// ---- Perplexity ------------------------------------------------------------------------

uint32_t chunk_count(size_t n_tokens, const PerplexityOptions& options) {
    if (options.n_ctx < 2) throw std::invalid_argument("infer: the context size must be at least 2");
    if (n_tokens < 2 * size_t{options.n_ctx})
        throw std::invalid_argument("infer: the text is " + std::to_string(n_tokens) + " tokens, shorter than two chunks of " +
                                    std::to_string(options.n_ctx) + " (" + std::to_string(2 * size_t{options.n_ctx}) + " needed)");
    const auto whole = static_cast<uint32_t>(n_tokens / options.n_ctx);
    return options.max_chunks ? std::min(whole, options.max_chunks) : whole;
}

std::vector<int32_t> chunk_tokens(std::span<const int32_t> tokens, uint32_t index, uint32_t n_ctx, std::optional<int32_t> bos) {
    const size_t start = size_t{index} * n_ctx;
    if (start + n_ctx > tokens.size()) throw std::out_of_range("infer: chunk " + std::to_string(index) + " is past the end of the tokens");
    std::vector<int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(start), tokens.begin() + static_cast<std::ptrdiff_t>(start + n_ctx));
    if (bos) chunk[0] = *bos;
    return chunk;
}

double token_nll(std::span<const float> logits, int32_t token) {
    check_token(token, logits.size());
    const LogSoftmax l = log_softmax(logits);
    return static_cast<double>(l.max) + l.log_sum - static_cast<double>(logits[static_cast<size_t>(token)]);
}

double NllSums::ppl() const { return count ? std::exp(sum / static_cast<double>(count)) : 0.0; }

double NllSums::ppl_uncertainty() const {
    const Estimate e = mean_and_uncertainty(sum, sum2, count);
    return std::exp(e.value) * e.uncertainty;
}

namespace {

// The negative log-likelihoods of a chunk's scored tokens (logits rows 0 ... n_ctx - 2 -
// first predict tokens first + 1 ...), measured on the threads.
std::vector<double> chunk_nlls(std::span<const float> logits, const std::vector<int32_t>& chunk, uint32_t first, size_t n_vocab, int threads) {
    const auto n_ctx = static_cast<uint32_t>(chunk.size());
    return per_position<double>(n_ctx - 1 - first, threads,
                                [&](uint32_t j) { return token_nll(logits.subspan(j * n_vocab, n_vocab), chunk[first + j + 1]); });
}

}  // namespace

PerplexityResult perplexity(const Model& model, std::span<const int32_t> tokens, const PerplexityOptions& options,
                            const ChunkCallback& on_chunk) {
    const Config& c = model.config();
    const uint32_t chunks = chunk_count(tokens.size(), options);
    const uint32_t n_ctx = options.n_ctx, first = n_ctx / 2;
    const std::optional<int32_t> bos = c.add_bos ? c.bos : std::nullopt;
    Context ctx(model, n_ctx, options.eval);
    std::vector<float> logits(size_t{n_ctx - first} * c.n_vocab);
    PerplexityResult r;
    r.arithmetic = options.eval.arithmetic;
    r.chunks = chunks;
    for (uint32_t i = 0; i < chunks; ++i) {
        const std::vector<int32_t> chunk = chunk_tokens(tokens, i, n_ctx, bos);
        ctx.clear();
        ctx.eval(chunk, logits, first);
        // Logits row j (position first + j) predicts the token at first + j + 1.
        for (double nll : chunk_nlls(logits, chunk, first, c.n_vocab, options.eval.threads)) r.nll.add(nll);
        r.tokens_evaluated += n_ctx;
        r.running_ppl.push_back(r.nll.ppl());
        if (on_chunk) on_chunk(i + 1, chunks, r.running_ppl.back());
    }
    r.memory = ctx.memory();
    return r;
}

// ---- KL divergence ---------------------------------------------------------------------

KldAccumulator::Position KldAccumulator::measure(std::span<const float> logits, std::span<const float> base_logits, int32_t token) {
    if (logits.size() != base_logits.size())
        throw std::invalid_argument("infer: the model's and the base's logits differ in size (" + std::to_string(logits.size()) + " and " +
                                    std::to_string(base_logits.size()) + ")");
    check_token(token, logits.size());
    const auto tok = static_cast<size_t>(token);
    const LogSoftmax m = log_softmax(logits), b = log_softmax(base_logits);
    const double m_shift = static_cast<double>(m.max) + m.log_sum, b_shift = static_cast<double>(b.max) + b.log_sum;
    Position p;
    p.nll = m_shift - logits[tok];
    p.nll_base = b_shift - base_logits[tok];
    // sum p_base (log p_base - log p_model), leaving out what the base deems below e^-16.
    for (size_t i = 0; i < logits.size(); ++i) {
        const double log_p_base = base_logits[i] - b_shift;
        if (log_p_base <= -16.0) continue;
        p.kld += std::exp(log_p_base) * (log_p_base - (logits[i] - m_shift));
    }
    p.p_diff = std::exp(-p.nll) - std::exp(-p.nll_base);
    p.same_top = m.argmax == b.argmax;
    return p;
}

void KldAccumulator::add(const Position& p) {
    nll.add(p.nll);
    nll_base.add(p.nll_base);
    sum_nll_nll_base += p.nll * p.nll_base;
    sum_kld += p.kld;
    sum_kld2 += p.kld * p.kld;
    kld_values.push_back(static_cast<float>(p.kld));
    sum_p_diff += p.p_diff;
    sum_p_diff2 += p.p_diff * p.p_diff;
    sum_p_diff4 += p.p_diff * p.p_diff * p.p_diff * p.p_diff;
    max_p_diff = std::max(max_p_diff, std::abs(p.p_diff));
    p_diff_values.push_back(static_cast<float>(p.p_diff));
    if (p.same_top) ++same_top;
    ++count;
}

double percentile(std::span<const float> sorted, double fraction) {
    if (sorted.empty()) return 0;
    if (fraction <= 0) return sorted.front();
    if (fraction >= 1) return sorted.back();
    const double p = fraction * static_cast<double>(sorted.size() - 1);
    const auto i = static_cast<size_t>(p);
    const double t = p - static_cast<double>(i);
    return (1 - t) * sorted[i] + t * sorted[std::min(i + 1, sorted.size() - 1)];
}

KldSummary summarize(const KldAccumulator& a) {
    KldSummary s = summarize_sums(a);
    if (a.count == 0) return s;
    std::vector<float> k = a.kld_values, d = a.p_diff_values;
    std::sort(k.begin(), k.end());
    std::sort(d.begin(), d.end());
    s.kld_max = k.back();
    s.kld_min = k.front();
    s.kld_median = percentile(k, 0.5);
    s.kld_p999 = percentile(k, 0.999);
    s.kld_p99 = percentile(k, 0.99);
    s.kld_p95 = percentile(k, 0.95);
    s.kld_p90 = percentile(k, 0.90);
    s.kld_p10 = percentile(k, 0.10);
    s.kld_p05 = percentile(k, 0.05);
    s.kld_p01 = percentile(k, 0.01);
    s.kld_p001 = percentile(k, 0.001);
    s.p_diff_max = d.back();
    s.p_diff_min = d.front();
    s.p_diff_median = percentile(d, 0.5);
    s.p_diff_p999 = percentile(d, 0.999);
    s.p_diff_p99 = percentile(d, 0.99);
    s.p_diff_p95 = percentile(d, 0.95);
    s.p_diff_p90 = percentile(d, 0.90);
    s.p_diff_p75 = percentile(d, 0.75);
    s.p_diff_p25 = percentile(d, 0.25);
    s.p_diff_p10 = percentile(d, 0.10);
    s.p_diff_p05 = percentile(d, 0.05);
    s.p_diff_p01 = percentile(d, 0.01);
    s.p_diff_p001 = percentile(d, 0.001);
    return s;
}

namespace {

// The logits rows a chunk scores: positions first = n_ctx / 2 ... n_ctx - 2.
size_t scored_rows(uint32_t n_ctx) { return n_ctx > 1 ? n_ctx - 1 - n_ctx / 2 : 0; }

// BASE evaluated chunk by chunk: its scored logits rows (scored_rows x n_vocab floats).
class EvaluatedBase {
public:
    EvaluatedBase(const Model& base, const KldOptions& o)
        : ctx_(base, o.n_ctx, o.eval), first_(o.n_ctx / 2), logits_(size_t{o.n_ctx - first_} * base.config().n_vocab),
          scored_(scored_rows(o.n_ctx) * base.config().n_vocab) {}
    std::span<const float> operator()(std::span<const int32_t> chunk) {
        ctx_.clear();
        ctx_.eval(chunk, logits_, first_);
        return std::span<const float>(logits_).first(scored_);
    }
    MemoryFigures memory() const { return ctx_.memory(); }

private:
    Context ctx_;
    uint32_t first_;
    std::vector<float> logits_;
    size_t scored_;
};

// BASE's scored logits of chunk `index`, whose ids are `chunk`.
using BaseLogits = std::function<std::span<const float>(uint32_t index, std::span<const int32_t> chunk)>;

// The comparison, whichever way BASE's logits come: chunk by chunk, BASE's logits, then
// MODEL's evaluated, each scored position added; BASE's logits appended to `save` when given.
KldResult compare(const Model& model, std::span<const int32_t> tokens, uint32_t chunks, std::optional<int32_t> bos,
                  const KldOptions& options, const BaseLogits& base_logits, KldBaseWriter::Chunks* save, const ChunkCallback& on_chunk) {
    const uint32_t n_ctx = options.n_ctx, first = n_ctx / 2;
    const size_t n_vocab = model.config().n_vocab;
    Context ctx(model, n_ctx, options.eval);
    std::vector<float> logits(size_t{n_ctx - first} * n_vocab);
    KldResult r;
    r.arithmetic = options.eval.arithmetic;
    r.chunks = chunks;
    for (uint32_t i = 0; i < chunks; ++i) {
        const std::vector<int32_t> chunk = chunk_tokens(tokens, i, n_ctx, bos);
        const std::span<const float> logits_base = base_logits(i, chunk);
        ctx.clear();
        ctx.eval(chunk, logits, first);
        const auto positions = per_position<KldAccumulator::Position>(n_ctx - 1 - first, options.eval.threads, [&](uint32_t j) {
            return KldAccumulator::measure(std::span<const float>(logits.data() + j * n_vocab, n_vocab), logits_base.subspan(j * n_vocab, n_vocab),
                                           chunk[first + j + 1]);
        });
        for (const KldAccumulator::Position& p : positions) r.totals.add(p);
        if (save) save->append(logits_base);
        r.tokens_evaluated += n_ctx;
        r.per_chunk.push_back(summarize_sums(r.totals));
        if (on_chunk) on_chunk(i + 1, chunks, r.per_chunk.back().ppl.value);
    }
    r.memory = ctx.memory();
    return r;
}

void check_vocabularies(const Model& base, const Model& model) {
    if (base.config().n_vocab != model.config().n_vocab)
        throw std::invalid_argument("infer: the vocabularies differ in size (" + std::to_string(base.config().n_vocab) + " and " +
                                    std::to_string(model.config().n_vocab) + ")");
}

uint32_t kld_chunks(std::span<const int32_t> tokens, const KldOptions& o) { return chunk_count(tokens.size(), {o.n_ctx, o.max_chunks, o.eval}); }

std::optional<int32_t> bos_of(const Model& m) { return m.config().add_bos ? m.config().bos : std::nullopt; }

// A base file's writer for BASE over `chunks` chunks of `tokens`.
KldBaseWriter base_writer(const Model& base, std::span<const int32_t> tokens, uint32_t chunks, const KldOptions& o,
                          const KldBaseDestination& to) {
    KldBaseInfo info{o.n_ctx, chunks, base.config().n_vocab, o.eval.arithmetic, to.base_name, to.base_path, to.text, product_path(o.eval)};
    std::vector<int32_t> ids;
    ids.reserve(size_t{chunks} * o.n_ctx);
    for (uint32_t i = 0; i < chunks; ++i) {
        const std::vector<int32_t> chunk = chunk_tokens(tokens, i, o.n_ctx, bos_of(base));
        ids.insert(ids.end(), chunk.begin(), chunk.end());
    }
    return KldBaseWriter(std::move(info), std::move(ids));
}

}  // namespace

KldResult kl_divergence(const Model& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const ChunkCallback& on_chunk) {
    check_vocabularies(base, model);
    const uint32_t chunks = kld_chunks(tokens, options);
    EvaluatedBase evaluated(base, options);
    KldResult r = compare(model, tokens, chunks, bos_of(base), options,
                          [&](uint32_t, std::span<const int32_t> chunk) { return evaluated(chunk); }, nullptr, on_chunk);
    r.memory_base = evaluated.memory();
    return r;
}

KldResult kl_divergence(const Model& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const KldBaseDestination& to, const ChunkCallback& on_chunk) {
    check_vocabularies(base, model);
    const uint32_t chunks = kld_chunks(tokens, options);
    const KldBaseWriter writer = base_writer(base, tokens, chunks, options, to);
    EvaluatedBase evaluated(base, options);
    KldResult r;
    writer.write(to.path, [&](KldBaseWriter::Chunks& out) {
        r = compare(model, tokens, chunks, bos_of(base), options, [&](uint32_t, std::span<const int32_t> chunk) { return evaluated(chunk); },
                    &out, on_chunk);
    });
    r.memory_base = evaluated.memory();
    return r;
}

PerplexityResult save_kld_base(const Model& base, std::span<const int32_t> tokens, const KldOptions& options,
                               const KldBaseDestination& to, const ChunkCallback& on_chunk) {
    const uint32_t chunks = kld_chunks(tokens, options);
    const KldBaseWriter writer = base_writer(base, tokens, chunks, options, to);
    const uint32_t n_ctx = options.n_ctx, first = n_ctx / 2;
    const size_t n_vocab = base.config().n_vocab;
    EvaluatedBase evaluated(base, options);
    PerplexityResult r;
    r.arithmetic = options.eval.arithmetic;
    r.chunks = chunks;
    writer.write(to.path, [&](KldBaseWriter::Chunks& out) {
        for (uint32_t i = 0; i < chunks; ++i) {
            const std::vector<int32_t> chunk = chunk_tokens(tokens, i, n_ctx, bos_of(base));
            const std::span<const float> logits = evaluated(chunk);
            for (double nll : chunk_nlls(logits, chunk, first, n_vocab, options.eval.threads)) r.nll.add(nll);
            out.append(logits);
            r.tokens_evaluated += n_ctx;
            r.running_ppl.push_back(r.nll.ppl());
            if (on_chunk) on_chunk(i + 1, chunks, r.running_ppl.back());
        }
    });
    r.memory = evaluated.memory();
    return r;
}

KldResult kl_divergence(const KldBaseReader& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const ChunkCallback& on_chunk) {
    const KldBaseInfo& saved = base.info();
    const auto refuse = [&base](const std::string& message) { throw std::invalid_argument(base.path() + ": " + message); };
    if (options.n_ctx != saved.n_ctx)
        refuse(fmt::format("the base was saved with chunks of {} tokens (n_ctx); this run asks for {}", saved.n_ctx, options.n_ctx));
    if (options.eval.arithmetic != saved.arithmetic)
        refuse(fmt::format("the base was evaluated with {} arithmetic; this run asks for {}", arithmetic_name(saved.arithmetic),
                           arithmetic_name(options.eval.arithmetic)));
    if (model.config().n_vocab != saved.n_vocab)
        refuse(fmt::format("the base's vocabulary has {} tokens, the model's {}", saved.n_vocab, model.config().n_vocab));
    const uint32_t chunks = kld_chunks(tokens, options);
    if (chunks > saved.chunks)
        refuse(fmt::format("it holds {} chunks; this run asks for {} ({} at most)", saved.chunks, chunks, saved.chunks));
    const std::optional<int32_t> bos = bos_of(model);
    for (uint32_t i = 0; i < chunks; ++i) {
        const std::vector<int32_t> chunk = chunk_tokens(tokens, i, options.n_ctx, bos);
        const std::span<const int32_t> ids = base.chunk_ids(i);
        const auto [mine, theirs] = std::mismatch(chunk.begin(), chunk.end(), ids.begin());
        if (mine != chunk.end())
            refuse(fmt::format("the text's tokens differ from the saved ones in chunk {} at position {} (token {} here, {} saved{}): "
                               "another text, tokenizer or chunking",
                               i + 1, mine - chunk.begin(), *mine, *theirs, saved.text.empty() ? "" : " from " + saved.text));
    }
    // Chunk i - 1 is done with when chunk i is asked for.
    KldResult r = compare(model, tokens, chunks, bos, options,
                          [&base](uint32_t i, std::span<const int32_t>) {
                              if (i > 0) base.release_chunk(i - 1);
                              return base.chunk_logits(i);
                          },
                          nullptr, on_chunk);
    base.release_chunk(chunks - 1);
    return r;
}

std::string format_kld_summary(const KldSummary& s) {
    std::string o;
    auto line = [&o](std::string text) { o += text; o += '\n'; };
    line("====== Perplexity statistics ======");
    line(fmt::format("Mean PPL(Q)                   : {:10.6f} ± {:10.6f}", s.ppl.value, s.ppl.uncertainty));
    line(fmt::format("Mean PPL(base)                : {:10.6f} ± {:10.6f}", s.ppl_base.value, s.ppl_base.uncertainty));
    line(fmt::format("Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2f}%", 100.0 * s.correlation));
    line(fmt::format("Mean ln(PPL(Q)/PPL(base))     : {:10.6f} ± {:10.6f}", s.ln_ratio.value, s.ln_ratio.uncertainty));
    line(fmt::format("Mean PPL(Q)/PPL(base)         : {:10.6f} ± {:10.6f}", s.ratio.value, s.ratio.uncertainty));
    line(fmt::format("Mean PPL(Q)-PPL(base)         : {:10.6f} ± {:10.6f}", s.difference.value, s.difference.uncertainty));
    line("");
    line("====== KL divergence statistics ======");
    line(fmt::format("Mean    KLD: {:10.6f} ± {:10.6f}", s.kld.value, s.kld.uncertainty));
    line(fmt::format("Maximum KLD: {:10.6f}", s.kld_max));
    line(fmt::format("99.9%   KLD: {:10.6f}", s.kld_p999));
    line(fmt::format("99.0%   KLD: {:10.6f}", s.kld_p99));
    line(fmt::format("95.0%   KLD: {:10.6f}", s.kld_p95));
    line(fmt::format("90.0%   KLD: {:10.6f}", s.kld_p90));
    line(fmt::format("Median  KLD: {:10.6f}", s.kld_median));
    line(fmt::format("10.0%   KLD: {:10.6f}", s.kld_p10));
    line(fmt::format(" 5.0%   KLD: {:10.6f}", s.kld_p05));
    line(fmt::format(" 1.0%   KLD: {:10.6f}", s.kld_p01));
    line(fmt::format(" 0.1%   KLD: {:10.6f}", s.kld_p001));
    line(fmt::format("Minimum KLD: {:10.6f}", s.kld_min));
    line("");
    line("====== Token probability statistics ======");
    auto pct = [](double f) { return 100.0 * f; };
    line(fmt::format("Mean    Δp: {:6.3f} ± {:5.3f} %", pct(s.p_diff_mean.value), pct(s.p_diff_mean.uncertainty)));
    line(fmt::format("Maximum Δp: {:6.3f}%", pct(s.p_diff_max)));
    line(fmt::format("99.9%   Δp: {:6.3f}%", pct(s.p_diff_p999)));
    line(fmt::format("99.0%   Δp: {:6.3f}%", pct(s.p_diff_p99)));
    line(fmt::format("95.0%   Δp: {:6.3f}%", pct(s.p_diff_p95)));
    line(fmt::format("90.0%   Δp: {:6.3f}%", pct(s.p_diff_p90)));
    line(fmt::format("75.0%   Δp: {:6.3f}%", pct(s.p_diff_p75)));
    line(fmt::format("Median  Δp: {:6.3f}%", pct(s.p_diff_median)));
    line(fmt::format("25.0%   Δp: {:6.3f}%", pct(s.p_diff_p25)));
    line(fmt::format("10.0%   Δp: {:6.3f}%", pct(s.p_diff_p10)));
    line(fmt::format(" 5.0%   Δp: {:6.3f}%", pct(s.p_diff_p05)));
    line(fmt::format(" 1.0%   Δp: {:6.3f}%", pct(s.p_diff_p01)));
    line(fmt::format(" 0.1%   Δp: {:6.3f}%", pct(s.p_diff_p001)));
    line(fmt::format("Minimum Δp: {:6.3f}%", pct(s.p_diff_min)));
    line(fmt::format("RMS Δp    : {:6.3f} ± {:5.3f} %", pct(s.p_diff_rms.value), pct(s.p_diff_rms.uncertainty)));
    line(fmt::format("Same top p: {:6.3f} ± {:5.3f} %", pct(s.same_top.value), pct(s.same_top.uncertainty)));
    return o;
}

}  // namespace infer
