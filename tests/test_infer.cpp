// The forward pass on models made here: an independent double-precision transformer as the
// oracle for llama, qwen2 and qwen3 (rotary pairing, biases, q/k norms, tied output, linear
// and YaRN rope scaling); batched evaluation against one token at a time; thread counts; errors.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "fixtures.h"
#include "gguf/model.h"
#include "gguf/split.h"
#include "gguf/writer.h"
#include "infer/forward.h"
#include "infer/imatrix.h"
#include "reference_math.h"
#include "support.h"

namespace {

using gguf::OwnedValue;
using gguf::TypeId;

struct Spec {
    std::string arch = "llama";
    uint32_t n_vocab = 48, n_embd = 32, n_head = 4, n_head_kv = 2, head_dim = 8, n_ff = 64, n_layer = 2;
    bool biases = false, qk_norm = false, tied = false;
    float rope_scale_factor = 0;  // > 0: linear scaling (YaRN with yarn_original_context)
    uint32_t yarn_original_context = 0;
    uint32_t n_expert = 0, n_expert_used = 0;  // a mixture of experts
    uint32_t n_ff_expert = 0;                   // an expert's width (qwen3moe's own key; else n_ff)
};

// A tiny model with f32 weights, and those weights for the reference below.
struct TinyModel {
    Spec spec;
    std::map<std::string, std::vector<float>> w;
    std::vector<uint8_t> bytes;
    std::unique_ptr<gguf::Model> file;
    const std::vector<float>& at(const std::string& name) const { return w.at(name); }
    bool has(const std::string& name) const { return w.count(name) != 0; }
};

std::unique_ptr<TinyModel> make_model(const Spec& s) {
    auto m = std::make_unique<TinyModel>();
    m->spec = s;
    uint64_t state = 12345;
    auto uniform = [&state]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<float>(static_cast<double>(state >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    };
    gguf::Writer wr;
    std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes;
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, float scale, float offset = 0) {
        uint64_t n = 1;
        for (uint64_t d : shape) n *= d;
        std::vector<float>& v = m->w[name];
        for (uint64_t i = 0; i < n; ++i) v.push_back(offset + scale * uniform());
        shapes.emplace_back(name, std::move(shape));
    };
    const uint64_t q_dim = uint64_t{s.n_head} * s.head_dim, kv_dim = uint64_t{s.n_head_kv} * s.head_dim;
    add("token_embd.weight", {s.n_embd, s.n_vocab}, 1.0f);
    for (uint32_t l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {s.n_embd}, 0.2f, 1.0f);
        add(p + "attn_q.weight", {s.n_embd, q_dim}, 0.4f);
        add(p + "attn_k.weight", {s.n_embd, kv_dim}, 0.4f);
        add(p + "attn_v.weight", {s.n_embd, kv_dim}, 0.4f);
        if (s.biases) {
            add(p + "attn_q.bias", {q_dim}, 0.3f);
            add(p + "attn_k.bias", {kv_dim}, 0.3f);
            add(p + "attn_v.bias", {kv_dim}, 0.3f);
        }
        if (s.qk_norm) {
            add(p + "attn_q_norm.weight", {s.head_dim}, 0.3f, 1.0f);
            add(p + "attn_k_norm.weight", {s.head_dim}, 0.3f, 1.0f);
        }
        add(p + "attn_output.weight", {q_dim, s.n_embd}, 0.3f);
        add(p + "ffn_norm.weight", {s.n_embd}, 0.2f, 1.0f);
        if (s.n_expert) {
            add(p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, 0.6f);
            const uint32_t ff = s.n_ff_expert ? s.n_ff_expert : s.n_ff;
            add(p + "ffn_gate_exps.weight", {s.n_embd, ff, s.n_expert}, 0.3f);
            add(p + "ffn_up_exps.weight", {s.n_embd, ff, s.n_expert}, 0.3f);
            add(p + "ffn_down_exps.weight", {ff, s.n_embd, s.n_expert}, 0.3f);
        } else {
            add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, 0.3f);
            add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, 0.3f);
            add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, 0.3f);
        }
    }
    add("output_norm.weight", {s.n_embd}, 0.2f, 1.0f);
    if (!s.tied) add("output.weight", {s.n_embd, s.n_vocab}, 0.3f);
    for (const auto& [name, shape] : shapes) {
        const std::vector<float>& v = m->w.at(name);
        wr.add_tensor(name, TypeId::F32, shape,
                      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)));
    }
    const std::string a = s.arch + ".";
    wr.set("general.architecture", OwnedValue::string(s.arch));
    wr.set(a + "context_length", OwnedValue::u32(64));
    wr.set(a + "embedding_length", OwnedValue::u32(s.n_embd));
    wr.set(a + "block_count", OwnedValue::u32(s.n_layer));
    wr.set(a + "feed_forward_length", OwnedValue::u32(s.n_ff));
    wr.set(a + "attention.head_count", OwnedValue::u32(s.n_head));
    wr.set(a + "attention.head_count_kv", OwnedValue::u32(s.n_head_kv));
    wr.set(a + "attention.key_length", OwnedValue::u32(s.head_dim));
    wr.set(a + "attention.value_length", OwnedValue::u32(s.head_dim));
    wr.set(a + "rope.dimension_count", OwnedValue::u32(s.head_dim));
    wr.set(a + "rope.freq_base", OwnedValue::f32(1000.0f));
    wr.set(a + "attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-6f));
    if (s.n_expert) {
        wr.set(a + "expert_count", OwnedValue::u32(s.n_expert));
        wr.set(a + "expert_used_count", OwnedValue::u32(s.n_expert_used));
        if (s.n_ff_expert) wr.set(a + "expert_feed_forward_length", OwnedValue::u32(s.n_ff_expert));
    }
    if (s.rope_scale_factor > 0) {
        wr.set(a + "rope.scaling.type", OwnedValue::string(s.yarn_original_context ? "yarn" : "linear"));
        wr.set(a + "rope.scaling.factor", OwnedValue::f32(s.rope_scale_factor));
        if (s.yarn_original_context) wr.set(a + "rope.scaling.original_context_length", OwnedValue::u32(s.yarn_original_context));
    }
    wr.set("tokenizer.ggml.model", OwnedValue::string(s.arch == "llama" ? "llama" : "gpt2"));
    wr.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(1));
    m->bytes = wr.write_to_memory();
    std::vector<gguf::File> parts;
    parts.push_back(gguf::File::parse(m->bytes, s.arch + "-tiny.gguf"));
    m->file = std::make_unique<gguf::Model>(gguf::Model::from_parts(std::move(parts)));
    return m;
}

// ---- The oracle: the transformer written out plainly, in double ---------------------------

using test::rms_norm;
using test::Vec;

// Rotary embedding of one head at position `pos`, base 1000: pair i turns by pos x
// base^(-2i / dims), divided by `factor` (linear scaling). With YaRN (original context
// `yarn_ctx` > 0, beta_fast 32, beta_slow 1): pairs below the ramp keep the unscaled angle,
// pairs above it the scaled one, a linear mix between, and both cosine and sine grow by
// 1 + 0.1 ln(factor) (the YaRN paper's attention temperature, as ggml applies it).
void rotate(double* head, size_t dims, size_t pos, bool neox, double factor, uint32_t yarn_ctx) {
    double low = 0, high = 0, mscale = 1;
    if (yarn_ctx) {
        const auto corr = [&](double rotations) {
            return static_cast<double>(dims) * std::log(yarn_ctx / (rotations * 2 * std::numbers::pi)) / (2 * std::log(1000.0));
        };
        low = std::max(0.0, std::floor(corr(32))), high = std::min(static_cast<double>(dims - 1), std::ceil(corr(1)));
        mscale = 1 + 0.1 * std::log(factor);
    }
    for (size_t i = 0; i < dims / 2; ++i) {
        const double extrapolated = static_cast<double>(pos) * std::pow(1000.0, -2.0 * static_cast<double>(i) / static_cast<double>(dims));
        double theta = extrapolated / factor;
        if (yarn_ctx) {
            const double mix = 1 - std::clamp((static_cast<double>(i) - low) / std::max(0.001, high - low), 0.0, 1.0);
            theta = theta * (1 - mix) + extrapolated * mix;
        }
        const size_t a = neox ? i : 2 * i, b = neox ? i + dims / 2 : 2 * i + 1;
        const double x0 = head[a], x1 = head[b];
        head[a] = (x0 * std::cos(theta) - x1 * std::sin(theta)) * mscale;
        head[b] = (x0 * std::sin(theta) + x1 * std::cos(theta)) * mscale;
    }
}

std::vector<Vec> reference_logits(const TinyModel& m, const std::vector<int32_t>& tokens) {
    const Spec& s = m.spec;
    const size_t n = tokens.size(), hd = s.head_dim, q_dim = s.n_head * hd, kv_dim = s.n_head_kv * hd;
    const bool neox = s.arch != "llama";
    const double rope_factor = s.rope_scale_factor > 0 ? s.rope_scale_factor : 1.0;
    std::vector<Vec> x(n);
    for (size_t t = 0; t < n; ++t) {
        const std::vector<float>& e = m.at("token_embd.weight");
        x[t].assign(e.begin() + static_cast<std::ptrdiff_t>(tokens[t] * s.n_embd), e.begin() + static_cast<std::ptrdiff_t>((tokens[t] + 1) * s.n_embd));
    }
    for (uint32_t l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        std::vector<Vec> q(n), k(n), v(n);
        for (size_t t = 0; t < n; ++t) {
            const Vec h = rms_norm(x[t], m.at(p + "attn_norm.weight"), 1e-6);
            q[t] = test::linear(m.at(p + "attn_q.weight"), h, q_dim);
            k[t] = test::linear(m.at(p + "attn_k.weight"), h, kv_dim);
            v[t] = test::linear(m.at(p + "attn_v.weight"), h, kv_dim);
            if (s.biases)
                for (auto [vec, name] : {std::pair{&q[t], "attn_q.bias"}, {&k[t], "attn_k.bias"}, {&v[t], "attn_v.bias"}})
                    for (size_t i = 0; i < vec->size(); ++i) (*vec)[i] += m.at(p + name)[i];
            for (size_t h2 = 0; h2 < s.n_head; ++h2) {
                if (s.qk_norm) {
                    const Vec head = rms_norm(Vec(q[t].begin() + static_cast<std::ptrdiff_t>(h2 * hd), q[t].begin() + static_cast<std::ptrdiff_t>((h2 + 1) * hd)),
                                              m.at(p + "attn_q_norm.weight"), 1e-6);
                    std::copy(head.begin(), head.end(), q[t].begin() + static_cast<std::ptrdiff_t>(h2 * hd));
                }
                rotate(q[t].data() + h2 * hd, hd, t, neox, rope_factor, s.yarn_original_context);
            }
            for (size_t h2 = 0; h2 < s.n_head_kv; ++h2) {
                if (s.qk_norm) {
                    const Vec head = rms_norm(Vec(k[t].begin() + static_cast<std::ptrdiff_t>(h2 * hd), k[t].begin() + static_cast<std::ptrdiff_t>((h2 + 1) * hd)),
                                              m.at(p + "attn_k_norm.weight"), 1e-6);
                    std::copy(head.begin(), head.end(), k[t].begin() + static_cast<std::ptrdiff_t>(h2 * hd));
                }
                rotate(k[t].data() + h2 * hd, hd, t, neox, rope_factor, s.yarn_original_context);
            }
        }
        for (size_t t = 0; t < n; ++t) {
            Vec att(q_dim, 0.0);
            for (size_t h2 = 0; h2 < s.n_head; ++h2) {
                const size_t kvh = h2 / (s.n_head / s.n_head_kv);
                Vec score(t + 1);
                double max = -1e300, sum = 0;
                for (size_t j = 0; j <= t; ++j) {
                    double d = 0;
                    for (size_t i = 0; i < hd; ++i) d += q[t][h2 * hd + i] * k[j][kvh * hd + i];
                    score[j] = d / std::sqrt(static_cast<double>(hd));
                    max = std::max(max, score[j]);
                }
                for (double& sc : score) sum += (sc = std::exp(sc - max));
                for (size_t j = 0; j <= t; ++j)
                    for (size_t i = 0; i < hd; ++i) att[h2 * hd + i] += score[j] / sum * v[j][kvh * hd + i];
            }
            const Vec o = test::linear(m.at(p + "attn_output.weight"), att, s.n_embd);
            for (size_t i = 0; i < s.n_embd; ++i) x[t][i] += o[i];
            const Vec h = rms_norm(x[t], m.at(p + "ffn_norm.weight"), 1e-6);
            // One SwiGLU: the gate, up and down matrices at offset `at` values of their tensors.
            auto swiglu = [&](const std::string& gate, const std::string& up, const std::string& down, size_t at, size_t ff) {
                const std::vector<float> wg(m.at(gate).begin() + static_cast<std::ptrdiff_t>(at), m.at(gate).end());
                const std::vector<float> wu(m.at(up).begin() + static_cast<std::ptrdiff_t>(at), m.at(up).end());
                const std::vector<float> wd(m.at(down).begin() + static_cast<std::ptrdiff_t>(at), m.at(down).end());
                const Vec g = test::linear(wg, h, ff), u = test::linear(wu, h, ff);
                Vec a(ff);
                for (size_t i = 0; i < ff; ++i) a[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
                return test::linear(wd, a, s.n_embd);
            };
            if (!s.n_expert) {
                const Vec d = swiglu(p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight", 0, s.n_ff);
                for (size_t i = 0; i < s.n_embd; ++i) x[t][i] += d[i];
                continue;
            }
            // Mixture of experts: softmax of the router, the n_expert_used most probable
            // experts, their probabilities renormalized, their outputs weighted.
            const Vec z = test::linear(m.at(p + "ffn_gate_inp.weight"), h, s.n_expert);
            Vec prob(s.n_expert);
            const double zmax = *std::max_element(z.begin(), z.end());
            double zsum = 0;
            for (size_t e = 0; e < s.n_expert; ++e) zsum += (prob[e] = std::exp(z[e] - zmax));
            std::vector<size_t> order(s.n_expert);
            for (size_t e = 0; e < s.n_expert; ++e) order[e] = e;
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
            double chosen = 0;
            for (size_t slot = 0; slot < s.n_expert_used; ++slot) chosen += prob[order[slot]];
            for (size_t slot = 0; slot < s.n_expert_used; ++slot) {
                const size_t e = order[slot];
                const size_t ff = s.n_ff_expert ? s.n_ff_expert : s.n_ff;
                const Vec d = swiglu(p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight", e * ff * s.n_embd, ff);
                for (size_t i = 0; i < s.n_embd; ++i) x[t][i] += prob[e] / chosen * d[i];
            }
        }
    }
    std::vector<Vec> logits(n);
    for (size_t t = 0; t < n; ++t)
        logits[t] = test::linear(m.at(s.tied ? "token_embd.weight" : "output.weight"), rms_norm(x[t], m.at("output_norm.weight"), 1e-6), s.n_vocab);
    return logits;
}

std::vector<int32_t> some_tokens(size_t n, uint32_t n_vocab) {
    std::vector<int32_t> t;
    for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>((i * 7 + 3) % n_vocab));
    return t;
}

std::vector<float> eval_batched(const infer::Model& model, const std::vector<int32_t>& tokens, infer::EvalOptions o) {
    infer::Context ctx(model, static_cast<uint32_t>(tokens.size()), o);
    std::vector<float> logits(tokens.size() * model.config().n_vocab);
    ctx.eval(tokens, logits);
    return logits;
}

std::vector<float> eval_one_by_one(const infer::Model& model, const std::vector<int32_t>& tokens, infer::EvalOptions o) {
    infer::Context ctx(model, static_cast<uint32_t>(tokens.size()), o);
    const size_t v = model.config().n_vocab;
    std::vector<float> logits(tokens.size() * v);
    for (size_t t = 0; t < tokens.size(); ++t)
        ctx.eval(std::span<const int32_t>(&tokens[t], 1), std::span<float>(logits.data() + t * v, v));
    return logits;
}

double max_abs_difference(std::span<const float> a, std::span<const float> b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
}

}  // namespace

TEST_CASE("the forward pass equals a plain double-precision transformer: llama, qwen2, qwen3, linear and YaRN rope scaling, "
          "mixtures of experts") {
    Spec llama;
    Spec llama_scaled;
    llama_scaled.rope_scale_factor = 4;
    // YaRN over 4096 trained positions: with 8 head dimensions the ramp runs from pair 1 to
    // pair 4, so the pairs get unscaled, mixed and scaled angles.
    Spec llama_yarn = llama_scaled;
    llama_yarn.yarn_original_context = 4096;
    Spec qwen2_yarn;
    qwen2_yarn.arch = "qwen2";
    qwen2_yarn.biases = true;
    qwen2_yarn.rope_scale_factor = 2;
    qwen2_yarn.yarn_original_context = 1024;
    Spec qwen2;
    qwen2.arch = "qwen2";
    qwen2.biases = true;
    qwen2.tied = true;
    Spec qwen3;
    qwen3.arch = "qwen3";
    qwen3.qk_norm = true;
    qwen3.head_dim = 16;  // key_length above n_embd / n_head, as Qwen3 has
    // Mixtral (written as llama) and Qwen3-MoE: 4 experts, 2 per token.
    Spec mixtral;
    mixtral.n_expert = 4, mixtral.n_expert_used = 2;
    Spec qwen3moe = qwen3;
    qwen3moe.arch = "qwen3moe";
    qwen3moe.n_expert = 4, qwen3moe.n_expert_used = 2;
    qwen3moe.n_ff_expert = 40;  // its experts narrower than feed_forward_length, as in Qwen3-MoE
    for (const Spec& s : {llama, llama_scaled, llama_yarn, qwen2, qwen2_yarn, qwen3, mixtral, qwen3moe}) {
        CAPTURE(s.arch);
        CAPTURE(s.rope_scale_factor);
        CAPTURE(s.yarn_original_context);
        const auto m = make_model(s);
        const infer::Model model(*m->file);
        CHECK(model.config().tied_output == s.tied);
        const std::vector<int32_t> tokens = some_tokens(20, s.n_vocab);
        const std::vector<Vec> want = reference_logits(*m, tokens);
        const std::vector<float> got = eval_batched(model, tokens, {infer::Arithmetic::F32, 0});
        double worst = 0, scale = 0;
        for (size_t t = 0; t < tokens.size(); ++t)
            for (size_t i = 0; i < s.n_vocab; ++i) {
                worst = std::max(worst, std::abs(got[t * s.n_vocab + i] - want[t][i]));
                scale = std::max(scale, std::abs(want[t][i]));
            }
        std::printf("%s%s: largest logit %.3f, largest difference from the double-precision oracle %.2e\n", s.arch.c_str(),
                    s.n_expert               ? " (mixture of experts)"
                    : s.yarn_original_context ? " (YaRN rope scaling)"
                    : s.rope_scale_factor > 0 ? " (linear rope scaling)"
                                              : "",
                    scale, worst);
        if (s.n_expert) {
            // A token's result never depends on its batch (each expert sees other tokens).
            CHECK(max_abs_difference(got, eval_one_by_one(model, tokens, {infer::Arithmetic::F32, 0})) == 0.0);
        }
        CHECK(scale > 1.0);            // logits that say something
        CHECK(worst < 2e-5 * scale);   // float rounding only
    }
}

TEST_CASE("batched evaluation equals one token at a time (demo llama models, both arithmetics)") {
    gguf::fixtures::DemoOptions f16;
    const gguf::fixtures::DemoOptions mixed = gguf::fixtures::mixed_demo_options();
    for (const gguf::fixtures::DemoOptions& o : {f16, mixed}) {
        const std::vector<uint8_t> bytes = gguf::fixtures::demo_model(o).write_to_memory();
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(bytes, "demo.gguf"));
        const gguf::Model file = gguf::Model::from_parts(std::move(parts));
        const infer::Model model(file);
        const std::vector<int32_t> tokens = some_tokens(24, model.config().n_vocab);
        for (infer::Arithmetic a : {infer::Arithmetic::F32, infer::Arithmetic::Ggml}) {
            CAPTURE(infer::arithmetic_name(a));
            CAPTURE(o.mixed_types);
            const std::vector<float> batched = eval_batched(model, tokens, {a, 0});
            const std::vector<float> single = eval_one_by_one(model, tokens, {a, 0});
            const double d = max_abs_difference(batched, single);
            std::printf("demo model (%s weights, %s activations): batched vs one token at a time: largest difference %.2e\n",
                        o.mixed_types ? "mixed" : "f16", std::string(infer::arithmetic_name(a)).c_str(), d);
            CHECK(d == 0.0);
        }
    }
}

TEST_CASE("results do not depend on the thread count") {
    const std::vector<uint8_t> bytes = gguf::fixtures::demo_model(gguf::fixtures::mixed_demo_options()).write_to_memory();
    std::vector<gguf::File> parts;
    parts.push_back(gguf::File::parse(bytes, "demo-mixed.gguf"));
    const gguf::Model file = gguf::Model::from_parts(std::move(parts));
    const infer::Model model(file);
    const std::vector<int32_t> tokens = some_tokens(33, model.config().n_vocab);
    for (infer::Arithmetic a : {infer::Arithmetic::F32, infer::Arithmetic::Ggml}) {
        const std::vector<float> one = eval_batched(model, tokens, {a, 1});
        for (int threads : {2, 3, 0}) CHECK(eval_batched(model, tokens, {a, threads}) == one);
    }
}

TEST_CASE("the memory figures count the weights, the cache and the buffers") {
    const auto m = make_model(Spec{});
    const infer::Model model(*m->file);
    infer::Context ctx(model, 16);
    std::vector<float> logits(model.config().n_vocab);
    ctx.eval(some_tokens(4, 48), logits, 3);
    const infer::MemoryFigures f = ctx.memory();
    const Spec s;
    CHECK(f.mapped_weights == 4 * (2ull * s.n_vocab * s.n_embd + s.n_layer * (2ull * 32 * 32 + 2ull * 32 * 16 + 3ull * 32 * 64)));
    CHECK(f.kv_cache == 4ull * 2 * s.n_layer * 16 * s.n_head_kv * s.head_dim);
    CHECK(f.activations > 0);
    CHECK(ctx.n_past() == 4);
}

// The share of the pages of `bytes` mapped into this process (/proc/self/pagemap's present
// bit): the page tables, not the page cache, and by page (the resident-set size also counts
// what a fault maps around its page, a whole large folio of the page cache).
static double mapped_share(std::span<const uint8_t> bytes) {
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t first = reinterpret_cast<uintptr_t>(bytes.data()) / page, last = (reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size() - 1) / page;
    std::vector<uint64_t> entries(last - first + 1);
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);  // 8 bytes a page, read whole entries
    REQUIRE(fd >= 0);
    const auto got = ::pread(fd, entries.data(), entries.size() * 8, static_cast<off_t>(first * 8));
    ::close(fd);
    REQUIRE(got == static_cast<ssize_t>(entries.size() * 8));
    size_t present = 0;
    for (uint64_t e : entries) present += e >> 63;
    return static_cast<double>(present) / static_cast<double>(entries.size());
}

TEST_CASE("map_in maps the matrices the products read whole (experts, routers, every part of a split set), and the token embedding "
          "only when it is also the output") {
    const auto span = [](const infer::Matrix& w) { return std::span<const uint8_t>(w.data, static_cast<size_t>(w.bytes())); };
    const auto check_mapped = [&](const infer::Model& model) {
        CHECK(mapped_share(span(model.output())) == 1.0);
        int64_t matrices = 0;
        for (const infer::Layer& l : model.layers()) {
            std::vector<const infer::Matrix*> all;
            for (const infer::Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate_inp, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
                if (w->data) all.push_back(w);
            for (const auto* list : {&l.gate_exps, &l.up_exps, &l.down_exps})
                for (const infer::Matrix& w : *list) all.push_back(&w);
            for (const infer::Matrix* w : all) CHECK(mapped_share(span(*w)) == 1.0);
            matrices += static_cast<int64_t>(all.size());
        }
        return matrices;
    };
    // f32 tensors: the embedding (and output) 16 MiB, each layer's matrices 3.75 MiB.
    Spec s;
    s.n_vocab = 16384, s.n_embd = 256, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 64, s.n_ff = 1024;
    for (const bool tied : {false, true}) {
        CAPTURE(tied);
        s.tied = tied;
        const auto m = make_model(s);
        test::TempDir d;
        test::write_bytes(d / "m.gguf", m->bytes);
        const gguf::Model file = gguf::Model::open(d / "m.gguf");
        const infer::Model model(file);
        model.map_in();
        CHECK(check_mapped(model) == 14);
        // Read a row per token, the embedding stays out where it is not the output (but for
        // pages a neighbour's fault mapped with its own). llama.cpp's loader maps it in too.
        if (tied)
            CHECK(mapped_share(span(model.token_embd())) == 1.0);
        else
            CHECK(mapped_share(span(model.token_embd())) < 0.5);
    }
    // A mixture of experts written as a split set of five-tensor parts.
    Spec e;
    e.n_vocab = 4096, e.n_embd = 256, e.n_head = 4, e.n_head_kv = 2, e.head_dim = 64, e.n_ff = 512, e.n_expert = 4, e.n_expert_used = 2;
    const auto m = make_model(e);
    test::TempDir d;
    test::write_bytes(d / "moe.gguf", m->bytes);
    const gguf::Model whole = gguf::Model::open(d / "moe.gguf");
    std::vector<uint64_t> sizes;
    for (const gguf::Model::Tensor& t : whole.tensors()) sizes.push_back(t.info->n_bytes);
    gguf::SplitLimits limits;
    limits.max_tensors = 5;
    std::vector<gguf::Writer> parts = gguf::split_writers(whole, gguf::plan_split(sizes, limits));
    const std::vector<std::filesystem::path> paths = gguf::write_split_set(parts, d / "set.gguf");
    const gguf::Model set = gguf::Model::open(paths.front());
    REQUIRE(set.parts().size() > 3);
    const infer::Model model(set);
    model.map_in();
    CHECK(check_mapped(model) == 2 * (4 + 1 + 3 * 4));
}

TEST_CASE("bad input: unknown architecture, missing tensor, token outside the vocabulary, full cache") {
    Spec gpt;
    gpt.arch = "gpt2";
    const auto unknown = make_model(gpt);
    CHECK_THROWS_WITH_AS(infer::Model{*unknown->file}, doctest::Contains("architecture 'gpt2' is not supported"), std::runtime_error);
    Spec qwen2;
    qwen2.arch = "qwen2";  // needs q/k/v biases
    const auto no_bias = make_model(qwen2);
    CHECK_THROWS_WITH_AS(infer::Model{*no_bias->file}, doctest::Contains("blk.0.attn_q.bias is missing"), std::runtime_error);
    const auto m = make_model(Spec{});
    const infer::Model model(*m->file);
    infer::Context ctx(model, 2);
    std::vector<float> logits(model.config().n_vocab);
    const std::vector<int32_t> bad = {48};
    CHECK_THROWS_AS(ctx.eval(bad, logits), std::out_of_range);
    const std::vector<int32_t> three = {1, 2, 3};
    CHECK_THROWS_AS(ctx.eval(three, logits, 2), std::out_of_range);
}

TEST_CASE("importance matrix of a mixture of experts: per expert, the tokens routed to it; the router sees every token") {
    Spec mixtral;
    mixtral.n_expert = 4, mixtral.n_expert_used = 2;
    const auto tiny = make_model(mixtral);
    const infer::Model model(*tiny->file);
    const std::vector<int32_t> tokens = some_tokens(64, mixtral.n_vocab);  // 2 chunks of 32
    infer::ImatrixOptions io;
    io.n_ctx = 32;
    const quant::ImportanceMatrix m = infer::compute_imatrix(model, tokens, io).matrix;
    CHECK(m.size() == 8 * mixtral.n_layer);  // attention 4, router 1, experts 3 per layer
    for (uint32_t l = 0; l < mixtral.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        const quant::ImatrixEntry& router = m.entries().at(p + "ffn_gate_inp.weight");
        CHECK(router.counts == std::vector<float>{64.0f});
        for (const char* name : {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"}) {
            CAPTURE(p + name);
            const quant::ImatrixEntry& e = m.entries().at(p + name);
            REQUIRE(e.experts() == mixtral.n_expert);
            float routed = 0;
            for (float c : e.counts) routed += c;
            CHECK(routed == 64.0f * static_cast<float>(mixtral.n_expert_used));  // each token reaches n_expert_used experts
            CHECK(std::count(e.counts.begin(), e.counts.end(), 0.0f) < 4);
        }
        // The gate and up experts take the router's input: over the experts, each column's
        // sums are n_expert_used times the router's.
        const quant::ImatrixEntry& gate = m.entries().at(p + "ffn_gate_exps.weight");
        for (uint32_t j = 0; j < mixtral.n_embd; ++j) {
            double over_experts = 0;
            for (uint32_t e = 0; e < mixtral.n_expert; ++e) over_experts += gate.sums[e * mixtral.n_embd + j];
            CHECK(over_experts == doctest::Approx(2.0 * router.sums[j]).epsilon(1e-5));
        }
        CHECK(m.entries().at(p + "ffn_up_exps.weight").sums == gate.sums);
    }
}

TEST_CASE("importance matrix of a demo model: counts are the evaluated tokens, sums positive, the same for 1 and 2 threads") {
    for (const gguf::fixtures::DemoOptions& o : {gguf::fixtures::DemoOptions{}, gguf::fixtures::mixed_demo_options()}) {
        CAPTURE(o.mixed_types);
        const std::vector<uint8_t> bytes = gguf::fixtures::demo_model(o).write_to_memory();
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(bytes, "demo.gguf"));
        const gguf::Model file = gguf::Model::from_parts(std::move(parts));
        const infer::Model model(file);
        const std::vector<int32_t> tokens = some_tokens(100, model.config().n_vocab);  // 3 chunks of 32, 4 left over
        for (bool process_output : {false, true}) {
            infer::ImatrixOptions io;
            io.n_ctx = 32;
            io.process_output = process_output;
            io.datasets = {"some tokens"};
            io.eval.threads = 1;
            const infer::ImatrixResult one = infer::compute_imatrix(model, tokens, io);
            io.eval.threads = 2;
            const infer::ImatrixResult two = infer::compute_imatrix(model, tokens, io);
            const quant::ImportanceMatrix& m = one.matrix;
            CHECK(one.chunks == 3);
            CHECK(m.chunk_count == 3);
            CHECK(m.chunk_size == 32);
            CHECK(m.datasets == std::vector<std::string>{"some tokens"});
            CHECK(m.size() == 7 * o.n_layer + (process_output ? 1 : 0));
            CHECK((m.find("output.weight") != nullptr) == process_output);
            for (const auto& [name, e] : m.entries()) {
                CAPTURE(name);
                CHECK(e.counts == std::vector<float>{96.0f});
                const int64_t cols = name.find("ffn_down") != std::string::npos ? o.n_ff : o.n_embd;
                CHECK(e.sums.size() == static_cast<size_t>(cols));
                CHECK(std::all_of(e.sums.begin(), e.sums.end(), [](float s) { return s > 0 && std::isfinite(s); }));
                const auto it = two.matrix.entries().find(name);
                REQUIRE(it != two.matrix.entries().end());
                CHECK(it->second.sums == e.sums);
                CHECK(it->second.counts == e.counts);
            }
            // The attention products of q, k and v share their input.
            CHECK(m.entries().at("blk.0.attn_q.weight").sums == m.entries().at("blk.0.attn_v.weight").sums);
            CHECK(one.nll.ppl() == two.nll.ppl());
        }
    }
}

TEST_CASE("a matmul observer sees each weight product with its columns; none set changes nothing") {
    const auto m = make_model(Spec{});
    const infer::Model model(*m->file);
    struct Seen : infer::MatmulObserver {
        std::vector<std::pair<const infer::Matrix*, int64_t>> calls;
        void on_matmul(const infer::Matrix& w, const float*, int64_t n) override { calls.emplace_back(&w, n); }
    } seen;
    const std::vector<int32_t> tokens = some_tokens(5, 48);
    std::vector<float> observed(size_t{5} * 48), plain(size_t{5} * 48);
    infer::Context a(model, 8), b(model, 8);
    a.set_observer(&seen);
    a.eval(tokens, observed);
    b.eval(tokens, plain);
    CHECK(observed == plain);
    REQUIRE(seen.calls.size() == 7 * 2 + 1);
    CHECK(seen.calls[0].first == &model.layers()[0].wq);
    CHECK(seen.calls.back().first == &model.output());
    for (const auto& c : seen.calls) CHECK(c.second == 5);
    CHECK_THROWS_AS(infer::compute_imatrix(model, some_tokens(64, 48), infer::ImatrixOptions{8, 0, false, {}, {}}), std::invalid_argument);
    CHECK_THROWS_AS(infer::compute_imatrix(model, some_tokens(20, 48), infer::ImatrixOptions{16, 0, false, {}, {}}), std::invalid_argument);
}
