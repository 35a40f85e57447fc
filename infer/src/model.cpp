#include "infer/model.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "gguf/arch.h"
#include "infer/tokenizer.h"
#include "kernels/kernels.h"

namespace infer {

namespace {

using gguf::Hyper;
using gguf::TensorRole;

[[noreturn]] void fail(const gguf::Model& m, const std::string& what) {
    throw std::runtime_error(m.first().path() + ": " + what);
}

const gguf::KeyValue* find_key(const gguf::Model& m, const std::string& key) { return m.find(key); }

std::optional<double> number(const gguf::Model& m, const std::string& key) {
    const gguf::KeyValue* kv = find_key(m, key);
    if (!kv) return std::nullopt;
    gguf::Value v = kv->value;
    if (v.type() == gguf::ValueType::Array) {
        if (v.array().empty()) return std::nullopt;
        v = *v.array().begin();
    }
    if (!v.is_integer() && !v.is_float()) fail(m, "key " + key + " is not a number");
    return v.as_double();
}

std::string text(const gguf::Model& m, const std::string& key) {
    const gguf::KeyValue* kv = find_key(m, key);
    return kv && kv->value.type() == gguf::ValueType::String ? std::string(kv->value.str()) : std::string();
}

// The whole tensor converted to f32: only for the small 1-D ones (norms, biases).
std::vector<float> small_vector(const gguf::Model& m, const gguf::Model::Tensor& t, uint64_t expected) {
    const gguf::TensorInfo& info = *t.info;
    if (info.n_elements != expected)
        fail(m, "tensor " + std::string(info.name) + " has " + std::to_string(info.n_elements) + " values, expected " +
                    std::to_string(expected));
    if (!kernels::can_dequantize(info.type))
        fail(m, "tensor " + std::string(info.name) + ": type " + std::string(gguf::type_info(info.type).name) + " cannot be read");
    std::vector<float> v(expected);
    kernels::dequantize(info.type, m.tensor_data(t), v);
    return v;
}

class Loader {
public:
    explicit Loader(const gguf::Model& m) : m_(m) {}

    const gguf::Model::Tensor* find(TensorRole role, std::optional<uint32_t> layer, std::string_view suffix = "weight") const {
        return m_.find_tensor(gguf::tensor_name(role, layer, suffix));
    }

    Matrix matrix(TensorRole role, std::optional<uint32_t> layer, int64_t cols, int64_t rows) const {
        const std::string name = gguf::tensor_name(role, layer);
        const gguf::Model::Tensor* t = m_.find_tensor(name);
        if (!t) fail(m_, "tensor " + name + " is missing");
        return matrix(*t, cols, rows);
    }

    Matrix matrix(const gguf::Model::Tensor& t, int64_t cols, int64_t rows) const {
        const gguf::TensorInfo& info = *t.info;
        const std::string name(info.name);
        if (info.n_dims > 2 || static_cast<int64_t>(info.shape[0]) != cols || static_cast<int64_t>(info.shape[1]) != rows)
            fail(m_, "tensor " + name + " has shape [" + std::to_string(info.shape[0]) + ", " + std::to_string(info.shape[1]) +
                         "], expected [" + std::to_string(cols) + ", " + std::to_string(rows) + "]");
        if (!kernels::can_dequantize(info.type) || !gguf::type_info(info.type).type_size)
            fail(m_, "tensor " + name + ": type " + std::string(gguf::type_info(info.type).name) + " is not supported");
        const std::span<const uint8_t> data = m_.tensor_data(t);
        Matrix x;
        x.type = info.type;
        x.rows = rows;
        x.cols = cols;
        x.row_bytes = static_cast<int64_t>(info.n_bytes / static_cast<uint64_t>(rows));
        if (data.size() != info.n_bytes || static_cast<uint64_t>(x.row_bytes) * static_cast<uint64_t>(rows) != info.n_bytes)
            fail(m_, "tensor " + name + ": its data is not readable");
        x.data = data.data();
        return x;
    }

    // A 3-D [cols, rows, experts] tensor as one Matrix per expert.
    std::vector<Matrix> experts(TensorRole role, uint32_t layer, int64_t cols, int64_t rows, uint32_t n_expert) const {
        const std::string name = gguf::tensor_name(role, layer);
        const gguf::Model::Tensor* t = m_.find_tensor(name);
        if (!t) fail(m_, "tensor " + name + " is missing");
        const gguf::TensorInfo& info = *t->info;
        if (info.n_dims != 3 || static_cast<int64_t>(info.shape[0]) != cols || static_cast<int64_t>(info.shape[1]) != rows ||
            info.shape[2] != n_expert)
            fail(m_, "tensor " + name + " has shape [" + std::to_string(info.shape[0]) + ", " + std::to_string(info.shape[1]) + ", " +
                         std::to_string(info.n_dims > 2 ? info.shape[2] : 1) + "], expected [" + std::to_string(cols) + ", " +
                         std::to_string(rows) + ", " + std::to_string(n_expert) + "]");
        if (!kernels::can_dequantize(info.type) || !gguf::type_info(info.type).type_size)
            fail(m_, "tensor " + name + ": type " + std::string(gguf::type_info(info.type).name) + " is not supported");
        const std::span<const uint8_t> data = m_.tensor_data(*t);
        const uint64_t total_rows = static_cast<uint64_t>(rows) * n_expert;
        const auto row_bytes = static_cast<int64_t>(info.n_bytes / total_rows);
        if (data.size() != info.n_bytes || static_cast<uint64_t>(row_bytes) * total_rows != info.n_bytes)
            fail(m_, "tensor " + name + ": its data is not readable");
        std::vector<Matrix> out(n_expert);
        for (uint32_t e = 0; e < n_expert; ++e) out[e] = {info.type, data.data() + static_cast<uint64_t>(e) * rows * row_bytes, rows, cols, row_bytes};
        return out;
    }

    std::vector<float> vector(TensorRole role, std::optional<uint32_t> layer, uint64_t n, bool required,
                              std::string_view suffix = "weight") const {
        const gguf::Model::Tensor* t = find(role, layer, suffix);
        if (!t) {
            if (required) fail(m_, "tensor " + gguf::tensor_name(role, layer, suffix) + " is missing");
            return {};
        }
        return small_vector(m_, *t, n);
    }

private:
    const gguf::Model& m_;
};

Config read_config(const gguf::Model& m) {
    const gguf::Hyperparameters h = gguf::read_hyperparameters(m);
    Config c;
    c.arch = h.arch;
    if (h.arch != "llama" && h.arch != "qwen2" && h.arch != "qwen3" && h.arch != "qwen3moe")
        fail(m, "architecture '" + h.arch + "' is not supported by the forward pass (llama, qwen2, qwen3, qwen3moe are)");
    auto require = [&](Hyper key, uint32_t value) {
        if (!value) fail(m, "hyperparameter " + gguf::hyper_key(h.arch, key) + " is missing or zero");
        return value;
    };
    c.n_layer = require(Hyper::BlockCount, h.n_layer);
    c.n_embd = require(Hyper::EmbeddingLength, h.n_embd);
    c.n_expert = h.n_expert;
    if (c.n_expert) {
        c.n_expert_used = require(Hyper::ExpertUsedCount, h.n_expert_used);
        if (c.n_expert_used > c.n_expert)
            fail(m, "expert_used_count " + std::to_string(c.n_expert_used) + " is above expert_count " + std::to_string(c.n_expert));
    } else if (h.arch == "qwen3moe") {
        require(Hyper::ExpertCount, 0);
    }
    c.n_ff = require(Hyper::FeedForwardLength, h.n_ff);
    // An expert's width: feed_forward_length for Mixtral (llama); qwen3moe's own key, else
    // feed_forward_length / expert_used_count as llama.cpp takes it.
    c.n_ff_expert = c.n_ff;
    if (c.n_expert && h.arch == "qwen3moe") {
        const std::string key_name = gguf::hyper_key(h.arch, Hyper::ExpertFeedForwardLength);
        const std::optional<double> v = number(m, key_name);
        if (v && !(*v >= 1 && *v <= double{UINT32_MAX})) fail(m, "hyperparameter " + key_name + " is not a positive 32-bit count");
        c.n_ff_expert = v ? static_cast<uint32_t>(*v) : c.n_ff / c.n_expert_used;
        if (!c.n_ff_expert) fail(m, "hyperparameter " + key_name + " is missing and feed_forward_length / expert_used_count is zero");
    }
    c.n_head = require(Hyper::HeadCount, h.n_head);
    c.n_head_kv = require(Hyper::HeadCountKv, h.n_head_kv);
    c.n_ctx_train = h.n_ctx;
    if (c.n_head % c.n_head_kv) fail(m, "head_count " + std::to_string(c.n_head) + " is not a multiple of head_count_kv " + std::to_string(c.n_head_kv));
    const auto key = [&](Hyper k) { return gguf::hyper_key(h.arch, k); };
    const std::string arch_prefix = h.arch + ".";
    c.head_dim = static_cast<uint32_t>(number(m, key(Hyper::KeyLength)).value_or(c.n_embd / c.n_head));
    if (const auto v = number(m, key(Hyper::ValueLength)); v && static_cast<uint32_t>(*v) != c.head_dim)
        fail(m, "attention.value_length differs from key_length: not supported");
    if (!c.head_dim) fail(m, "the head dimension is zero");
    const auto eps = number(m, key(Hyper::LayerNormRmsEpsilon));
    if (!eps) fail(m, "hyperparameter " + key(Hyper::LayerNormRmsEpsilon) + " is missing");
    c.rms_eps = static_cast<float>(*eps);

    RopeParams& r = c.rope;
    r.pairing = h.arch == "llama" ? RopePairing::Normal : RopePairing::NeoX;
    r.n_dims = static_cast<uint32_t>(number(m, key(Hyper::RopeDimensionCount)).value_or(c.head_dim));
    if (r.n_dims > c.head_dim || r.n_dims % 2) fail(m, "rope.dimension_count " + std::to_string(r.n_dims) + " does not fit the head dimension");
    r.freq_base = static_cast<float>(number(m, key(Hyper::RopeFreqBase)).value_or(10000.0));
    const std::string scaling = text(m, arch_prefix + "rope.scaling.type");
    double factor = number(m, arch_prefix + "rope.scaling.factor").value_or(0.0);
    if (const auto linear = number(m, arch_prefix + "rope.scale_linear"); linear && scaling.empty()) factor = *linear;
    if (scaling == "yarn") {
        r.scaling = RopeScaling::Yarn;
        r.ext_factor = 1.0f;
        r.n_ctx_orig = static_cast<uint32_t>(number(m, arch_prefix + "rope.scaling.original_context_length").value_or(c.n_ctx_train));
        r.attn_factor = static_cast<float>(number(m, arch_prefix + "rope.scaling.attn_factor").value_or(1.0));
        r.beta_fast = static_cast<float>(number(m, arch_prefix + "rope.scaling.yarn_beta_fast").value_or(32.0));
        r.beta_slow = static_cast<float>(number(m, arch_prefix + "rope.scaling.yarn_beta_slow").value_or(1.0));
    } else if (scaling == "linear" || (scaling.empty() && factor > 0)) {
        r.scaling = RopeScaling::Linear;
    } else if (!scaling.empty() && scaling != "none") {
        fail(m, "rope.scaling.type '" + scaling + "' is not supported (none, linear, yarn are)");
    }
    if (r.scaling != RopeScaling::None && factor > 0) r.freq_scale = static_cast<float>(1.0 / factor);

    // BOS at the start of each chunk exactly as the tokenizer adds it: one rule, the
    // Tokenizer's (its defaults per vocabulary kind and pre-tokenizer, the keys, the range
    // check). A broken vocabulary fails here with the tokenizer's error; a file without one
    // (no tokenizer.ggml.tokens) evaluates token ids without BOS.
    if (m.first().find("tokenizer.ggml.model") && m.first().find("tokenizer.ggml.tokens")) {
        const Tokenizer tokenizer = Tokenizer::from_gguf(m);
        if (tokenizer.add_bos() && tokenizer.bos()) c.bos = *tokenizer.bos(), c.add_bos = true;
    }
    return c;
}

// f(matrix) for each weight matrix of a layer that is present (a dense layer's or a mixture
// of experts': router and each expert's views).
template <class F> void for_each_matrix(const Layer& l, F&& f) {
    for (const Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate_inp, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
        if (w->data) f(*w);
    for (const auto* list : {&l.gate_exps, &l.up_exps, &l.down_exps})
        for (const Matrix& w : *list) f(w);
}

}  // namespace

Model::Model(const gguf::Model& file) : file_(&file), config_(read_config(file)) {
    if (file.first().big_endian()) fail(file, "big-endian files are not supported by the forward pass");
    Config& c = config_;
    const Loader load(file);
    const gguf::Model::Tensor* embd_tensor = load.find(TensorRole::TokenEmbd, std::nullopt);
    if (!embd_tensor) fail(file, "tensor token_embd.weight is missing");
    c.n_vocab = static_cast<uint32_t>(embd_tensor->info->shape[1]);
    if (c.n_vocab == 0 || embd_tensor->info->shape[1] > UINT32_MAX) fail(file, "tensor token_embd.weight has no rows (or more than 2^32)");
    token_embd_ = load.matrix(*embd_tensor, c.n_embd, c.n_vocab);
    weight_bytes_ += token_embd_.bytes();
    if (const gguf::Model::Tensor* out = load.find(TensorRole::Output, std::nullopt)) {
        output_ = load.matrix(*out, c.n_embd, c.n_vocab);
        weight_bytes_ += output_.bytes();
    } else {
        c.tied_output = true;
        output_ = token_embd_;
    }
    output_norm_ = load.vector(TensorRole::OutputNorm, std::nullopt, c.n_embd, true);
    c.rope.freq_factors = load.vector(TensorRole::RopeFreqs, std::nullopt, c.rope.n_dims / 2, false);
    for (float f : c.rope.freq_factors)
        if (!(f > 0.0f) || !std::isfinite(f)) fail(file, "tensor rope_freqs.weight holds " + std::to_string(f) + ": frequency factors must be positive");

    const int64_t embd = c.n_embd, q_dim = int64_t{c.n_head} * c.head_dim, kv_dim = int64_t{c.n_head_kv} * c.head_dim;
    const bool qk_norm = c.arch == "qwen3" || c.arch == "qwen3moe";
    // Layers are added as their tensors are found: block_count is never an allocation size
    // before the file has shown that many layers.
    for (uint32_t i = 0; i < c.n_layer; ++i) {
        Layer& l = layers_.emplace_back();
        l.attn_norm = load.vector(TensorRole::AttnNorm, i, embd, true);
        l.wq = load.matrix(TensorRole::AttnQ, i, embd, q_dim);
        l.wk = load.matrix(TensorRole::AttnK, i, embd, kv_dim);
        l.wv = load.matrix(TensorRole::AttnV, i, embd, kv_dim);
        l.wo = load.matrix(TensorRole::AttnOutput, i, q_dim, embd);
        const bool need_bias = c.arch == "qwen2";
        l.bq = load.vector(TensorRole::AttnQ, i, q_dim, need_bias, "bias");
        l.bk = load.vector(TensorRole::AttnK, i, kv_dim, need_bias, "bias");
        l.bv = load.vector(TensorRole::AttnV, i, kv_dim, need_bias, "bias");
        l.bo = load.vector(TensorRole::AttnOutput, i, embd, false, "bias");
        if (qk_norm) {
            l.q_norm = load.vector(TensorRole::AttnQNorm, i, c.head_dim, true);
            l.k_norm = load.vector(TensorRole::AttnKNorm, i, c.head_dim, true);
        }
        l.ffn_norm = load.vector(TensorRole::FfnNorm, i, embd, true);
        if (c.n_expert) {
            l.ffn_gate_inp = load.matrix(TensorRole::FfnGateInp, i, embd, c.n_expert);
            l.gate_exps = load.experts(TensorRole::FfnGateExps, i, embd, c.n_ff_expert, c.n_expert);
            l.up_exps = load.experts(TensorRole::FfnUpExps, i, embd, c.n_ff_expert, c.n_expert);
            l.down_exps = load.experts(TensorRole::FfnDownExps, i, c.n_ff_expert, embd, c.n_expert);
        } else {
            l.ffn_gate = load.matrix(TensorRole::FfnGate, i, embd, c.n_ff);
            l.ffn_up = load.matrix(TensorRole::FfnUp, i, embd, c.n_ff);
            l.ffn_down = load.matrix(TensorRole::FfnDown, i, c.n_ff, embd);
        }
        for_each_matrix(l, [this](const Matrix& w) { weight_bytes_ += w.bytes(); });
    }
}

void Model::map_in() const {
    // Each matrix lies in one part; the others ignore it.
    const auto map = [this](const Matrix& w) {
        for (const gguf::File& part : file_->parts()) part.map_in(std::span<const uint8_t>(w.data, static_cast<size_t>(w.bytes())));
    };
    map(output_);
    for (const Layer& l : layers_) for_each_matrix(l, map);
}

}  // namespace infer
