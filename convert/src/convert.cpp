#include "convert/convert.h"
#include "convert/hf_tokenizer.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>

#include <fmt/format.h>

#include "gguf/arch.h"
#include "gguf/file_type.h"
#include "gguf/mapping.h"
#include "gguf/writer.h"
#include "requant/plan.h"
#include "kernels/kernels.h"
#include "measure.h"
#include "quant/executor.h"
#include "quant/quant.h"

namespace convert {

namespace {

using gguf::OwnedValue;
using gguf::TensorRole;
using gguf::TypeId;

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }

// ---- The architectures -------------------------------------------------------------------

// A tensor role's Hugging Face name: "model.layers.{}.self_attn.q_proj" ({} the layer),
// suffixed ".weight" / ".bias".
struct HfName {
    TensorRole role;
    const char* name;
    bool bias = false;      // the role has a .bias as well (qwen2's q/k/v)
    bool optional = false;  // may be absent (lm_head with tied embeddings)
};

// What the llama-family architectures share: embeddings, norms, attention.
constexpr HfName kCommonNames[] = {
    {TensorRole::TokenEmbd, "model.embed_tokens"},
    {TensorRole::OutputNorm, "model.norm"},
    {TensorRole::Output, "lm_head", false, true},
    {TensorRole::AttnNorm, "model.layers.{}.input_layernorm"},
    {TensorRole::AttnQ, "model.layers.{}.self_attn.q_proj"},
    {TensorRole::AttnK, "model.layers.{}.self_attn.k_proj"},
    {TensorRole::AttnV, "model.layers.{}.self_attn.v_proj"},
    {TensorRole::AttnOutput, "model.layers.{}.self_attn.o_proj"},
    {TensorRole::FfnNorm, "model.layers.{}.post_attention_layernorm"},
};
constexpr HfName kQkNormNames[] = {
    {TensorRole::AttnQNorm, "model.layers.{}.self_attn.q_norm"},
    {TensorRole::AttnKNorm, "model.layers.{}.self_attn.k_norm"},
};
// The feed-forward part, by kind. "{e}" is the expert.
constexpr HfName kDenseNames[] = {
    {TensorRole::FfnGate, "model.layers.{}.mlp.gate_proj"},
    {TensorRole::FfnUp, "model.layers.{}.mlp.up_proj"},
    {TensorRole::FfnDown, "model.layers.{}.mlp.down_proj"},
};
constexpr HfName kMixtralNames[] = {
    {TensorRole::FfnGateInp, "model.layers.{}.block_sparse_moe.gate"},
    {TensorRole::FfnGateExps, "model.layers.{}.block_sparse_moe.experts.{e}.w1"},
    {TensorRole::FfnUpExps, "model.layers.{}.block_sparse_moe.experts.{e}.w3"},
    {TensorRole::FfnDownExps, "model.layers.{}.block_sparse_moe.experts.{e}.w2"},
};
constexpr HfName kQwenMoeNames[] = {
    {TensorRole::FfnGateInp, "model.layers.{}.mlp.gate"},
    {TensorRole::FfnGateExps, "model.layers.{}.mlp.experts.{e}.gate_proj"},
    {TensorRole::FfnUpExps, "model.layers.{}.mlp.experts.{e}.up_proj"},
    {TensorRole::FfnDownExps, "model.layers.{}.mlp.experts.{e}.down_proj"},
};

struct Architecture {
    const char* hf_class;
    const char* arch;                 // GGUF general.architecture
    std::span<const HfName> ffn;      // the feed-forward part's names
    bool qkv_bias = false;            // q/k/v have biases (qwen2)
    bool qk_norm = false;             // per-head q/k norms (qwen3)
    bool permute_qk = false;          // rotate-half to interleaved pairs (llama's rotary)
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", kDenseNames, false, false, true},
    {"MistralForCausalLM", "llama", kDenseNames, false, false, true},
    {"MixtralForCausalLM", "llama", kMixtralNames, false, false, true},
    {"Qwen2ForCausalLM", "qwen2", kDenseNames, true, false, false},
    {"Qwen3ForCausalLM", "qwen3", kDenseNames, false, true, false},
    {"Qwen3MoeForCausalLM", "qwen3moe", kQwenMoeNames, false, true, false},
};

// An architecture's Hugging Face names, role by role.
std::vector<HfName> names_of(const Architecture& a) {
    std::vector<HfName> out(std::begin(kCommonNames), std::end(kCommonNames));
    if (a.qkv_bias)
        for (HfName& n : out) n.bias = n.role == TensorRole::AttnQ || n.role == TensorRole::AttnK || n.role == TensorRole::AttnV;
    if (a.qk_norm) out.insert(out.end(), std::begin(kQkNormNames), std::end(kQkNormNames));
    out.insert(out.end(), a.ffn.begin(), a.ffn.end());
    return out;
}

std::string hf_name(const HfName& n, std::optional<uint32_t> layer, const char* suffix, uint32_t expert = 0) {
    std::string s = n.name;
    if (const size_t at = s.find("{}"); at != std::string::npos) s.replace(at, 2, std::to_string(*layer));
    if (const size_t at = s.find("{e}"); at != std::string::npos) s.replace(at, 3, std::to_string(expert));
    return s + "." + suffix;
}

bool is_expert_role(TensorRole r) { return r == TensorRole::FfnGateExps || r == TensorRole::FfnUpExps || r == TensorRole::FfnDownExps; }

// ---- config.json -------------------------------------------------------------------------

std::string read_text(const std::filesystem::path& p) {
    if (!std::filesystem::exists(p)) fail(p.string(), "missing");
    const gguf::Mapping m(p);
    return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.bytes().size());
}

}  // namespace

std::vector<std::string> supported_architectures() {
    std::vector<std::string> out;
    for (const Architecture& a : kArchitectures) out.emplace_back(a.hf_class);
    return out;
}

HfConfig read_config(const std::filesystem::path& folder) {
    const std::filesystem::path path = folder / "config.json";
    const std::string file = path.string();
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    const simdjson::padded_string text(read_text(path));
    if (const auto error = parser.parse(text).get(root)) fail(file, fmt::format("not valid JSON ({})", simdjson::error_message(error)));
    HfConfig c;
    simdjson::dom::array archs;
    std::string_view arch;
    if (root["architectures"].get(archs) || archs.size() == 0 || archs.at(0).get(arch)) fail(file, "no \"architectures\" list");
    c.architecture = std::string(arch);
    c.name = std::filesystem::absolute(folder).lexically_normal().filename().string();
    if (c.name.empty()) c.name = std::filesystem::absolute(folder).lexically_normal().parent_path().filename().string();
    // A field absent or null is missing (as Python's dict.get sees a saved config).
    const auto absent = [](const simdjson::simdjson_result<simdjson::dom::element>& e) { return e.error() == simdjson::NO_SUCH_FIELD || e.is_null(); };
    // A count; `required` ones must be present and positive.
    const auto u32 = [&](const char* key, bool required) -> uint32_t {
        uint64_t v = 0;
        const auto e = root[key];
        if (absent(e)) {
            if (required) fail(file, fmt::format("\"{}\" is missing", key));
            return 0;
        }
        if (e.get(v) || v > UINT32_MAX) fail(file, fmt::format("\"{}\" is not a count", key));
        if (required && v == 0) fail(file, fmt::format("\"{}\" is 0", key));
        return static_cast<uint32_t>(v);
    };
    const auto number = [&](simdjson::dom::element parent, const char* key, double fallback) {
        double v = fallback;
        const auto e = parent[key];
        if (absent(e)) return fallback;
        if (e.get(v) || !std::isfinite(v)) fail(file, fmt::format("\"{}\" is not a number", key));
        return v;
    };
    const auto count = [&](simdjson::dom::element parent, const char* key) -> uint32_t {
        const double v = number(parent, key, 0);
        if (v < 0 || v > UINT32_MAX || v != std::floor(v)) fail(file, fmt::format("\"{}\" is not a count", key));
        return static_cast<uint32_t>(v);
    };
    c.vocab_size = u32("vocab_size", true);
    c.hidden_size = u32("hidden_size", true);
    c.intermediate_size = u32("intermediate_size", true);
    c.num_hidden_layers = u32("num_hidden_layers", true);
    c.num_attention_heads = u32("num_attention_heads", true);
    c.num_key_value_heads = u32("num_key_value_heads", false);
    if (!c.num_key_value_heads) c.num_key_value_heads = c.num_attention_heads;
    c.max_position_embeddings = u32("max_position_embeddings", true);
    c.head_dim = u32("head_dim", false);
    if (!c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads)
        fail(file, fmt::format("num_attention_heads {} is not a positive multiple of num_key_value_heads {}", c.num_attention_heads,
                               c.num_key_value_heads));
    if (!c.head_dim) {
        if (c.hidden_size % c.num_attention_heads) fail(file, "hidden_size is not a multiple of num_attention_heads (and no head_dim)");
        c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    c.num_experts = u32("num_local_experts", false);
    if (!c.num_experts) c.num_experts = u32("num_experts", false);
    if (c.num_experts) {
        c.num_experts_per_tok = u32("num_experts_per_tok", true);
        c.moe_intermediate_size = u32("moe_intermediate_size", false);
        if (!c.moe_intermediate_size) c.moe_intermediate_size = c.intermediate_size;
        if (!c.moe_intermediate_size) fail(file, "\"moe_intermediate_size\" is 0");
        if (!c.num_experts_per_tok || c.num_experts_per_tok > c.num_experts)
            fail(file, fmt::format("num_experts_per_tok {} is not between 1 and the {} experts", c.num_experts_per_tok, c.num_experts));
    }
    c.rms_norm_eps = number(root, "rms_norm_eps", 1e-6);
    c.rope_theta = number(root, "rope_theta", 10000.0);
    bool tied = false;
    if (root["tie_word_embeddings"].get(tied) == simdjson::SUCCESS) c.tie_word_embeddings = tied;
    simdjson::dom::element scaling;
    if (root["rope_scaling"].get(scaling) == simdjson::SUCCESS && scaling.is_object()) {
        std::string_view type;
        if (scaling["rope_type"].get(type) && scaling["type"].get(type)) fail(file, "rope_scaling has no \"rope_type\"");
        if (type == "llama3") {
            c.rope_scaling_type = "llama3";
            c.rope_scaling_factor = number(scaling, "factor", 0);
            c.rope_low_freq_factor = number(scaling, "low_freq_factor", 1);
            c.rope_high_freq_factor = number(scaling, "high_freq_factor", 4);
            c.rope_original_context = count(scaling, "original_max_position_embeddings");
            if (c.rope_scaling_factor <= 0 || c.rope_original_context == 0 || c.rope_high_freq_factor <= c.rope_low_freq_factor)
                fail(file, "rope_scaling (llama3) needs a positive factor, original_max_position_embeddings and high_freq_factor > low_freq_factor");
        } else if (type == "linear" || type == "yarn") {
            c.rope_scaling_type = std::string(type);
            c.rope_scaling_factor = number(scaling, "factor", 0);
            if (c.rope_scaling_factor <= 0) fail(file, "rope_scaling.factor is missing or not positive");
            c.rope_original_context = count(scaling, "original_max_position_embeddings");
        } else if (type != "default") {
            fail(file, fmt::format("rope_scaling type '{}' is not supported yet (linear, yarn and llama3 are)", type));
        }
    }
    return c;
}

namespace {

// The table's entry for config.json's class; an unknown class is refused, naming the file.
const Architecture& architecture_of(const HfConfig& c, const std::filesystem::path& folder) {
    for (const Architecture& a : kArchitectures)
        if (c.architecture == a.hf_class) return a;
    fail((folder / "config.json").string(),
         fmt::format("architecture {} is not supported (supported: {})", c.architecture, fmt::join(supported_architectures(), ", ")));
}

// The keys llama.cpp's converter writes from config.json (the tokenizer's come after).
void add_model_keys(Plan& p) {
    const HfConfig& c = p.config;
    const std::string a = p.arch + ".";
    auto& k = p.keys;
    k.emplace_back("general.architecture", OwnedValue::string(p.arch));
    k.emplace_back("general.name", OwnedValue::string(c.name));
    k.emplace_back(a + "vocab_size", OwnedValue::u32(c.vocab_size));
    k.emplace_back(a + "context_length", OwnedValue::u32(c.max_position_embeddings));
    k.emplace_back(a + "embedding_length", OwnedValue::u32(c.hidden_size));
    k.emplace_back(a + "block_count", OwnedValue::u32(c.num_hidden_layers));
    k.emplace_back(a + "feed_forward_length", OwnedValue::u32(c.intermediate_size));
    k.emplace_back(a + "rope.freq_base", OwnedValue::f32(static_cast<float>(c.rope_theta)));
    k.emplace_back(a + "attention.head_count", OwnedValue::u32(c.num_attention_heads));
    k.emplace_back(a + "attention.head_count_kv", OwnedValue::u32(c.num_key_value_heads));
    k.emplace_back(a + "attention.layer_norm_rms_epsilon", OwnedValue::f32(static_cast<float>(c.rms_norm_eps)));
    if (c.head_dim != c.hidden_size / c.num_attention_heads) {
        k.emplace_back(a + "attention.key_length", OwnedValue::u32(c.head_dim));
        k.emplace_back(a + "attention.value_length", OwnedValue::u32(c.head_dim));
    }
    k.emplace_back(a + "rope.dimension_count", OwnedValue::u32(c.head_dim));
    if (c.num_experts) {
        k.emplace_back(a + "expert_count", OwnedValue::u32(c.num_experts));
        k.emplace_back(a + "expert_used_count", OwnedValue::u32(c.num_experts_per_tok));
        if (p.arch == "qwen3moe") k.emplace_back(a + "expert_feed_forward_length", OwnedValue::u32(c.moe_intermediate_size));
    }
    if (!c.rope_scaling_type.empty() && c.rope_scaling_type != "llama3") {
        k.emplace_back(a + "rope.scaling.type", OwnedValue::string(c.rope_scaling_type));
        k.emplace_back(a + "rope.scaling.factor", OwnedValue::f32(static_cast<float>(c.rope_scaling_factor)));
        if (c.rope_original_context) k.emplace_back(a + "rope.scaling.original_context_length", OwnedValue::u32(c.rope_original_context));
    }
    k.emplace_back("general.file_type", OwnedValue::u32(p.file_type));
    k.emplace_back("general.quantization_version", OwnedValue::u32(2));
}

// The tokenizer's keys, when the folder has one (tokenizer.json or tokenizer.model); false
// when it has none.
bool add_tokenizer(Plan& p, const std::filesystem::path& folder) {
    if (!std::filesystem::exists(folder / "tokenizer.json") && !std::filesystem::exists(folder / "tokenizer.model")) return false;
    TokenizerOptions o;
    o.vocab_size = p.config.vocab_size;
    TokenizerKeys t = tokenizer_keys(folder, o);
    for (auto& kv : t.keys) p.keys.push_back(std::move(kv));
    p.tokenizer = t.model + (t.pre.empty() ? "" : " (" + t.pre + ")") + ", " + std::to_string(t.vocab_size) + " tokens";
    return true;
}

// A requant target on the planned tensors: llama.cpp's per-tensor rules, as `gguf requant`
// applies them to a converted file, decide each type; importance weights looked up by name.
void apply_mix(Plan& p, const gguf::requant::Target& mix, const quant::ImportanceMatrix* imatrix) {
    const HfConfig& c = p.config;
    gguf::Hyperparameters h;
    h.arch = p.arch;
    h.architecture = gguf::find_architecture(p.arch);
    h.n_layer = c.num_hidden_layers, h.n_embd = c.hidden_size, h.n_ff = c.intermediate_size, h.n_ctx = c.max_position_embeddings;
    h.n_head = c.num_attention_heads, h.n_head_kv = c.num_key_value_heads;
    h.n_expert = c.num_experts, h.n_expert_used = c.num_experts_per_tok;
    std::vector<gguf::TensorInfo> infos(p.tensors.size());
    for (size_t i = 0; i < p.tensors.size(); ++i) {
        const TensorPlan& t = p.tensors[i];
        gguf::TensorInfo& info = infos[i];
        info.name = t.name;
        info.n_dims = static_cast<uint32_t>(t.shape.size());
        std::copy(t.shape.begin(), t.shape.end(), info.shape.begin());
        info.type = t.type;
        info.n_elements = t.rows() * t.shape[0];
    }
    gguf::requant::Options o;
    o.target = &mix;
    o.has_imatrix = imatrix != nullptr;
    for (const gguf::requant::TensorPlan& planned : gguf::requant::plan(h, infos, o)) {
        TensorPlan& t = p.tensors[static_cast<size_t>(planned.info - infos.data())];
        t.type = planned.to;
        if (imatrix && (t.importance = imatrix->find(t.name))) {
            // Per column, or per column of each expert for a stacked tensor (as requant checks).
            const uint64_t cols = t.shape[0], experts = t.shape.size() == 3 ? t.shape[2] : 1;
            if (t.importance->size() != cols && t.importance->size() != cols * experts) {
                if (t.name == "token_embd.weight") {
                    t.importance = nullptr;  // llama.cpp leaves such an entry unused
                } else {
                    fail(t.name, fmt::format("the importance matrix holds {} values for it, not {} (columns{})", t.importance->size(), cols * experts,
                                             experts > 1 ? " x experts" : ""));
                }
            }
        }
        if (planned.requires_imatrix && !t.importance)
            fail(t.name, fmt::format("{} needs an importance matrix (--imatrix), as llama.cpp's quantizer requires", gguf::type_info(planned.to).name));
    }
    p.file_type = mix.file_type;
}

// general.file_type of a lossless import: the mix named for the type holding the most bytes
// of matrices (a quantized layer's lossless type, or the 16/32-bit type of the rest).
uint32_t lossless_file_type(const Plan& p) {
    std::map<TypeId, uint64_t> bytes;
    for (const TensorPlan& t : p.tensors)
        if (t.shape.size() >= 2) bytes[t.type] += t.rows() * quant::row_bytes(t.type, static_cast<int64_t>(t.shape[0]));
    TypeId most = TypeId::F16;
    uint64_t best = 0;
    for (const auto& [type, n] : bytes)
        if (n > best) most = type, best = n;
    for (const gguf::FileTypeInfo& f : gguf::all_file_types())
        if (!f.retired && f.base == most) return static_cast<uint32_t>(f.id);
    return 1;
}

}  // namespace

Plan plan(const std::filesystem::path& folder, const Checkpoint& weights, const ConvertOptions& options) {
    Plan p;
    p.config = read_config(folder);
    const HfConfig& c = p.config;
    const Architecture* arch = &architecture_of(c, folder);
    p.arch = arch->arch;

    // The output type of 2-D tensors.
    std::string out = options.outtype;
    std::transform(out.begin(), out.end(), out.begin(), [](char ch) { return static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); });
    std::optional<TypeId> fixed;
    const gguf::requant::Target* mix = nullptr;
    if (out == "f32") fixed = TypeId::F32;
    else if (out == "f16") fixed = TypeId::F16;
    else if (out == "bf16") fixed = TypeId::BF16;
    else if (out == "q8_0") fixed = TypeId::Q8_0;
    else if (out != "auto" && out != "lossless" && !(mix = gguf::requant::find_target(options.outtype)))
        fail("--outtype", fmt::format("'{}' is not f32, f16, bf16, q8_0, auto, lossless, or a type or mix gguf requant knows (gguf requant --list)",
                                      options.outtype));
    if (mix && mix->copy) fail("--outtype", "COPY has nothing to copy from: give a type or mix");

    const uint64_t embd = c.hidden_size, q_dim = uint64_t{c.num_attention_heads} * c.head_dim, kv_dim = uint64_t{c.num_key_value_heads} * c.head_dim;
    // The shape each role must have, Hugging Face order ([rows, cols]; 1-D: [n]).
    const auto expected = [&](TensorRole role) -> std::vector<uint64_t> {
        switch (role) {
            case TensorRole::TokenEmbd:
            case TensorRole::Output: return {c.vocab_size, embd};
            case TensorRole::OutputNorm:
            case TensorRole::AttnNorm:
            case TensorRole::FfnNorm: return {embd};
            case TensorRole::AttnQ: return {q_dim, embd};
            case TensorRole::AttnK:
            case TensorRole::AttnV: return {kv_dim, embd};
            case TensorRole::AttnOutput: return {embd, q_dim};
            case TensorRole::AttnQNorm:
            case TensorRole::AttnKNorm: return {c.head_dim};
            case TensorRole::FfnGate:
            case TensorRole::FfnUp: return {c.intermediate_size, embd};
            case TensorRole::FfnDown: return {embd, c.intermediate_size};
            case TensorRole::FfnGateInp: return {c.num_experts, embd};
            case TensorRole::FfnGateExps:
            case TensorRole::FfnUpExps: return {c.moe_intermediate_size, embd};  // each expert's
            case TensorRole::FfnDownExps: return {embd, c.moe_intermediate_size};
            default: return {};
        }
    };
    TypeId widest = TypeId::F32;  // the 16-bit type of the sources (auto)
    const bool lossless = out == "lossless";
    p.quantization = read_quant_config(folder);
    std::map<std::string, bool> used;
    for (const auto& [name, t] : weights.tensors()) used[name] = false;
    std::vector<std::string> read_too;  // the scales, zeros... a quantized layer reads
    const auto add = [&](const HfName& n, std::optional<uint32_t> layer, bool bias) {
        std::vector<uint64_t> want = expected(n.role);
        if (bias) want.resize(1);
        const bool matrix = want.size() == 2 && n.role != TensorRole::FfnGateInp;  // the router stays F32, as llama.cpp keeps it
        const uint32_t count = is_expert_role(n.role) ? c.num_experts : 1;
        if (is_expert_role(n.role) && !c.num_experts)
            fail((folder / "config.json").string(), "the architecture has experts, config.json names none (num_local_experts / num_experts)");
        // Each source (expert by expert): a dense tensor or a quantized layer.
        std::vector<const SafeTensor*> dense;
        std::vector<std::shared_ptr<const QuantizedTensor>> quantized;
        for (uint32_t e = 0; e < count; ++e) {
            const std::string hf = hf_name(n, layer, bias ? "bias" : "weight", e);
            if (!bias && want.size() == 2) {
                const std::string module = hf.substr(0, hf.size() - 7);
                if (auto q = find_quantized(weights, p.quantization, module, want[0], want[1], read_too)) {
                    used[q->parts()[0]->name] = true;
                    quantized.push_back(std::move(q));
                    continue;
                }
            }
            const SafeTensor* t = weights.find(hf);
            if (!t) {
                if (n.optional && e == 0) return;
                fail(folder.string(), fmt::format("tensor {} is missing", hf));
            }
            used[hf] = true;
            if (t->dtype != Dtype::F32 && t->dtype != Dtype::F16 && t->dtype != Dtype::BF16)
                fail(t->file->string(), fmt::format("tensor {}: dtype {} is not read here (F32, F16, BF16 are, and quantized layers with their scales)",
                                                    hf, dtype_name(t->dtype)));
            if (t->shape != want)
                fail(t->file->string(), fmt::format("tensor {}: shape [{}], expected [{}] from config.json", hf, fmt::join(t->shape, ", "),
                                                    fmt::join(want, ", ")));
            if (!dense.empty() && t->dtype != dense[0]->dtype)
                fail(t->file->string(), fmt::format("tensor {}: dtype {}, unlike expert 0's {}", t->name, dtype_name(t->dtype), dtype_name(dense[0]->dtype)));
            dense.push_back(t);
        }
        if (!dense.empty() && !quantized.empty())
            fail(dense[0]->file->string(), fmt::format("tensor {} is dense but {} is quantized ({}): the experts of {} must be stored alike", dense[0]->name,
                                                       quantized[0]->module(), quantized[0]->kind(), gguf::tensor_name(n.role, layer)));
        TensorPlan tp;
        tp.name = gguf::tensor_name(n.role, layer, bias ? "bias" : "weight");
        tp.shape.assign(want.rbegin(), want.rend());
        if (count > 1) tp.shape.push_back(count);  // stacked as llama.cpp stacks experts: [cols, rows, n_expert]
        if (!quantized.empty()) {
            tp.source = quantized[0]->parts()[0];
            tp.quantized.assign(quantized.begin(), quantized.end());
        } else {
            tp.source = dense[0];
            if (count > 1) tp.sources = dense;
            if (dense[0]->dtype == Dtype::BF16) widest = TypeId::BF16;
            else if (dense[0]->dtype == Dtype::F16 && widest != TypeId::BF16) widest = TypeId::F16;
        }
        // auto: 16-bit sources keep their type, F32 ones become F16 (quantized layers: settled below).
        const TypeId source = !quantized.empty() ? TypeId::F32 : dense[0]->dtype == Dtype::BF16 ? TypeId::BF16 : dense[0]->dtype == Dtype::F16 ? TypeId::F16 : TypeId::F32;
        tp.type = matrix ? fixed.value_or(source == TypeId::BF16 ? TypeId::BF16 : TypeId::F16) : TypeId::F32;
        if (lossless && matrix) {
            tp.type = source;
            if (!quantized.empty()) {
                const std::optional<TypeId> exact = lossless_type(tp);
                tp.type = exact.value_or(TypeId::F32);
                tp.exact_blocks = exact.has_value();
            }
        }
        if (tp.type == TypeId::Q8_0 && tp.shape[0] % 32) tp.type = TypeId::F16;  // rows not whole Q8_0 blocks, as llama.cpp falls back
        if (arch->permute_qk && !bias && (n.role == TensorRole::AttnQ || n.role == TensorRole::AttnK))
            tp.permute_heads = n.role == TensorRole::AttnQ ? c.num_attention_heads : c.num_key_value_heads;
        p.tensors.push_back(std::move(tp));
    };
    const std::vector<HfName> names = names_of(*arch);
    for (const HfName& n : names) {
        if (!gguf::find_tensor_kind(n.role)->per_layer) {
            if (n.role == TensorRole::Output && c.tie_word_embeddings) continue;
            add(n, std::nullopt, false);
            continue;
        }
    }
    for (uint32_t layer = 0; layer < c.num_hidden_layers; ++layer) {
        for (const HfName& n : names) {
            if (!gguf::find_tensor_kind(n.role)->per_layer) continue;
            add(n, layer, false);
            if (n.bias) add(n, layer, true);
        }
        if (!p.tensors.empty() && !p.tensors.back().quantized.empty()) weights.release_pages();  // what a quantized layer's checks read
    }
    // Llama 3.1's frequency-dependent rotary scaling as llama.cpp's converter writes it: a
    // factor per rotated pair, rope_freqs.weight (F32), by Meta's formula: pairs whose
    // wavelength (2 pi / frequency) is below original_context / high_freq_factor keep 1, those
    // above original_context / low_freq_factor take `factor`, a smooth blend between.
    if (c.rope_scaling_type == "llama3") {
        TensorPlan tp;
        tp.name = gguf::tensor_name(TensorRole::RopeFreqs, std::nullopt);
        tp.type = TypeId::F32;
        tp.source = nullptr;
        const double low_wavelen = c.rope_original_context / c.rope_low_freq_factor, high_wavelen = c.rope_original_context / c.rope_high_freq_factor;
        for (uint32_t i = 0; i < c.head_dim / 2; ++i) {
            const double freq = std::pow(c.rope_theta, -2.0 * i / c.head_dim), wavelen = 2 * std::numbers::pi / freq;
            double f = 1;
            if (wavelen > low_wavelen) f = c.rope_scaling_factor;
            else if (wavelen >= high_wavelen) {
                const double smooth = (c.rope_original_context / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
                f = 1 / ((1 - smooth) / c.rope_scaling_factor + smooth);
            }
            tp.values.push_back(static_cast<float>(f));
        }
        tp.shape = {tp.values.size()};
        p.tensors.insert(p.tensors.begin(), std::move(tp));
    }
    // Every tensor of the checkpoint has a place (rotary caches that Hugging Face stores are
    // recomputed by every runtime and left out, as llama.cpp does).
    for (const std::string& name : read_too) used[name] = true;
    for (const auto& [name, was_used] : used)
        if (!was_used && !name.ends_with(".rotary_emb.inv_freq") && !(c.tie_word_embeddings && name == "lm_head.weight"))
            fail(weights.find(name)->file->string(), fmt::format("tensor {} has no place in a {} model", name, c.architecture));

    // The file type and the keys llama.cpp's converter writes.
    const TypeId main = fixed.value_or(widest == TypeId::F32 ? TypeId::F16 : widest);
    p.file_type = main == TypeId::F32 ? 0 : main == TypeId::F16 ? 1 : main == TypeId::BF16 ? 32 : 7;
    if (!fixed && !lossless)  // auto: quantized layers in the model's 16-bit type
        for (TensorPlan& t : p.tensors)
            if (!t.quantized.empty() && t.type == TypeId::F16 && widest == TypeId::BF16) t.type = TypeId::BF16;
    if (lossless) p.file_type = lossless_file_type(p);
    if (mix) apply_mix(p, *mix, options.imatrix);
    p.effort = options.effort;
    weights.release_pages();  // what the checks above read (scales, zeros, g_idx) is read again when written
    add_model_keys(p);
    if (options.tokenizer) add_tokenizer(p, folder);
    for (const auto& kv : options.extra_keys) p.keys.push_back(kv);
    return p;
}

Plan vocab_only_plan(const std::filesystem::path& folder, const ConvertOptions& options) {
    Plan p;
    p.config = read_config(folder);
    p.arch = architecture_of(p.config, folder).arch;
    p.file_type = 1;  // llama.cpp's converter's default outtype, f16
    add_model_keys(p);
    if (!add_tokenizer(p, folder)) fail(folder.string(), "no tokenizer.json or tokenizer.model: nothing to write with --vocab-only");
    for (const auto& kv : options.extra_keys) p.keys.push_back(kv);
    return p;
}

namespace {

TypeId source_type(Dtype d) { return d == Dtype::F32 ? TypeId::F32 : d == Dtype::F16 ? TypeId::F16 : TypeId::BF16; }

// The source row that output row r of a permuted Q/K matrix takes: within each head, Hugging
// Face's halves [x0 ... x(d/2-1) | y0 ...] become interleaved pairs x0 y0 x1 y1 ...
uint64_t permuted_row(uint64_t r, uint64_t rows, uint32_t heads) {
    const uint64_t d = rows / heads, head = r / d, i = r % d;
    return head * d + (i % 2) * (d / 2) + i / 2;
}

// The importance weights of output row r, if any (a stacked tensor's entry holds one vector
// per expert).
std::span<const float> importance_of(const TensorPlan& t, uint64_t r, uint64_t per_source) {
    if (!t.importance) return {};
    std::span<const float> importance = *t.importance;
    const uint64_t cols = t.shape[0];
    if (importance.size() > cols) importance = importance.subspan((r / per_source) * cols, cols);
    return importance;
}

// Rows [begin, end) of an imported tensor: decoded exactly, then written losslessly from the
// codes, as F32, or quantized; `errors` (indexed by row) gets what the written row lost.
void convert_quantized_rows(const TensorPlan& t, uint64_t begin, uint64_t end, uint8_t* out, kernels::ErrorStats* errors, quant::Effort effort) {
    const uint64_t cols = t.shape[0], per_source = t.quantized[0]->rows();
    const auto out_bytes = static_cast<size_t>(quant::row_bytes(t.type, static_cast<int64_t>(cols)));
    std::vector<float> exact(static_cast<size_t>(cols)), back, scratch;
    for (uint64_t r = begin; r < end; ++r, out += out_bytes) {
        const QuantizedTensor& q = *t.quantized[static_cast<size_t>(r / per_source)];
        const uint64_t local = r % per_source, row = t.permute_heads ? permuted_row(local, per_source, t.permute_heads) : local;
        q.decode(row, 1, exact.data());
        const std::span<uint8_t> bytes(out, out_bytes);
        const std::span<const uint8_t> exact_bytes(reinterpret_cast<const uint8_t*>(exact.data()), exact.size() * sizeof(float));
        if (t.exact_blocks) q.encode_lossless(t.type, row, bytes);
        else if (t.type == TypeId::F32) std::memcpy(out, exact.data(), out_bytes);
        else if (t.type == TypeId::F16 || t.type == TypeId::BF16)  // the SIMD narrowing (round to nearest even), as quant's
            (t.type == TypeId::F16 ? kernels::dequantize_f16 : kernels::dequantize_bf16)(TypeId::F32, exact_bytes,
                                                                                         std::span<uint16_t>(reinterpret_cast<uint16_t*>(out), static_cast<size_t>(cols)),
                                                                                         kernels::active_isa());
        else quant::quantize(t.type, exact, static_cast<int64_t>(cols), importance_of(t, r, per_source), bytes, static_cast<int64_t>(r), effort);
        if (!errors && !t.exact_blocks) continue;
        back.resize(static_cast<size_t>(cols));
        kernels::dequantize(t.type, bytes, back);
        // The lossless blocks are checked, not trusted: a value that differs is a bug here.
        const auto same = [&](size_t k) {  // equal bits, or both NaN
            return std::bit_cast<uint32_t>(back[k]) == std::bit_cast<uint32_t>(exact[k]) || (std::isnan(back[k]) && std::isnan(exact[k]));
        };
        if (t.exact_blocks && std::memcmp(back.data(), exact.data(), exact_bytes.size()) != 0)
            for (size_t k = 0; k < back.size(); ++k)
                if (!same(k))
                    throw std::logic_error(fmt::format("the {} blocks written for {} row {} give {} at column {}, not the exact {}", gguf::type_info(t.type).name,
                                                       q.module(), row, back[k], k, exact[k]));
        if (!errors) continue;
        kernels::ErrorStats e;
        detail::add_row(e, exact, back, {}, scratch);
        errors[r] = e;
    }
}

// Output rows [begin, end) of `t` into `out` (their bytes back to back): each source row
// converted by the SIMD kernels (exact widening, round-to-nearest-even narrowing) or
// quantized.
void convert_rows(const TensorPlan& t, uint64_t begin, uint64_t end, uint8_t* out, kernels::ErrorStats* errors, quant::Effort effort) {
    if (!t.quantized.empty()) return convert_quantized_rows(t, begin, end, out, errors, effort);
    if (!t.source) {  // computed: F32 values
        std::memcpy(out, t.values.data() + begin * t.shape[0], static_cast<size_t>((end - begin) * t.shape[0] * sizeof(float)));
        return;
    }
    const uint64_t cols = t.shape[0], per_source = t.source->elements() / cols;
    const TypeId from = source_type(t.source->dtype);
    const uint64_t in_bytes = cols * (dtype_bits(t.source->dtype) / 8);
    const auto out_bytes = static_cast<size_t>(quant::row_bytes(t.type, static_cast<int64_t>(cols)));
    std::vector<float> floats;
    for (uint64_t r = begin; r < end; ++r, out += out_bytes) {
        // A stacked expert tensor's row r is row r % per_source of expert r / per_source.
        const SafeTensor& source = t.sources.empty() ? *t.source : *t.sources[static_cast<size_t>(r / per_source)];
        const uint64_t local = r % per_source;
        const std::span<const uint8_t> src = source.data.subspan((t.permute_heads ? permuted_row(local, per_source, t.permute_heads) : local) * in_bytes, in_bytes);
        if (t.type == from) {
            std::memcpy(out, src.data(), out_bytes);
        } else if (t.type == TypeId::F16 || t.type == TypeId::BF16) {
            const std::span<uint16_t> halves(reinterpret_cast<uint16_t*>(out), static_cast<size_t>(cols));
            (t.type == TypeId::F16 ? kernels::dequantize_f16 : kernels::dequantize_bf16)(from, src, halves, kernels::active_isa());
        } else {
            floats.resize(static_cast<size_t>(cols));
            kernels::dequantize(from, src, floats);
            if (t.type == TypeId::F32) {
                std::memcpy(out, floats.data(), out_bytes);
                continue;
            }
            quant::quantize(t.type, floats, static_cast<int64_t>(cols), importance_of(t, r, per_source), std::span<uint8_t>(out, out_bytes),
                            static_cast<int64_t>(r), effort);
        }
    }
}

// A tensor's rows in chunks (about 8 MiB out) converted on the threads, written in order.
void stream_tensor(const TensorPlan& t, uint64_t rows, uint64_t row_bytes, int threads, gguf::ByteSink& sink, kernels::ErrorStats* errors,
                   quant::Effort effort) {
    const uint64_t chunk = std::max<uint64_t>(1, (8u << 20) / row_bytes);
    std::vector<uint8_t> buffer(static_cast<size_t>(std::min(rows, chunk) * row_bytes));
    quant::RunOptions run;
    run.threads = threads;
    for (uint64_t r0 = 0; r0 < rows; r0 += chunk) {
        const uint64_t n = std::min(chunk, rows - r0);
        quant::default_executor().run(
            static_cast<int64_t>(n),
            [&](int64_t b, int64_t e) {
                convert_rows(t, r0 + static_cast<uint64_t>(b), r0 + static_cast<uint64_t>(e), buffer.data() + static_cast<uint64_t>(b) * row_bytes, errors,
                             effort);
            },
            run);
        sink.write(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n * row_bytes)));
    }
}

}  // namespace

std::optional<TypeId> lossless_type(const TensorPlan& t) {
    if (t.quantized.empty()) return std::nullopt;
    std::optional<TypeId> exact = t.quantized[0]->lossless_type();
    for (size_t i = 1; i < t.quantized.size() && exact; ++i)
        if (t.quantized[i]->lossless_type() != exact) exact.reset();
    return exact;
}

void decode_rows(const TensorPlan& t, uint64_t begin, uint64_t end, float* out) {
    const uint64_t cols = t.shape[0];
    if (!t.source) {
        std::memcpy(out, t.values.data() + begin * cols, static_cast<size_t>((end - begin) * cols * sizeof(float)));
        return;
    }
    if (!t.quantized.empty()) {
        const uint64_t per_source = t.quantized[0]->rows();
        for (uint64_t r = begin; r < end; ++r, out += cols) {
            const uint64_t local = r % per_source;
            t.quantized[static_cast<size_t>(r / per_source)]->decode(t.permute_heads ? permuted_row(local, per_source, t.permute_heads) : local, 1, out);
        }
        return;
    }
    const uint64_t per_source = t.source->elements() / cols, in_bytes = cols * (dtype_bits(t.source->dtype) / 8);
    for (uint64_t r = begin; r < end; ++r, out += cols) {
        const SafeTensor& source = t.sources.empty() ? *t.source : *t.sources[static_cast<size_t>(r / per_source)];
        const uint64_t local = r % per_source;
        kernels::dequantize(source_type(t.source->dtype),
                            source.data.subspan((t.permute_heads ? permuted_row(local, per_source, t.permute_heads) : local) * in_bytes, in_bytes),
                            std::span<float>(out, static_cast<size_t>(cols)));
    }
}

std::vector<std::filesystem::path> write(const Plan& plan, const std::filesystem::path& out, const std::function<void(size_t, size_t)>& progress,
                                         int threads, gguf::SplitLimits split, std::vector<ImportError>* import_errors) {
    const bool one_file = !split.max_bytes && !split.max_tensors;
    std::vector<uint64_t> sizes;
    for (const TensorPlan& t : plan.tensors)
        sizes.push_back(t.rows() * static_cast<uint64_t>(quant::row_bytes(t.type, static_cast<int64_t>(t.shape[0]))));
    const std::vector<uint32_t> per_part = one_file ? std::vector<uint32_t>{static_cast<uint32_t>(sizes.size())} : gguf::plan_split(sizes, split);
    std::vector<gguf::Writer> parts(per_part.size());
    for (const auto& [key, value] : plan.keys) parts[0].set(key, value);
    size_t done = 0, part = 0, in_part = 0;
    if (import_errors) {
        import_errors->clear();  // reserved: the writer's callbacks hold pointers into it
        import_errors->reserve(static_cast<size_t>(std::count_if(plan.tensors.begin(), plan.tensors.end(), [](const TensorPlan& t) { return !t.quantized.empty(); })));
    }
    for (const TensorPlan& t : plan.tensors) {
        if (import_errors && !t.quantized.empty())
            import_errors->push_back({t.name, t.quantized[0]->kind(), t.type, t.exact_blocks});
        ImportError* report = import_errors && !t.quantized.empty() ? &import_errors->back() : nullptr;
        while (in_part == per_part[part]) ++part, in_part = 0;
        ++in_part;
        const uint64_t cols = t.shape[0], rows = t.rows();
        const auto row_bytes = static_cast<uint64_t>(quant::row_bytes(t.type, static_cast<int64_t>(cols)));
        parts[part].add_tensor(t.name, t.type, t.shape, [&t, &progress, &done, threads, rows, row_bytes, report, total = plan.tensors.size(),
                                                         effort = plan.effort](gguf::ByteSink& sink) {
            try {
                std::vector<kernels::ErrorStats> errors(report ? static_cast<size_t>(rows) : 0);
                stream_tensor(t, rows, row_bytes, threads, sink, report ? errors.data() : nullptr, effort);
                // The checkpoint's pages of this tensor are not needed again.
                for (const auto& q : t.quantized)
                    for (const SafeTensor* piece : q->parts()) release_pages(piece->data);
                if (t.quantized.empty() && t.source)
                    for (const SafeTensor* s : t.sources.empty() ? std::vector<const SafeTensor*>{t.source} : t.sources) release_pages(s->data);
                if (report) {
                    kernels::ErrorStats sum;
                    for (const kernels::ErrorStats& e : errors) sum.merge(e);  // in row order: the same figures whatever the threads
                    report->values = sum.values;
                    report->rmse = sum.rmse();
                    report->max_abs = sum.max_abs_error;
                    report->rms = sum.values ? std::sqrt(sum.sum_sq_signal / static_cast<double>(sum.values)) : 0;
                }
            } catch (const std::exception& e) {
                // Name the tensor and where it comes from (a NaN in the checkpoint, a bad importance vector).
                throw std::runtime_error(fmt::format("{}: tensor {}: {}", t.source ? t.source->file->string() : "(computed)",
                                                     t.source ? t.source->name : t.name, e.what()));
            }
            if (progress) progress(++done, total);
        });
    }
    if (one_file) {
        parts[0].write(out);
        return {out};
    }
    return gguf::write_split_set(parts, out);
}

}  // namespace convert
