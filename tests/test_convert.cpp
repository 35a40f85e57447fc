// gguf convert's library: safetensors reading (every refusal names the file and tensor),
// sharded checkpoints, and conversion of generated Hugging Face folders (llama with grouped
// heads, qwen2 with biases and tied embeddings, qwen3 with q/k norms and its own head size)
// checked the strong way: the converted GGUF, run by infer/'s forward pass, gives the logits
// of a plain double-precision forward pass written here over the Hugging Face tensors in
// Hugging Face's conventions (rotate-half rotary, no Q/K permutation). That proves the name
// mapping, the shapes, the permutation and the metadata at once.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "convert/convert.h"
#include "convert/hf_tokenizer.h"
#include "convert_tokenizer_support.h"
#include "convert/safetensors.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "infer/forward.h"
#include "infer/model.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "reference_math.h"
#include "support.h"

namespace {

using test::linear;
using test::rms_norm;
using test::Vec;

// ---- A Hugging Face folder generator ---------------------------------------------------------

struct HfTensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> values;  // what the tensor holds (after rounding to its dtype)
};

// The 8-byte length, the header padded with spaces to a multiple of 8, the data.
std::vector<uint8_t> with_length(std::string header, const std::vector<uint8_t>& data) {
    header.resize((header.size() + 7) / 8 * 8, ' ');
    std::vector<uint8_t> out(8 + header.size() + data.size());
    for (size_t i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(header.size() >> (8 * i));
    std::memcpy(out.data() + 8, header.data(), header.size());
    if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
    return out;
}

// Safetensors bytes: header (JSON, padded with spaces to 8 bytes) and data, each tensor in
// `dtype` ("F32", "F16", "BF16").
std::vector<uint8_t> safetensors_bytes(const std::vector<HfTensor>& tensors, const std::string& dtype) {
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    std::vector<uint8_t> data;
    for (const HfTensor& t : tensors) {
        const size_t begin = data.size();
        for (float v : t.values) {
            if (dtype == "F32") {
                uint8_t b[4];
                std::memcpy(b, &v, 4);
                data.insert(data.end(), b, b + 4);
            } else {
                const uint16_t h = dtype == "F16" ? quant::f32_to_f16(v) : quant::f32_to_bf16(v);
                data.push_back(static_cast<uint8_t>(h)), data.push_back(static_cast<uint8_t>(h >> 8));
            }
        }
        std::string shape;
        for (size_t i = 0; i < t.shape.size(); ++i) shape.append(i ? "," : "").append(std::to_string(t.shape[i]));
        header.append(fmt::format(",\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", t.name, dtype, shape, begin, data.size()));
    }
    header.append("}");
    return with_length(header, data);
}

void write_file(const std::filesystem::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
void write_file(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct Spec {
    std::string hf_class = "LlamaForCausalLM";
    uint32_t vocab = 40, hidden = 32, ff = 48, layers = 2, heads = 4, kv_heads = 2, head_dim = 0;  // head_dim 0: hidden / heads
    bool biases = false, qk_norm = false, tied = false;
    std::string dtype = "F32";
    uint32_t experts = 0, experts_used = 0, moe_ff = 0;  // a mixture of experts (Mixtral, Qwen3-MoE)
    bool llama3_rope = false;  // rope_scaling {rope_type: llama3, factor 8, original context 16}
    uint32_t dim() const { return head_dim ? head_dim : hidden / heads; }
};

struct HfModel {
    Spec spec;
    std::map<std::string, HfTensor> tensors;
    const std::vector<float>& at(const std::string& name) const { return tensors.at(name).values; }
};

// Random weights in the spec's shapes, rounded to its dtype; config.json and the safetensors
// file(s) in `folder` (two shards and an index when `shards`).
HfModel make_hf_model(const Spec& s, const std::filesystem::path& folder, bool shards = false) {
    HfModel m;
    m.spec = s;
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> uniform(-1, 1);
    std::vector<HfTensor> list;
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, float scale, float offset = 0) {
        HfTensor t{name, shape, {}};
        uint64_t n = 1;
        for (uint64_t d : shape) n *= d;
        for (uint64_t i = 0; i < n; ++i) {
            const float v = offset + scale * uniform(rng);
            t.values.push_back(s.dtype == "F32" ? v : s.dtype == "F16" ? quant::f16_to_f32(quant::f32_to_f16(v)) : quant::bf16_to_f32(quant::f32_to_bf16(v)));
        }
        list.push_back(t);
        m.tensors.emplace(name, std::move(t));
    };
    const uint64_t q_dim = uint64_t{s.heads} * s.dim(), kv_dim = uint64_t{s.kv_heads} * s.dim();
    add("model.embed_tokens.weight", {s.vocab, s.hidden}, 1.0f);
    for (uint32_t l = 0; l < s.layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        add(p + "input_layernorm.weight", {s.hidden}, 0.2f, 1.0f);
        add(p + "self_attn.q_proj.weight", {q_dim, s.hidden}, 0.4f);
        add(p + "self_attn.k_proj.weight", {kv_dim, s.hidden}, 0.4f);
        add(p + "self_attn.v_proj.weight", {kv_dim, s.hidden}, 0.4f);
        if (s.biases) {
            add(p + "self_attn.q_proj.bias", {q_dim}, 0.3f);
            add(p + "self_attn.k_proj.bias", {kv_dim}, 0.3f);
            add(p + "self_attn.v_proj.bias", {kv_dim}, 0.3f);
        }
        if (s.qk_norm) {
            add(p + "self_attn.q_norm.weight", {s.dim()}, 0.3f, 1.0f);
            add(p + "self_attn.k_norm.weight", {s.dim()}, 0.3f, 1.0f);
        }
        add(p + "self_attn.o_proj.weight", {s.hidden, q_dim}, 0.3f);
        add(p + "post_attention_layernorm.weight", {s.hidden}, 0.2f, 1.0f);
        if (s.experts) {
            const bool mixtral = s.hf_class == "MixtralForCausalLM";
            const uint32_t ff = s.moe_ff ? s.moe_ff : s.ff;
            add(p + (mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight"), {s.experts, s.hidden}, 0.6f);
            for (uint32_t e = 0; e < s.experts; ++e) {
                const std::string x = p + (mixtral ? "block_sparse_moe.experts." : "mlp.experts.") + std::to_string(e) + ".";
                add(x + (mixtral ? "w1" : "gate_proj") + ".weight", {ff, s.hidden}, 0.3f);
                add(x + (mixtral ? "w3" : "up_proj") + ".weight", {ff, s.hidden}, 0.3f);
                add(x + (mixtral ? "w2" : "down_proj") + ".weight", {s.hidden, ff}, 0.3f);
            }
            continue;
        }
        add(p + "mlp.gate_proj.weight", {s.ff, s.hidden}, 0.3f);
        add(p + "mlp.up_proj.weight", {s.ff, s.hidden}, 0.3f);
        add(p + "mlp.down_proj.weight", {s.hidden, s.ff}, 0.3f);
    }
    add("model.norm.weight", {s.hidden}, 0.2f, 1.0f);
    if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden}, 0.3f);
    std::filesystem::create_directories(folder);
    std::string config = "{\"architectures\":[\"" + s.hf_class + "\"],\"vocab_size\":" + std::to_string(s.vocab) +
                         ",\"hidden_size\":" + std::to_string(s.hidden) + ",\"intermediate_size\":" + std::to_string(s.ff) +
                         ",\"num_hidden_layers\":" + std::to_string(s.layers) + ",\"num_attention_heads\":" + std::to_string(s.heads) +
                         ",\"num_key_value_heads\":" + std::to_string(s.kv_heads) +
                         ",\"max_position_embeddings\":64,\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,\"tie_word_embeddings\":" +
                         (s.tied ? "true" : "false") + (s.head_dim ? ",\"head_dim\":" + std::to_string(s.head_dim) : "") +
                         (s.experts ? std::string(s.hf_class == "MixtralForCausalLM" ? ",\"num_local_experts\":" : ",\"num_experts\":") +
                                          std::to_string(s.experts) + ",\"num_experts_per_tok\":" + std::to_string(s.experts_used) +
                                          (s.moe_ff ? ",\"moe_intermediate_size\":" + std::to_string(s.moe_ff) : "")
                                    : "") +
                         (s.llama3_rope ? ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                                          "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}"
                                        : "") +
                         ",\"torch_dtype\":\"float32\"}";
    write_file(folder / "config.json", config);
    if (!shards) {
        write_file(folder / "model.safetensors", safetensors_bytes(list, s.dtype));
        return m;
    }
    const size_t half = list.size() / 2;
    const std::vector<HfTensor> a(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(half)), b(list.begin() + static_cast<std::ptrdiff_t>(half), list.end());
    write_file(folder / "model-00001-of-00002.safetensors", safetensors_bytes(a, s.dtype));
    write_file(folder / "model-00002-of-00002.safetensors", safetensors_bytes(b, s.dtype));
    std::string index = "{\"metadata\":{},\"weight_map\":{";
    for (size_t i = 0; i < list.size(); ++i)
        index += (i ? "," : "") + std::string("\"") + list[i].name + "\":\"model-0000" + (i < half ? "1" : "2") + "-of-00002.safetensors\"";
    write_file(folder / "model.safetensors.index.json", index + "}}");
    return m;
}

// ---- The reference forward pass, in Hugging Face's conventions ---------------------------------

// Hugging Face's rotary embedding: the head's two halves rotated against each other. With
// Llama 3.1's scaling (transformers' llama3 rope init): inverse frequencies of wavelength
// above 16 / 1 divided by 8, below 16 / 4 kept, smoothly blended between.
void rotate_half(double* head, size_t d, size_t pos, bool llama3 = false) {
    for (size_t i = 0; i < d / 2; ++i) {
        double inv_freq = std::pow(1000.0, -2.0 * static_cast<double>(i) / static_cast<double>(d));
        if (llama3) {
            const double wavelen = 2 * std::numbers::pi / inv_freq, smooth = (16.0 / wavelen - 1.0) / (4.0 - 1.0);
            inv_freq = wavelen > 16.0 ? inv_freq / 8 : wavelen < 4.0 ? inv_freq : (1 - smooth) * inv_freq / 8 + smooth * inv_freq;
        }
        const double theta = static_cast<double>(pos) * inv_freq;
        const double x1 = head[i], x2 = head[i + d / 2];
        head[i] = x1 * std::cos(theta) - x2 * std::sin(theta);
        head[i + d / 2] = x2 * std::cos(theta) + x1 * std::sin(theta);
    }
}

std::vector<Vec> hf_logits(const HfModel& m, const std::vector<int32_t>& tokens) {
    const Spec& s = m.spec;
    const size_t n = tokens.size(), d = s.dim(), q_dim = s.heads * d, kv_dim = s.kv_heads * d;
    std::vector<Vec> x(n);
    for (size_t t = 0; t < n; ++t) {
        const std::vector<float>& e = m.at("model.embed_tokens.weight");
        x[t].assign(e.begin() + static_cast<std::ptrdiff_t>(tokens[t] * s.hidden), e.begin() + static_cast<std::ptrdiff_t>((tokens[t] + 1) * s.hidden));
    }
    for (uint32_t l = 0; l < s.layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        std::vector<Vec> q(n), k(n), v(n);
        for (size_t t = 0; t < n; ++t) {
            const Vec h = rms_norm(x[t], m.at(p + "input_layernorm.weight"), 1e-6);
            q[t] = linear(m.at(p + "self_attn.q_proj.weight"), h, q_dim);
            k[t] = linear(m.at(p + "self_attn.k_proj.weight"), h, kv_dim);
            v[t] = linear(m.at(p + "self_attn.v_proj.weight"), h, kv_dim);
            if (s.biases)
                for (auto [vec, name] : {std::pair{&q[t], "q_proj"}, {&k[t], "k_proj"}, {&v[t], "v_proj"}})
                    for (size_t i = 0; i < vec->size(); ++i) (*vec)[i] += m.at(p + "self_attn." + name + ".bias")[i];
            for (auto [vec, heads, norm] : {std::tuple{&q[t], s.heads, "q_norm"}, {&k[t], s.kv_heads, "k_norm"}})
                for (size_t hh = 0; hh < heads; ++hh) {
                    double* head = vec->data() + hh * d;
                    if (s.qk_norm) {
                        const Vec normed = rms_norm(Vec(head, head + d), m.at(p + "self_attn." + norm + ".weight"), 1e-6);
                        std::copy(normed.begin(), normed.end(), head);
                    }
                    rotate_half(head, d, t, s.llama3_rope);
                }
        }
        for (size_t t = 0; t < n; ++t) {
            Vec att(q_dim, 0.0);
            for (size_t hh = 0; hh < s.heads; ++hh) {
                const size_t kvh = hh / (s.heads / s.kv_heads);
                Vec score(t + 1);
                double max = -1e300, sum = 0;
                for (size_t j = 0; j <= t; ++j) {
                    double dot = 0;
                    for (size_t i = 0; i < d; ++i) dot += q[t][hh * d + i] * k[j][kvh * d + i];
                    max = std::max(max, score[j] = dot / std::sqrt(static_cast<double>(d)));
                }
                for (double& sc : score) sum += (sc = std::exp(sc - max));
                for (size_t j = 0; j <= t; ++j)
                    for (size_t i = 0; i < d; ++i) att[hh * d + i] += score[j] / sum * v[j][kvh * d + i];
            }
            const Vec o = linear(m.at(p + "self_attn.o_proj.weight"), att, s.hidden);
            for (size_t i = 0; i < s.hidden; ++i) x[t][i] += o[i];
            const Vec h = rms_norm(x[t], m.at(p + "post_attention_layernorm.weight"), 1e-6);
            auto mlp = [&](const std::string& gate, const std::string& up, const std::string& down, size_t ff) {
                const Vec g = linear(m.at(gate), h, ff), u = linear(m.at(up), h, ff);
                Vec a(ff);
                for (size_t i = 0; i < ff; ++i) a[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
                return linear(m.at(down), a, s.hidden);
            };
            if (!s.experts) {
                const Vec down = mlp(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight", s.ff);
                for (size_t i = 0; i < s.hidden; ++i) x[t][i] += down[i];
                continue;
            }
            // The experts as Hugging Face's sparse MoE block runs them: softmax of the router,
            // the top experts_used, their weights renormalized.
            const bool mixtral = s.hf_class == "MixtralForCausalLM";
            const Vec z = linear(m.at(p + (mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight")), h, s.experts);
            Vec prob(s.experts);
            const double zmax = *std::max_element(z.begin(), z.end());
            for (size_t e = 0; e < s.experts; ++e) prob[e] = std::exp(z[e] - zmax);
            std::vector<size_t> order(s.experts);
            for (size_t e = 0; e < s.experts; ++e) order[e] = e;
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
            double chosen = 0;
            for (size_t slot = 0; slot < s.experts_used; ++slot) chosen += prob[order[slot]];
            for (size_t slot = 0; slot < s.experts_used; ++slot) {
                const std::string xp = p + (mixtral ? "block_sparse_moe.experts." : "mlp.experts.") + std::to_string(order[slot]) + ".";
                const Vec down = mixtral ? mlp(xp + "w1.weight", xp + "w3.weight", xp + "w2.weight", s.ff)
                                         : mlp(xp + "gate_proj.weight", xp + "up_proj.weight", xp + "down_proj.weight", s.moe_ff ? s.moe_ff : s.ff);
                for (size_t i = 0; i < s.hidden; ++i) x[t][i] += prob[order[slot]] / chosen * down[i];
            }
        }
    }
    std::vector<Vec> logits(n);
    for (size_t t = 0; t < n; ++t)
        logits[t] = linear(m.at(s.tied ? "model.embed_tokens.weight" : "lm_head.weight"), rms_norm(x[t], m.at("model.norm.weight"), 1e-6), s.vocab);
    return logits;
}

// What converting `folder` with `outtype` (and importance weights) would write.
convert::Plan plan_of(const std::filesystem::path& folder, const std::string& outtype, const quant::ImportanceMatrix* imatrix = nullptr) {
    const convert::Checkpoint weights = convert::Checkpoint::open(folder);
    convert::ConvertOptions o;
    o.outtype = outtype;
    o.imatrix = imatrix;
    return convert::plan(folder, weights, o);
}

// Converts `folder` to `out` with `outtype`.
void convert_folder(const std::filesystem::path& folder, const std::filesystem::path& out, const std::string& outtype = "f32",
                    const quant::ImportanceMatrix* imatrix = nullptr) {
    const convert::Checkpoint weights = convert::Checkpoint::open(folder);  // mapped while writing
    convert::ConvertOptions o;
    o.outtype = outtype;
    o.imatrix = imatrix;
    convert::write(convert::plan(folder, weights, o), out);
}

// Every tensor of `ours` in `theirs` with the same type and bytes; returns how many are quantized.
int same_tensors(const std::filesystem::path& ours_path, const std::filesystem::path& theirs_path) {
    const gguf::File ours = gguf::File::open(ours_path), theirs = gguf::File::open(theirs_path);
    CHECK(ours.tensors().size() == theirs.tensors().size());
    int quantized = 0;
    for (const gguf::TensorInfo& t : ours.tensors()) {
        CAPTURE(t.name);
        const gguf::TensorInfo* u = theirs.find_tensor(t.name);
        REQUIRE(u != nullptr);
        CHECK(t.type == u->type);
        const std::span<const uint8_t> a = ours.tensor_data(t), b = theirs.tensor_data(*u);
        CHECK((a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin())));
        quantized += gguf::type_info(t.type).quantized;
    }
    return quantized;
}

// The message of what f throws (empty when it does not).
template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("converted llama, mistral, qwen2, qwen3, mixtral and qwen3-moe folders compute what the Hugging Face checkpoint computes") {
    Spec llama;  // grouped heads: 4 query heads on 2 key/value heads; Q and K rows permuted
    Spec qwen2;
    qwen2.hf_class = "Qwen2ForCausalLM", qwen2.biases = true, qwen2.tied = true;
    Spec qwen3;
    qwen3.hf_class = "Qwen3ForCausalLM", qwen3.qk_norm = true, qwen3.head_dim = 16;
    Spec mistral_bf16;  // a bf16 checkpoint, converted to f32 exactly
    mistral_bf16.hf_class = "MistralForCausalLM", mistral_bf16.dtype = "BF16";
    Spec llama31;  // Llama 3.1's rotary scaling: rope_freqs.weight
    llama31.llama3_rope = true;
    Spec mixtral;  // experts stacked into 3-D tensors; Q and K permuted as for llama
    mixtral.hf_class = "MixtralForCausalLM", mixtral.experts = 4, mixtral.experts_used = 2;
    Spec qwen3moe = qwen3;  // experts narrower than intermediate_size
    qwen3moe.hf_class = "Qwen3MoeForCausalLM", qwen3moe.experts = 4, qwen3moe.experts_used = 2, qwen3moe.moe_ff = 24;
    const test::TempDir dir;
    int i = 0;
    for (const Spec& s : {llama, qwen2, qwen3, mistral_bf16, llama31, mixtral, qwen3moe}) {
        CAPTURE(s.hf_class);
        const std::filesystem::path folder = dir / ("hf" + std::to_string(i)), out = dir / ("model" + std::to_string(i++) + ".gguf");
        const HfModel hf = make_hf_model(s, folder, /*shards=*/s.biases);
        convert_folder(folder, out);
        const gguf::Model file = gguf::Model::open(out);
        const infer::Model model(file);
        CHECK(model.config().tied_output == s.tied);
        CHECK(model.config().head_dim == s.dim());
        std::vector<int32_t> tokens;
        for (int32_t t = 0; t < 12; ++t) tokens.push_back((t * 7 + 3) % static_cast<int32_t>(s.vocab));
        infer::Context ctx(model, static_cast<uint32_t>(tokens.size()));
        std::vector<float> got(tokens.size() * s.vocab);
        ctx.eval(tokens, got);
        const std::vector<Vec> want = hf_logits(hf, tokens);
        double worst = 0, scale = 0;
        for (size_t t = 0; t < tokens.size(); ++t)
            for (size_t v = 0; v < s.vocab; ++v) {
                worst = std::max(worst, std::abs(got[t * s.vocab + v] - want[t][v]));
                scale = std::max(scale, std::abs(want[t][v]));
            }
        std::printf("%s%s: largest logit %.3f, largest difference from the Hugging Face reference %.2e\n", s.hf_class.c_str(),
                    s.dtype == "BF16" ? " (bf16 checkpoint)" : s.llama3_rope ? " (llama3 rope scaling)" : "", scale, worst);
        if (s.experts) CHECK(file.find_tensor("blk.1.ffn_down_exps.weight")->info->dims().size() == 3);
        CHECK((file.find_tensor("rope_freqs.weight") != nullptr) == s.llama3_rope);
        CHECK(scale > 1.0);
        CHECK(worst <= 1e-4 * scale);
    }
}

TEST_CASE("convert writes llama.cpp's keys and types: 1-D tensors F32, the outtype for matrices, auto keeps 16-bit sources") {
    const test::TempDir dir;
    Spec s;
    s.dtype = "BF16";
    s.ff = 64;  // every row a whole number of Q8_0 blocks
    make_hf_model(s, dir / "hf");
    for (const auto& [outtype, matrix_type, file_type] :
         {std::tuple{"auto", gguf::TypeId::BF16, 32u}, {"f16", gguf::TypeId::F16, 1u}, {"q8_0", gguf::TypeId::Q8_0, 7u}, {"f32", gguf::TypeId::F32, 0u}}) {
        CAPTURE(outtype);
        const std::filesystem::path out = dir / (std::string(outtype) + ".gguf");
        convert_folder(dir / "hf", out, outtype);
        const gguf::File f = gguf::File::open(out);
        CHECK(f.find("general.architecture")->value.str() == "llama");
        CHECK(f.find("general.file_type")->value.u32() == file_type);
        CHECK(f.find("llama.block_count")->value.u32() == s.layers);
        CHECK(f.find("llama.attention.head_count_kv")->value.u32() == s.kv_heads);
        CHECK(f.find("llama.rope.dimension_count")->value.u32() == s.dim());
        CHECK(f.find("llama.context_length")->value.u32() == 64);
        CHECK(f.find("llama.attention.key_length") == nullptr);  // only where head_dim is not hidden / heads
        for (const gguf::TensorInfo& t : f.tensors()) {
            CAPTURE(t.name);
            CHECK(t.type == (t.n_dims == 1 ? gguf::TypeId::F32 : matrix_type));
        }
        CHECK(f.find_tensor("blk.1.ffn_down.weight") != nullptr);
        CHECK(f.find_tensor("output.weight") != nullptr);
        CHECK(f.tensors().size() == 3 + 9 * s.layers);
        // The output opens everywhere: gguf check finds nothing wrong.
        CHECK(test::run_gguf("check " + out.string()).exit_code == 0);
    }
    // Rows that are not whole Q8_0 blocks (48 values) stay F16, as llama.cpp's converter does.
    Spec narrow;
    make_hf_model(narrow, dir / "narrow");
    convert_folder(dir / "narrow", dir / "narrow.gguf", "q8_0");
    const gguf::File f = gguf::File::open(dir / "narrow.gguf");
    CHECK(f.find_tensor("blk.0.ffn_down.weight")->type == gguf::TypeId::F16);
    CHECK(f.find_tensor("blk.0.ffn_up.weight")->type == gguf::TypeId::Q8_0);
}

TEST_CASE("convert to a mix (Q4_K_M, Q3_K_S) gives gguf requant's types and bytes for the same model, with no file between") {
    const test::TempDir dir;
    Spec s;
    s.dtype = "F16";  // so that the F16 conversion holds the checkpoint's values exactly
    s.ff = 256, s.hidden = 256, s.heads = 8, s.kv_heads = 4, s.vocab = 64;  // whole K-quant blocks
    make_hf_model(s, dir / "hf");
    convert_folder(dir / "hf", dir / "f16.gguf", "f16");
    for (const std::string mix : {"Q4_K_M", "Q3_K_S"}) {
        CAPTURE(mix);
        convert_folder(dir / "hf", dir / (mix + ".gguf"), mix);
        const auto r = test::run_gguf("requant " + (dir / "f16.gguf").string() + " " + (dir / (mix + "-requant.gguf")).string() + " --type " + mix);
        REQUIRE(r.exit_code == 0);
        CHECK(gguf::File::open(dir / (mix + ".gguf")).find("general.file_type")->value.u32() ==
              gguf::File::open(dir / (mix + "-requant.gguf")).find("general.file_type")->value.u32());
        CHECK(same_tensors(dir / (mix + ".gguf"), dir / (mix + "-requant.gguf")) > 0);
    }
    // An i-quant without an importance matrix is refused, as llama.cpp refuses it.
    CHECK(error_of([&] { convert_folder(dir / "hf", dir / "iq2.gguf", "IQ2_XS"); }).find("needs an importance matrix") != std::string::npos);
}

TEST_CASE("convert of a mixture of experts to a mix with an importance matrix gives gguf requant's types and bytes; outputs pass gguf check") {
    const test::TempDir dir;
    Spec s;  // 8 experts (llama.cpp's 8-expert rules apply), whole K-quant blocks
    s.hf_class = "MixtralForCausalLM", s.dtype = "F16", s.experts = 8, s.experts_used = 2;
    s.ff = 256, s.hidden = 256, s.heads = 8, s.kv_heads = 4, s.vocab = 64;
    make_hf_model(s, dir / "hf");
    convert_folder(dir / "hf", dir / "f16.gguf", "f16");
    // An importance matrix with an entry per matrix (per expert for the stacked ones).
    quant::ImportanceMatrix imatrix;
    {
        const gguf::File f = gguf::File::open(dir / "f16.gguf");
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> u(0.1f, 2.0f);
        for (const gguf::TensorInfo& t : f.tensors()) {
            if (t.n_dims < 2 || t.name == "token_embd.weight") continue;
            const size_t experts = t.n_dims == 3 ? t.shape[2] : 1;
            quant::ImatrixEntry e;
            for (size_t i = 0; i < t.shape[0] * experts; ++i) e.sums.push_back(u(rng));
            e.counts.assign(experts, 1.0f);
            imatrix.set(std::string(t.name), std::move(e));
        }
    }
    imatrix.save(dir / "imatrix.gguf", quant::ImatrixFormat::Gguf);
    const quant::ImportanceMatrix loaded = quant::ImportanceMatrix::load(dir / "imatrix.gguf");
    for (const std::string mix : {"Q4_K_M", "IQ4_XS"}) {
        CAPTURE(mix);
        convert_folder(dir / "hf", dir / (mix + ".gguf"), mix, &loaded);
        REQUIRE(test::run_gguf("requant " + (dir / "f16.gguf").string() + " " + (dir / (mix + "-requant.gguf")).string() + " --type " + mix +
                               " --imatrix " + (dir / "imatrix.gguf").string())
                    .exit_code == 0);
        CHECK(gguf::File::open(dir / (mix + ".gguf")).find("llama.expert_count")->value.u32() == 8);
        CHECK(same_tensors(dir / (mix + ".gguf"), dir / (mix + "-requant.gguf")) > 0);
        CHECK(test::run_gguf("check " + (dir / (mix + ".gguf")).string()).exit_code == 0);
    }
    // An entry of the wrong length is refused before anything is written, naming the tensor.
    quant::ImportanceMatrix wrong;
    quant::ImatrixEntry e;
    e.sums.assign(100, 1.0f);
    e.counts = {1.0f};
    wrong.set("blk.0.ffn_gate_exps.weight", e);
    const std::string refusal = error_of([&] { plan_of(dir / "hf", "Q4_K_M", &wrong); });
    CHECK(refusal.find("blk.0.ffn_gate_exps.weight") != std::string::npos);
    CHECK(refusal.find("holds 100 values") != std::string::npos);
}

TEST_CASE("gguf convert: --dry-run prints the map and writes nothing; a conversion writes the file; bad input exits 2 naming it") {
    const test::TempDir dir;
    Spec s;
    make_hf_model(s, dir / "hf");
    std::string folder = (dir / "hf").string();
    auto r = test::run_gguf("convert " + folder + " --dry-run");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("model.layers.0.self_attn.q_proj.weight") != std::string::npos);
    CHECK(r.out.find("blk.0.attn_q.weight") != std::string::npos);
    CHECK(r.out.find("(rows permuted for interleaved rotary)") != std::string::npos);
    CHECK(r.out.find("llama.attention.head_count_kv") != std::string::npos);
    CHECK(std::distance(std::filesystem::directory_iterator(dir / "hf"), std::filesystem::directory_iterator()) == 2);
    r = test::run_gguf("convert " + folder + " --outtype f16 -o " + (dir / "out.gguf").string());
    CHECK(r.exit_code == 0);
    CHECK(gguf::File::open(dir / "out.gguf").find("general.file_type")->value.u32() == 1);
    r = test::run_gguf("convert " + folder);  // the default name, in the folder; auto makes an F32 source F16
    CHECK(r.exit_code == 0);
    CHECK(std::filesystem::exists(dir / "hf" / "hf-F16.gguf"));
    r = test::run_gguf("convert " + (dir / "nowhere").string());
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("nowhere") != std::string::npos);
    r = test::run_gguf("convert " + folder + " --outtype q9_z");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'q9_z' is not f32, f16, bf16, q8_0, auto, lossless, or a type or mix") != std::string::npos);
    r = test::run_gguf("convert " + folder + " --outtype q8_0 --effort quick");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'quick' is not fast, default or best") != std::string::npos);
    // q8_0: the default searches its scales; --effort fast rounds as llama.cpp's converter does,
    // the bytes gguf requant --effort fast writes from the f32 conversion.
    Spec wide;
    wide.ff = 64;  // every row a whole number of Q8_0 blocks
    make_hf_model(wide, dir / "hf64");
    folder = (dir / "hf64").string();
    const std::string f32 = (dir / "f32.gguf").string(), fast = (dir / "q8-fast.gguf").string(), searched = (dir / "q8.gguf").string(),
                      requantized = (dir / "q8-requant.gguf").string();
    REQUIRE(test::run_gguf("convert " + folder + " --outtype f32 -o " + f32).exit_code == 0);
    REQUIRE(test::run_gguf("convert " + folder + " --outtype q8_0 --effort fast -o " + fast).exit_code == 0);
    REQUIRE(test::run_gguf("convert " + folder + " --outtype q8_0 -o " + searched).exit_code == 0);
    r = test::run_gguf("requant -q " + f32 + " " + requantized + " Q8_0 --pure --effort fast");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const gguf::File a = gguf::File::open(fast), b = gguf::File::open(requantized), c = gguf::File::open(searched);
    int q8 = 0, differ = 0;
    for (const gguf::TensorInfo& t : a.tensors()) {
        if (t.type != gguf::TypeId::Q8_0) continue;
        CAPTURE(t.name);
        const gguf::TensorInfo* u = b.find_tensor(t.name);
        REQUIRE(u);
        REQUIRE(u->type == gguf::TypeId::Q8_0);
        const auto x = a.tensor_data(t), y = b.tensor_data(*u), z = c.tensor_data(*c.find_tensor(t.name));
        CHECK(std::equal(x.begin(), x.end(), y.begin(), y.end()));
        differ += !std::equal(x.begin(), x.end(), z.begin(), z.end());
        ++q8;
    }
    CHECK(q8 > 0);
    CHECK(differ > 0);
}

TEST_CASE("a folder with a SentencePiece tokenizer converts to a model that tokenizes and generates; --vocab-only writes the vocabulary alone") {
    const test::TempDir dir;
    Spec s;  // 40 tokens: <unk>, <s>, </s>, then pieces
    make_hf_model(s, dir / "hf");
    std::vector<convert::SentencePiece> pieces = {{"<unk>", 0, convert::SentencePiece::Type::Unknown},
                                                  {"<s>", 0, convert::SentencePiece::Type::Control},
                                                  {"</s>", 0, convert::SentencePiece::Type::Control}};
    const std::string letters = "abcdefghijklmnopqrstuvwxyz";
    for (size_t i = 0; pieces.size() < s.vocab; ++i)
        pieces.push_back({i < letters.size() ? std::string("\xe2\x96\x81") + letters[i] : std::string(1, letters[i - letters.size()]),
                          -static_cast<float>(i), convert::SentencePiece::Type::Normal});
    write_file(dir / "hf" / "tokenizer.model", test::sentencepiece_model(pieces));
    write_file(dir / "hf" / "tokenizer_config.json", std::string("{\"add_bos_token\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}"));
    const std::string out = (dir / "model.gguf").string();
    auto r = test::run_gguf("convert " + (dir / "hf").string() + " -o " + out + " --metadata general.author=str:ggufkit-test");
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("tokenizer: llama") != std::string::npos);
    const gguf::File f = gguf::File::open(out);
    CHECK(f.find("tokenizer.ggml.model")->value.str() == "llama");
    CHECK(f.find("tokenizer.ggml.tokens")->value.array().size() == s.vocab);
    CHECK(f.find("general.author")->value.str() == "ggufkit-test");
    r = test::run_gguf("tokenize " + out + " \"a b c\" --ids");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("[1, 3, 4, 5]") != std::string::npos);  // BOS, then ▁a ▁b ▁c
    r = test::run_gguf("generate " + out + " -p \"a b\" -n 4");
    CHECK(r.exit_code == 0);
    // The vocabulary alone: no tensors, no weights needed.
    std::filesystem::remove(dir / "hf" / "model.safetensors");
    r = test::run_gguf("convert " + (dir / "hf").string() + " --vocab-only -o " + (dir / "vocab.gguf").string());
    REQUIRE(r.exit_code == 0);
    const gguf::File v = gguf::File::open(dir / "vocab.gguf");
    CHECK(v.tensors().empty());
    // The hyperparameters too: llama.cpp's loader asks for them even for a vocabulary.
    for (const char* key : {"llama.block_count", "llama.context_length", "llama.embedding_length", "llama.attention.head_count", "general.file_type"})
        CHECK(v.find(key) != nullptr);
    CHECK(v.find("tokenizer.ggml.tokens")->value.array().size() == s.vocab);
}

TEST_CASE("convert --split-max-tensors / --split-max-size write a split set that opens as the one-file model and computes its logits") {
    const test::TempDir dir;
    Spec s;
    make_hf_model(s, dir / "hf");
    const std::string folder = (dir / "hf").string();
    REQUIRE(test::run_gguf("convert " + folder + " --outtype f32 -o " + (dir / "one.gguf").string()).exit_code == 0);
    REQUIRE(test::run_gguf("convert " + folder + " --outtype f32 --split-max-tensors 7 -o " + (dir / "split.gguf").string()).exit_code == 0);
    // 3 + 9 x 2 = 21 tensors: three parts of 7.
    for (int i = 1; i <= 3; ++i) CHECK(std::filesystem::exists(dir / ("split-0000" + std::to_string(i) + "-of-00003.gguf")));
    CHECK(!std::filesystem::exists(dir / "split.gguf"));
    REQUIRE(test::run_gguf("convert " + folder + " --outtype f32 --split-max-size 0.02M -o " + (dir / "sized.gguf").string()).exit_code == 0);
    // Parts of at most 20,000 bytes of tensor data (the largest tensor is 6,144 bytes).
    std::vector<std::filesystem::path> sized;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        if (e.path().filename().string().starts_with("sized-")) sized.push_back(e.path());
    std::sort(sized.begin(), sized.end());
    CHECK(sized.size() >= 2);
    for (const std::filesystem::path& part : sized) {
        CAPTURE(part);
        uint64_t data = 0;
        const gguf::File f = gguf::File::open(part);
        for (const gguf::TensorInfo& t : f.tensors()) data += t.n_bytes;
        CHECK(data <= 20000);
    }
    const auto logits = [&](const std::filesystem::path& p) {
        const gguf::Model file = gguf::Model::open(p);
        const infer::Model model(file);
        const std::vector<int32_t> tokens = {1, 5, 9, 13};
        infer::Context ctx(model, 4);
        std::vector<float> out(4 * s.vocab);
        ctx.eval(tokens, out);
        return out;
    };
    CHECK(test::run_gguf("check " + (dir / "split-00001-of-00003.gguf").string()).exit_code == 0);
    const std::vector<float> one = logits(dir / "one.gguf");
    CHECK(logits(dir / "split-00001-of-00003.gguf") == one);
    CHECK(logits(sized.front()) == one);
    CHECK(test::run_gguf("convert " + folder + " --split-max-size 2X -o " + (dir / "x.gguf").string()).exit_code == 2);
}

TEST_CASE("safetensors files: sharded checkpoints read through their index; every malformed header refused naming the file and tensor") {
    const test::TempDir dir;
    Spec s;
    const HfModel hf = make_hf_model(s, dir / "sharded", /*shards=*/true);
    const convert::Checkpoint c = convert::Checkpoint::open(dir / "sharded");
    CHECK(c.files().size() == 2);
    CHECK(c.tensors().size() == hf.tensors.size());
    const convert::SafeTensor* q = c.find("model.layers.1.self_attn.q_proj.weight");
    REQUIRE(q != nullptr);
    CHECK(q->shape == std::vector<uint64_t>{uint64_t{s.heads} * s.dim(), s.hidden});
    CHECK(q->dtype == convert::Dtype::F32);

    const std::vector<HfTensor> one = {{"w", {2, 3}, {1, 2, 3, 4, 5, 6}}};
    const std::vector<uint8_t> good = safetensors_bytes(one, "F32");
    CHECK(convert::SafetensorsFile::parse(good, "good.safetensors").tensors().size() == 1);
    auto refused = [](std::vector<uint8_t> bytes, const std::vector<std::string>& words) {
        const std::string e = error_of([&] { convert::SafetensorsFile::parse(bytes, "bad.safetensors"); });
        CAPTURE(e);
        CHECK(e.find("bad.safetensors") != std::string::npos);
        for (const std::string& w : words) CHECK(e.find(w) != std::string::npos);
    };
    refused({1, 2, 3}, {"too short"});
    std::vector<uint8_t> long_header = good;
    long_header[0] = 0xff, long_header[1] = 0xff;
    refused(long_header, {"runs past the end"});
    auto with_header = [&](const std::string& json) { return with_length(json, std::vector<uint8_t>(24, 0)); };  // 24 data bytes
    refused(with_header("{\"w\":"), {"not valid JSON"});
    refused(with_header("[1,2]"), {"not a JSON object"});
    refused(with_header("{\"w\":{\"dtype\":\"F7\",\"shape\":[2,3],\"data_offsets\":[0,24]}}"), {"tensor w", "unknown dtype 'F7'"});
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}}"), {"tensor w", "shape"});
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}"), {"tensor w", "24 bytes for 8 F32 values"});
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}}"), {"tensor w", "outside the 24 data bytes"});
    refused(with_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}"),
            {"tensors a and b overlap"});
    // Shapes whose element or bit counts wrap around 2^64 (2^59 + 1 F32 values "in" 4 bytes).
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[576460752303423489],\"data_offsets\":[0,4]}}"), {"tensor w", "more bits than 2^64"});
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}"), {"tensor w", "more elements than 2^64"});
    refused(with_header("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"),
            {"tensor w appears twice"});
    // An index naming a tensor its shard does not hold.
    write_file(dir / "sharded" / "model.safetensors.index.json",
               "{\"weight_map\":{\"model.norm.weight\":\"model-00002-of-00002.safetensors\",\"ghost.weight\":\"model-00001-of-00002.safetensors\"}}");
    const std::string e = error_of([&] { convert::Checkpoint::open(dir / "sharded"); });
    CHECK(e.find("ghost.weight") != std::string::npos);
    CHECK(e.find("model-00001-of-00002.safetensors") != std::string::npos);
}

TEST_CASE("convert refuses what it cannot convert, naming the file and tensor") {
    const test::TempDir dir;
    Spec s;
    make_hf_model(s, dir / "hf");
    auto refusal = [&](const std::filesystem::path& folder) { return error_of([&] { plan_of(folder, "auto"); }); };
    // An architecture the table does not have.
    Spec gemma;
    gemma.hf_class = "GemmaForCausalLM";
    make_hf_model(gemma, dir / "gemma");
    CHECK(refusal(dir / "gemma").find("architecture GemmaForCausalLM is not supported") != std::string::npos);
    // A config that contradicts the tensors.
    Spec wide = s;
    make_hf_model(wide, dir / "wide");
    write_file(dir / "wide" / "config.json",
               "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":40,\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":2,"
               "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":64}");
    const std::string shape = refusal(dir / "wide");
    CHECK(shape.find("model.layers.0.mlp.gate_proj.weight") != std::string::npos);
    CHECK(shape.find("expected [64, 32]") != std::string::npos);
    // A missing config field, a missing folder's weights.
    write_file(dir / "wide" / "config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":40}");
    CHECK(refusal(dir / "wide").find("\"hidden_size\" is missing") != std::string::npos);
    std::filesystem::create_directories(dir / "empty");
    CHECK(refusal(dir / "empty").find("no model.safetensors") != std::string::npos);
    // A tensor with no place in the architecture, and a quantized dtype.
    std::vector<HfTensor> extra = {{"model.vision_tower.weight", {2}, {1, 2}}};
    write_file(dir / "hf" / "model.safetensors",
               [&] {
                   Spec t = s;
                   const HfModel m = make_hf_model(t, dir / "scratch");
                   std::vector<HfTensor> all;
                   for (const auto& [name, tensor] : m.tensors) all.push_back(tensor);
                   all.push_back(extra[0]);
                   return safetensors_bytes(all, "F32");
               }());
    const std::string unknown = refusal(dir / "hf");
    CHECK(unknown.find("model.vision_tower.weight has no place in a LlamaForCausalLM model") != std::string::npos);
    // A quantized checkpoint's dtype, named.
    {
        Spec t = s;
        const HfModel m = make_hf_model(t, dir / "int8");
        std::vector<HfTensor> all;
        for (const auto& [name, tensor] : m.tensors) all.push_back(tensor);
        std::string header = "{";
        std::vector<uint8_t> data;
        for (size_t i = 0; i < all.size(); ++i) {
            const bool int8 = all[i].name == "model.layers.0.mlp.up_proj.weight";
            const size_t begin = data.size(), bytes = all[i].values.size() * (int8 ? 1 : 4);
            data.resize(begin + bytes);
            std::string dims;
            for (uint64_t d : all[i].shape) dims.append(dims.empty() ? "" : ",").append(std::to_string(d));
            header += fmt::format("{}\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", i ? "," : "", all[i].name, int8 ? "I8" : "F32",
                                  dims, begin, data.size());
        }
        write_file(dir / "int8" / "model.safetensors", with_length(header + "}", data));
        const std::string e = refusal(dir / "int8");
        CHECK(e.find("tensor model.layers.0.mlp.up_proj.weight: is int8 without a scale") != std::string::npos);
    }
    // A size of 0 in config.json.
    write_file(dir / "int8" / "config.json",
               "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":40,\"hidden_size\":0,\"intermediate_size\":48,\"num_hidden_layers\":2,"
               "\"num_attention_heads\":4,\"max_position_embeddings\":64}");
    CHECK(refusal(dir / "int8").find("\"hidden_size\" is 0") != std::string::npos);
}
