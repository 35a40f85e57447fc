#include "infer/imatrix.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "quant/executor.h"

namespace infer {

ImatrixCollector::ImatrixCollector(const Model& model, bool process_output, int threads) : threads_(threads) {
    auto watch = [this](const Matrix& m, std::string name) {
        index_.emplace_back(&m, watched_.size());
        watched_.push_back({std::move(name), std::vector<float>(static_cast<size_t>(m.cols), 0.0f), 0});
    };
    const std::span<const Layer> layers = model.layers();
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        const std::string p = "blk." + std::to_string(i) + ".";
        watch(l.wq, p + "attn_q.weight");
        watch(l.wk, p + "attn_k.weight");
        watch(l.wv, p + "attn_v.weight");
        watch(l.wo, p + "attn_output.weight");
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
    const auto it = std::lower_bound(index_.begin(), index_.end(), std::pair<const Matrix*, size_t>(&w, 0));
    if (it == index_.end() || it->first != &w) return;
    Watched& e = watched_[it->second];
    const int64_t cols = w.cols;
    quant::RunOptions run;
    run.threads = threads_;
    // Columns split across threads; each column summed over the tokens in order.
    quant::default_executor().run(
        cols,
        [&](int64_t begin, int64_t end) {
            float* sums = e.sums.data();
            for (int64_t t = 0; t < n; ++t) {
                const float* row = x + t * cols;
                for (int64_t j = begin; j < end; ++j) sums[j] += row[j] * row[j];
            }
        },
        run);
    e.count += static_cast<uint64_t>(n);
    for (int64_t j = 0; j < cols; ++j)
        if (!std::isfinite(e.sums[static_cast<size_t>(j)]))
            throw std::runtime_error("infer: the importance sums of " + e.name + " are no longer finite (column " + std::to_string(j) + ")");
}

quant::ImportanceMatrix ImatrixCollector::matrix() const {
    quant::ImportanceMatrix m;
    for (const Watched& w : watched_) {
        if (w.count == 0) continue;
        quant::ImatrixEntry e;
        e.sums = w.sums;
        e.counts = {static_cast<float>(w.count)};
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
