#include "infer/forward.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>

#include "kernels/elementwise.h"
#include "kernels/kernels.h"
#include "quant/executor.h"
#include "quant/quant.h"

namespace infer {

namespace {

using gguf::TypeId;

// RMSNorm of n values: the mean square summed in double (as ggml does), then x / sqrt(ms + eps)
// times the weight.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* y) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

float round_f16(float x) { return quant::f16_to_f32(quant::f32_to_f16(x)); }

// YaRN's ramp between interpolated (0) and extrapolated (1) frequencies over the pair index.
float yarn_ramp(float low, float high, int64_t pair) {
    const float y = (static_cast<float>(pair) - low) / std::max(0.001f, high - low);
    return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

// The pair indices where YaRN's ramp starts and ends: where a pair's wavelength holds
// `rotations` turns within the training context.
float yarn_corr_dim(uint32_t n_dims, uint32_t n_ctx_orig, float rotations, float base) {
    return static_cast<float>(n_dims) * std::log(static_cast<float>(n_ctx_orig) / (rotations * 2.0f * std::numbers::pi_v<float>)) /
           (2.0f * std::log(base));
}

thread_local std::vector<float> tls_buffer;

// Floats per token of the largest packed matrix-product input: the vectors of the widest
// product (the feed-forward's down projection, or the attention's).
uint64_t packed_input_floats(const Config& c) {
    return std::max<uint64_t>({c.n_embd, c.n_ff, c.n_ff_expert, uint64_t{c.n_head} * c.head_dim});
}

// Floats per token the mixture of experts adds (Context::ffn_experts): router logits, each
// chosen expert's output, and an expert's batch (input, gate, up, output) at most.
uint64_t expert_floats(const Config& c) {
    if (!c.n_expert) return 0;
    return c.n_expert + uint64_t{c.n_expert_used} * c.n_embd + 2ull * c.n_embd + 2ull * c.n_ff_expert;
}

// Per token, its chosen experts (most probable first; ties: the lower index) and their
// weights: a softmax of the router's n_expert logits (the sum in double), the `used` most
// probable, their probabilities divided by their sum.
struct Routing {
    std::vector<int32_t> chosen;  // n x used
    std::vector<float> weight;    // n x used
};

Routing route(const float* logits, int64_t n, int64_t n_expert, int64_t used) {
    Routing r{std::vector<int32_t>(static_cast<size_t>(n * used)), std::vector<float>(static_cast<size_t>(n * used))};
    std::vector<float> p(static_cast<size_t>(n_expert));
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < n; ++t) {
        const float* z = logits + t * n_expert;
        const float max = *std::max_element(z, z + n_expert);
        double sum = 0;
        for (int64_t e = 0; e < n_expert; ++e) sum += (p[static_cast<size_t>(e)] = std::exp(z[e] - max));
        for (float& v : p) v = static_cast<float>(v / sum);
        for (int32_t e = 0; e < n_expert; ++e) order[static_cast<size_t>(e)] = e;
        std::partial_sort(order.begin(), order.begin() + used, order.end(), [&](int32_t a, int32_t b) {
            return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)] || (p[static_cast<size_t>(a)] == p[static_cast<size_t>(b)] && a < b);
        });
        float total = 0;
        for (int64_t k = 0; k < used; ++k) total += p[static_cast<size_t>(order[static_cast<size_t>(k)])];
        for (int64_t k = 0; k < used; ++k) {
            r.chosen[static_cast<size_t>(t * used + k)] = order[static_cast<size_t>(k)];
            r.weight[static_cast<size_t>(t * used + k)] = p[static_cast<size_t>(order[static_cast<size_t>(k)])] / total;
        }
    }
    return r;
}

// f(begin, end) over [0, n) on up to `threads` threads (elementwise work: each value computed
// alone, so the split changes nothing).
template <class F> void in_parallel(int64_t n, int threads, F&& f) {
    quant::RunOptions run;
    run.threads = threads;
    quant::default_executor().run(n, f, run);
}

}  // namespace

std::string_view arithmetic_name(Arithmetic a) { return a == Arithmetic::Ggml ? "ggml" : "f32"; }

std::string product_path(const EvalOptions& options) {
    if (options.backend) return std::string(options.backend->name());
    return "cpu " + std::string(kernels::isa_name(kernels::active_isa()));
}

Context::Context(const Model& model, uint32_t n_ctx, EvalOptions options) : model_(&model), n_ctx_(n_ctx), options_(options) {
    if (n_ctx == 0) throw std::invalid_argument("infer::Context: n_ctx must be positive");
    const Config& c = model.config();
    const size_t kv = size_t{c.n_layer} * n_ctx * c.n_head_kv * c.head_dim;
    k_cache_.assign(kv, 0.0f);
    v_cache_.assign(kv, 0.0f);
}

MemoryFigures Context::memory() const {
    MemoryFigures f;
    f.mapped_weights = model_->weight_bytes();
    f.kv_cache = (k_cache_.size() + v_cache_.size()) * sizeof(float);
    f.activations = peak_activations_;
    return f;
}

MemoryFigures Context::planned_memory(const Model& model, uint32_t n_ctx, int64_t batch) {
    const Config& c = model.config();
    const uint64_t q_dim = uint64_t{c.n_head} * c.head_dim, kv_dim = uint64_t{c.n_head_kv} * c.head_dim;
    // Per token: x, xn, q, k, v, att, gate, up, the rotation's cos and sin (grow() below), and
    // the widest product's packed input (kernels::MatmulInput, one at a time).
    const uint64_t per_token = 2ull * c.n_embd + q_dim + 2 * kv_dim + std::max<uint64_t>(q_dim, c.n_embd) + 2ull * c.n_ff +
                               2ull * (c.rope.n_dims / 2) + packed_input_floats(c) + expert_floats(c);
    MemoryFigures f;
    f.mapped_weights = model.weight_bytes();
    f.kv_cache = 2ull * c.n_layer * n_ctx * kv_dim * sizeof(float);
    f.activations = static_cast<uint64_t>(std::max<int64_t>(batch, 0)) * per_token * sizeof(float);
    return f;
}

void Context::grow(int64_t n) {
    if (n <= capacity_) return;
    const Config& c = model_->config();
    const auto sz = [n](int64_t per_token) { return static_cast<size_t>(n * per_token); };
    const int64_t q_dim = int64_t{c.n_head} * c.head_dim, kv_dim = int64_t{c.n_head_kv} * c.head_dim;
    x_.resize(sz(c.n_embd));
    xn_.resize(sz(c.n_embd));
    q_.resize(sz(q_dim));
    k_.resize(sz(kv_dim));
    v_.resize(sz(kv_dim));
    att_.resize(sz(std::max<int64_t>(q_dim, c.n_embd)));
    gate_.resize(sz(c.n_ff));
    up_.resize(sz(c.n_ff));
    rope_cos_.resize(sz(c.rope.n_dims / 2));
    rope_sin_.resize(sz(c.rope.n_dims / 2));
    capacity_ = n;
    uint64_t bytes = 0;
    for (const std::vector<float>* v : {&x_, &xn_, &q_, &k_, &v_, &att_, &gate_, &up_, &rope_cos_, &rope_sin_})
        bytes += v->size() * sizeof(float);
    bytes += static_cast<uint64_t>(n) * (packed_input_floats(c) + expert_floats(c)) * sizeof(float);
    peak_activations_ = std::max(peak_activations_, bytes);
}

// y = W x for n input vectors: the vectors prepared once (packed for the f32 product, in
// groups across the threads), then W's output rows split across threads in whole panels,
// each range written straight into y. Every value is computed alone in a fixed order
// (kernels::MatmulInput), so neither the thread count nor the batch changes a bit.
void Context::matmul(const Matrix& w, const float* x, int64_t n, float* y) {
    if (observer_) observer_->on_matmul(w, x, n);
    if (options_.backend && options_.backend->matmul(w, x, n, y)) return;
    // ggml's arithmetic: the 8-bit product where the path has it for the type (the same
    // integer sums as ggml's, at its speed), else rounded activations in the f32 product.
    const bool ggml = options_.arithmetic == Arithmetic::Ggml && w.type != TypeId::F32;
    const auto method = ggml && kernels::has_integer_panel(w.type) ? kernels::MatmulMethod::IntegerPanel : kernels::MatmulMethod::DequantizedPanel;
    kernels::MatmulInput input(w.type, w.cols, n, method, ggml);
    quant::RunOptions run;
    run.threads = options_.threads;
    quant::Executor& pool = quant::default_executor();
    pool.run(input.parts(), [&](int64_t begin, int64_t end) { input.prepare(x, begin, end); }, run);
    const int64_t m = w.rows, panel = kernels::kMatmulPanelRows, panels = (m + panel - 1) / panel;
    pool.run(
        panels,
        [&](int64_t begin, int64_t end) {
            const int64_t r0 = begin * panel, r1 = std::min(m, end * panel);
            kernels::matmul(w.type, w.data + r0 * w.row_bytes, w.row_bytes, r1 - r0, input, y + r0, m, true);
        },
        run);
}

void Context::embed(std::span<const int32_t> tokens, float* x) {
    const Matrix& e = model_->token_embd();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const int32_t t = tokens[i];
        if (t < 0 || t >= e.rows)
            throw std::out_of_range("infer: token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(e.rows));
        kernels::dequantize(e.type, std::span<const uint8_t>(e.data + t * e.row_bytes, static_cast<size_t>(e.row_bytes)),
                            std::span<float>(x + static_cast<int64_t>(i) * e.cols, static_cast<size_t>(e.cols)));
    }
}

// Rotates the first n_dims values of each of `heads` heads of tokens begin ... end - 1,
// with the angles of rope_cos_ / rope_sin_ (filled by eval for the batch's positions).
void Context::rope(float* v, int64_t begin, int64_t end, uint32_t heads) const {
    const Config& c = model_->config();
    const int64_t half = c.rope.n_dims / 2, hd = c.head_dim;
    const bool neox = c.rope.pairing == RopePairing::NeoX;
    for (int64_t t = begin; t < end; ++t) {
        const float* cs = rope_cos_.data() + t * half;
        const float* sn = rope_sin_.data() + t * half;
        for (uint32_t h = 0; h < heads; ++h) {
            float* x = v + (t * heads + h) * hd;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                const float x0 = x[a], x1 = x[b];
                x[a] = x0 * cs[i] - x1 * sn[i];
                x[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

// Causal attention of the batch's n queries over the cache (positions 0 ... n_past + i for
// query i). Work items are (head, block of queries): the block's scores against every key
// it may see come from one f32 matrix product (kernels::matmul: each score summed in a fixed
// order, so a query's scores do not depend on the block it is in), then per query a softmax
// in f32 and the probability-weighted sum of values, in position order.
void Context::attend(uint32_t layer, int64_t n) {
    const Config& c = model_->config();
    const int64_t hd = c.head_dim, kv_dim = int64_t{c.n_head_kv} * hd, q_dim = int64_t{c.n_head} * hd;
    const uint32_t group = c.n_head / c.n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const float* kc = k_cache_.data() + size_t{layer} * n_ctx_ * kv_dim;
    const float* vc = v_cache_.data() + size_t{layer} * n_ctx_ * kv_dim;  // [kv_dim][n_ctx]
    constexpr int64_t kBlock = 32;  // queries per work item
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    quant::RunOptions run;
    run.threads = options_.threads;
    quant::default_executor().run(
        int64_t{c.n_head} * blocks,
        [&](int64_t begin, int64_t end) {
            std::vector<float>& buffer = tls_buffer;
            for (int64_t item = begin; item < end; ++item) {
                const int64_t h = item / blocks, i0 = item % blocks * kBlock, i1 = std::min(n, i0 + kBlock), rows = i1 - i0;
                const int64_t kvh = h / group, keys = n_past_ + i1;
                buffer.assign(static_cast<size_t>(rows * (hd + keys + 1)), 0.0f);
                float* q = buffer.data();
                float* scores = q + rows * hd;
                for (int64_t i = 0; i < rows; ++i) std::copy_n(q_.data() + (i0 + i) * q_dim + h * hd, hd, q + i * hd);
                kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(kc + kvh * hd), kv_dim * static_cast<int64_t>(sizeof(float)), keys,
                                hd, q, rows, scores, kernels::MatmulMethod::DequantizedPanel);
                // Softmax per query; the keys after its own position get probability 0.
                float* sums = scores + rows * keys;
                for (int64_t i = 0; i < rows; ++i) {
                    float* s = scores + i * keys;
                    const int64_t len = n_past_ + i0 + i + 1;
                    float max = -std::numeric_limits<float>::infinity();
                    for (int64_t p = 0; p < len; ++p) max = std::max(max, s[p] *= scale);
                    float sum = 0;
                    for (int64_t p = 0; p < len; ++p) s[p] -= max;
                    kernels::exp_in_place(std::span<float>(s, static_cast<size_t>(len)));
                    for (int64_t p = 0; p < len; ++p) sum += s[p];
                    std::fill(s + len, s + keys, 0.0f);
                    sums[i] = sum;
                }
                // The probability-weighted values: one more product, with the transposed
                // value cache's rows (a head dimension over the positions) as the matrix.
                kernels::MatmulInput probabilities(TypeId::F32, keys, rows, kernels::MatmulMethod::DequantizedPanel);
                probabilities.prepare(scores);
                float* out = att_.data() + i0 * q_dim + h * hd;
                kernels::matmul(TypeId::F32, reinterpret_cast<const uint8_t*>(vc + kvh * hd * n_ctx_), n_ctx_ * static_cast<int64_t>(sizeof(float)), hd,
                                probabilities, out, q_dim, true);
                for (int64_t i = 0; i < rows; ++i) {
                    const float inv = 1.0f / sums[i];
                    for (int64_t d = 0; d < hd; ++d) out[i * q_dim + d] *= inv;
                }
            }
        },
        run);
}

void Context::attention_block(const Layer& l, uint32_t layer, int64_t n) {
    const Config& c = model_->config();
    const int64_t embd = c.n_embd, hd = c.head_dim, q_dim = int64_t{c.n_head} * hd, kv_dim = int64_t{c.n_head_kv} * hd;
    const int threads = options_.threads;
    in_parallel(n, threads, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) rms_norm(x_.data() + t * embd, l.attn_norm.data(), embd, c.rms_eps, xn_.data() + t * embd);
    });
    matmul(l.wq, xn_.data(), n, q_.data());
    matmul(l.wk, xn_.data(), n, k_.data());
    matmul(l.wv, xn_.data(), n, v_.data());
    auto add_bias = [n](std::vector<float>& y, const std::vector<float>& b) {
        if (b.empty()) return;
        const auto dim = static_cast<int64_t>(b.size());
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < dim; ++i) y[static_cast<size_t>(t * dim + i)] += b[static_cast<size_t>(i)];
    };
    add_bias(q_, l.bq);
    add_bias(k_, l.bk);
    add_bias(v_, l.bv);
    in_parallel(n, threads, [&](int64_t b, int64_t e) {
        if (!l.q_norm.empty()) {
            for (int64_t h = b * c.n_head; h < e * c.n_head; ++h) rms_norm(q_.data() + h * hd, l.q_norm.data(), hd, c.rms_eps, q_.data() + h * hd);
            for (int64_t h = b * c.n_head_kv; h < e * c.n_head_kv; ++h)
                rms_norm(k_.data() + h * hd, l.k_norm.data(), hd, c.rms_eps, k_.data() + h * hd);
        }
        rope(q_.data(), b, e, c.n_head);
        rope(k_.data(), b, e, c.n_head_kv);
    });
    // Into the cache; llama.cpp's default cache type is f16.
    const bool f16_cache = options_.arithmetic == Arithmetic::Ggml;
    float* kc = k_cache_.data() + (size_t{layer} * n_ctx_ + n_past_) * kv_dim;
    float* vc = v_cache_.data() + size_t{layer} * n_ctx_ * kv_dim + n_past_;  // transposed: [kv_dim][n_ctx]
    for (int64_t i = 0; i < n * kv_dim; ++i) kc[i] = f16_cache ? round_f16(k_[static_cast<size_t>(i)]) : k_[static_cast<size_t>(i)];
    for (int64_t t = 0; t < n; ++t)
        for (int64_t e = 0; e < kv_dim; ++e) {
            const float v = v_[static_cast<size_t>(t * kv_dim + e)];
            vc[e * n_ctx_ + t] = f16_cache ? round_f16(v) : v;
        }
    attend(layer, n);
    matmul(l.wo, att_.data(), n, xn_.data());
    add_bias(xn_, l.bo);
    in_parallel(n * embd, threads, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x_[static_cast<size_t>(i)] += xn_[static_cast<size_t>(i)];
    });
    (void)q_dim;
}

void Context::ffn_block(const Layer& l, int64_t n) {
    const Config& c = model_->config();
    const int64_t embd = c.n_embd, ff = c.n_ff;
    const int threads = options_.threads;
    in_parallel(n, threads, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) rms_norm(x_.data() + t * embd, l.ffn_norm.data(), embd, c.rms_eps, xn_.data() + t * embd);
    });
    if (l.moe()) {
        ffn_experts(l, n);
    } else {
        matmul(l.ffn_gate, xn_.data(), n, gate_.data());
        matmul(l.ffn_up, xn_.data(), n, up_.data());
        in_parallel(n * ff, threads, [&](int64_t b, int64_t e) {
            kernels::silu_mul(std::span<float>(gate_).subspan(static_cast<size_t>(b), static_cast<size_t>(e - b)),
                              std::span<const float>(up_).subspan(static_cast<size_t>(b), static_cast<size_t>(e - b)));
        });
        matmul(l.ffn_down, gate_.data(), n, xn_.data());
    }
    in_parallel(n * embd, threads, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x_[static_cast<size_t>(i)] += xn_[static_cast<size_t>(i)];
    });
}

// The mixture of experts on the normalized xn_ (n tokens), its output into xn_: the
// router's logits and the routing (route()); each expert's SwiGLU on the tokens routed to
// it, as one batch; per token the experts' outputs weighted and added in the order of
// choice. A token's result depends only on the token, never on the batch.
void Context::ffn_experts(const Layer& l, int64_t n) {
    const Config& c = model_->config();
    const int64_t embd = c.n_embd, ff = c.n_ff_expert, n_expert = c.n_expert, used = c.n_expert_used;
    const int threads = options_.threads;
    std::vector<float>& router = moe_router_;
    router.resize(static_cast<size_t>(n * n_expert));
    matmul(l.ffn_gate_inp, xn_.data(), n, router.data());
    const Routing routing = route(router.data(), n, n_expert, used);
    const std::vector<int32_t>& chosen = routing.chosen;
    const std::vector<float>& weight = routing.weight;
    // Each expert's tokens in order, through its three matrices; its output for token t goes
    // to t's slot for it.
    std::vector<float>& out = moe_out_;
    out.resize(static_cast<size_t>(n * used * embd));
    std::vector<float> x, g, u, d;
    std::vector<int64_t> slots;
    for (int64_t e = 0; e < n_expert; ++e) {
        slots.clear();
        for (int64_t i = 0; i < n * used; ++i)
            if (chosen[static_cast<size_t>(i)] == e) slots.push_back(i);
        const auto m = static_cast<int64_t>(slots.size());
        if (m == 0) continue;
        x.resize(static_cast<size_t>(m * embd));
        g.resize(static_cast<size_t>(m * ff));
        u.resize(static_cast<size_t>(m * ff));
        d.resize(static_cast<size_t>(m * embd));
        for (int64_t j = 0; j < m; ++j) std::copy_n(xn_.data() + slots[static_cast<size_t>(j)] / used * embd, embd, x.data() + j * embd);
        matmul(l.gate_exps[static_cast<size_t>(e)], x.data(), m, g.data());
        matmul(l.up_exps[static_cast<size_t>(e)], x.data(), m, u.data());
        in_parallel(m * ff, threads, [&](int64_t b, int64_t end) {
            kernels::silu_mul(std::span<float>(g).subspan(static_cast<size_t>(b), static_cast<size_t>(end - b)),
                              std::span<const float>(u).subspan(static_cast<size_t>(b), static_cast<size_t>(end - b)));
        });
        matmul(l.down_exps[static_cast<size_t>(e)], g.data(), m, d.data());
        for (int64_t j = 0; j < m; ++j) std::copy_n(d.data() + j * embd, embd, out.data() + slots[static_cast<size_t>(j)] * embd);
    }
    in_parallel(n, threads, [&](int64_t b, int64_t end) {
        for (int64_t t = b; t < end; ++t) {
            float* y = xn_.data() + t * embd;
            std::fill(y, y + embd, 0.0f);
            for (int64_t k = 0; k < used; ++k) {
                const float w = weight[static_cast<size_t>(t * used + k)];
                const float* v = out.data() + (t * used + k) * embd;
                for (int64_t i = 0; i < embd; ++i) y[i] += w * v[i];
            }
        }
    });
}

void Context::eval(std::span<const int32_t> tokens, std::span<float> logits, size_t first_logit) {
    const Config& c = model_->config();
    const auto n = static_cast<int64_t>(tokens.size());
    if (n == 0) return;
    if (tokens.size() > n_ctx_ - n_past_)
        throw std::out_of_range("infer: " + std::to_string(n) + " tokens do not fit the cache (" + std::to_string(n_ctx_ - n_past_) +
                                " of " + std::to_string(n_ctx_) + " positions free)");
    if (first_logit > tokens.size() || logits.size() != (tokens.size() - first_logit) * c.n_vocab)
        throw std::invalid_argument("infer: the logits span holds " + std::to_string(logits.size()) + " floats, expected " +
                                    std::to_string((tokens.size() - std::min(first_logit, tokens.size())) * c.n_vocab));
    grow(n);
    embed(tokens, x_.data());

    // Rotation angles per position, as ggml computes them: theta = p x base^(-2i/n_dims) by
    // repeated multiplication in float, with linear or YaRN scaling.
    const RopeParams& r = c.rope;
    const int64_t half = r.n_dims / 2;
    const float theta_scale = std::pow(r.freq_base, -2.0f / static_cast<float>(r.n_dims));
    float corr_low = 0, corr_high = 0, mscale = r.attn_factor;
    if (r.ext_factor != 0.0f) {
        corr_low = std::max(0.0f, std::floor(yarn_corr_dim(r.n_dims, r.n_ctx_orig, r.beta_fast, r.freq_base)));
        corr_high = std::min(static_cast<float>(r.n_dims - 1), std::ceil(yarn_corr_dim(r.n_dims, r.n_ctx_orig, r.beta_slow, r.freq_base)));
        mscale *= 1.0f + 0.1f * std::log(1.0f / r.freq_scale);
    }
    for (int64_t t = 0; t < n; ++t) {
        float theta_extrap = static_cast<float>(n_past_ + t);
        for (int64_t i = 0; i < half; ++i) {
            // Per-pair frequency factors (rope_freqs.weight, Llama 3.1's scaling) divide the angle.
            const float extrap = r.freq_factors.empty() ? theta_extrap : theta_extrap / r.freq_factors[static_cast<size_t>(i)];
            float theta = r.freq_scale * extrap;
            if (r.ext_factor != 0.0f) {
                const float mix = yarn_ramp(corr_low, corr_high, i) * r.ext_factor;
                theta = theta * (1 - mix) + extrap * mix;
            }
            rope_cos_[static_cast<size_t>(t * half + i)] = std::cos(theta) * mscale;
            rope_sin_[static_cast<size_t>(t * half + i)] = std::sin(theta) * mscale;
            theta_extrap *= theta_scale;
        }
    }

    for (uint32_t layer = 0; layer < c.n_layer; ++layer) {
        const Layer& l = model_->layers()[layer];
        attention_block(l, layer, n);
        ffn_block(l, n);
    }
    n_past_ += static_cast<uint32_t>(n);

    const int64_t embd = c.n_embd, first = static_cast<int64_t>(first_logit), rows = n - first;
    if (rows == 0) return;
    in_parallel(n - first, options_.threads, [&](int64_t b, int64_t e) {
        for (int64_t t = first + b; t < first + e; ++t)
            rms_norm(x_.data() + t * embd, model_->output_norm().data(), embd, c.rms_eps, xn_.data() + t * embd);
    });
    matmul(model_->output(), xn_.data() + first * embd, rows, logits.data());
}

}  // namespace infer
