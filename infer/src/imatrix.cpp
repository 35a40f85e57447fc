#include "infer/imatrix.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "quant/executor.h"

namespace infer {

ImatrixCollector::ImatrixCollector(const Model& model, bool process_output, int threads) : threads_(threads) {
    auto watch_experts = [this](std::span<const Matrix> experts, std::string name) {
        for (size_t e = 0; e < experts.size(); ++e) index_.push_back({&experts[e], watched_.size(), e});
        const int64_t cols = experts.front().cols;
        watched_.push_back({std::move(name), cols, std::vector<float>(experts.size() * static_cast<size_t>(cols), 0.0f),
                            std::vector<uint64_t>(experts.size(), 0)});
    };
    auto watch = [&](const Matrix& m, std::string name) { watch_experts(std::span<const Matrix>(&m, 1), std::move(name)); };
    const std::span<const Layer> layers = model.layers();
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        watch(l.wq, p + "attn_q.weight");
        watch(l.wk, p + "attn_k.weight");
        watch(l.wv, p + "attn_v.weight");
        watch(l.wo, p + "attn_output.weight");
        if (l.moe()) {
            watch(l.ffn_gate_inp, p + "ffn_gate_inp.weight");
            watch_experts(l.gate_exps, p + "ffn_gate_exps.weight");
            watch_experts(l.up_exps, p + "ffn_up_exps.weight");
            watch_experts(l.down_exps, p + "ffn_down_exps.weight");
            continue;
        }
        watch(l.ffn_gate, p + "ffn_gate.weight");
        watch(l.ffn_up, p + "ffn_up.weight");
        watch(l.ffn_down, p + "ffn_down.weight");
    }
    // A tied output is the token embedding, which llama-imatrix does not collect even with
    // --process-output (it takes only blk.* and output.weight by name).
    if (process_output && !model.config().tied_output) watch(model.output(), "output.weight");
    std::sort(index_.begin(), index_.end());
}

void ImatrixCollector::on_matmul(const Matrix& w, const float* x, int64_t n) {
    const auto it = std::lower_bound(index_.begin(), index_.end(), Index{&w, 0, 0});
    if (it == index_.end() || it->matrix != &w) return;
    Watched& e = watched_[it->watched];
    const int64_t cols = w.cols;
    float* sums = e.sums.data() + it->expert * static_cast<size_t>(cols);
    quant::RunOptions run;
    run.threads = threads_;
    // Columns split across threads; each column summed over the tokens in order.
    quant::default_executor().run(
        cols,
        [&](int64_t begin, int64_t end) {
            for (int64_t t = 0; t < n; ++t) {
                const float* row = x + t * cols;
                for (int64_t j = begin; j < end; ++j) sums[j] += row[j] * row[j];
            }
        },
        run);
    e.counts[it->expert] += static_cast<uint64_t>(n);
    for (int64_t j = 0; j < cols; ++j)
        if (!std::isfinite(sums[j]))
            throw std::runtime_error("infer: the importance sums of " + e.name +
                                     (e.counts.size() > 1 ? " (expert " + std::to_string(it->expert) + ")" : std::string()) +
                                     " are no longer finite (column " + std::to_string(j) + ")");
}

quant::ImportanceMatrix ImatrixCollector::matrix() const {
    quant::ImportanceMatrix m;
    for (const Watched& w : watched_) {
        if (std::all_of(w.counts.begin(), w.counts.end(), [](uint64_t c) { return c == 0; })) continue;
        quant::ImatrixEntry e;
        e.sums = w.sums;
        for (uint64_t c : w.counts) e.counts.push_back(static_cast<float>(c));
        m.set(w.name, std::move(e));
    }
    return m;
}

ImatrixResult compute_imatrix(const Model& model, std::span<const int32_t> tokens, const ImatrixOptions& options,
                              const ChunkCallback& on_chunk) {
    if (options.n_ctx < 16)
        throw std::invalid_argument("infer: the context size must be at least 16 for an importance matrix (llama-imatrix ignores smaller batches)");
    const Config& c = model.config();
    PerplexityOptions po;
    po.n_ctx = options.n_ctx;
    po.max_chunks = options.max_chunks;
    const uint32_t chunks = chunk_count(tokens.size(), po);
    const uint32_t n_ctx = options.n_ctx, first = n_ctx / 2;
    const std::optional<int32_t> bos = c.add_bos ? c.bos : std::nullopt;
    ImatrixCollector collector(model, options.process_output, options.eval.threads);
    Context ctx(model, n_ctx, options.eval);
    ctx.set_observer(&collector);
    std::vector<float> logits(size_t{n_ctx} * c.n_vocab);
    ImatrixResult r;
    r.chunks = chunks;
    for (uint32_t i = 0; i < chunks; ++i) {
        const std::vector<int32_t> chunk = chunk_tokens(tokens, i, n_ctx, bos);
        ctx.clear();
        ctx.eval(chunk, logits, 0);  // every token's logits, as llama-imatrix asks for them
        for (uint32_t j = first; j + 1 < n_ctx; ++j)
            r.nll.add(token_nll(std::span<const float>(logits.data() + size_t{j} * c.n_vocab, c.n_vocab), chunk[j + 1]));
        r.tokens_evaluated += n_ctx;
        if (on_chunk) on_chunk(i + 1, chunks, r.nll.ppl());
    }
    r.memory = ctx.memory();
    r.matrix = collector.matrix();
    r.matrix.datasets = options.datasets;
    r.matrix.chunk_count = chunks;
    r.matrix.chunk_size = n_ctx;
    return r;
}

}  // namespace infer
