#include "gguf/arch.h"

#include <fmt/format.h>

#include <array>

#include "gguf/model.h"
#include "gguf/names.h"

namespace gguf {

namespace {

using R = TensorRole;

// llama.cpp's tensor names (its LLM_TENSOR names), the same in every architecture.
constexpr TensorKind kKinds[] = {
    {R::TokenEmbd, "token_embd", false, false},
    {R::TokenEmbdNorm, "token_embd_norm", false, true},
    {R::PositionEmbd, "position_embd", false, true},
    {R::TokenTypes, "token_types", false, true},
    {R::OutputNorm, "output_norm", false, true},
    {R::Output, "output", false, false},
    {R::RopeFreqs, "rope_freqs", false, true},
    {R::AttnNorm, "attn_norm", true, true},
    {R::AttnNorm2, "attn_norm_2", true, true},
    {R::AttnQ, "attn_q", true, false},
    {R::AttnK, "attn_k", true, false},
    {R::AttnV, "attn_v", true, false},
    {R::AttnQKV, "attn_qkv", true, false},
    {R::AttnOutput, "attn_output", true, false},
    {R::AttnQNorm, "attn_q_norm", true, true},
    {R::AttnKNorm, "attn_k_norm", true, true},
    {R::AttnPostNorm, "post_attention_norm", true, true},
    {R::AttnSinks, "attn_sinks", true, true},
    {R::AttnQA, "attn_q_a", true, false},
    {R::AttnQB, "attn_q_b", true, false},
    {R::AttnQANorm, "attn_q_a_norm", true, true},
    {R::AttnKvAMqa, "attn_kv_a_mqa", true, false},
    {R::AttnKvANorm, "attn_kv_a_norm", true, true},
    {R::AttnKvB, "attn_kv_b", true, false},
    {R::AttnKB, "attn_k_b", true, false},
    {R::AttnVB, "attn_v_b", true, false},
    {R::FfnNorm, "ffn_norm", true, true},
    {R::FfnPostNorm, "post_ffw_norm", true, true},
    {R::FfnGate, "ffn_gate", true, false},
    {R::FfnUp, "ffn_up", true, false},
    {R::FfnDown, "ffn_down", true, false},
    {R::FfnGateInp, "ffn_gate_inp", true, true},
    {R::FfnGateExps, "ffn_gate_exps", true, false},
    {R::FfnUpExps, "ffn_up_exps", true, false},
    {R::FfnDownExps, "ffn_down_exps", true, false},
    {R::ExpProbsB, "exp_probs_b", true, true},
    {R::FfnGateShexp, "ffn_gate_shexp", true, false},
    {R::FfnUpShexp, "ffn_up_shexp", true, false},
    {R::FfnDownShexp, "ffn_down_shexp", true, false},
    {R::FfnGateInpShexp, "ffn_gate_inp_shexp", true, true},
};

constexpr bool kinds_in_role_order() {
    for (size_t i = 0; i < std::size(kKinds); ++i)
        if (static_cast<size_t>(kKinds[i].role) != i) return false;
    return true;
}
static_assert(kinds_in_role_order(), "the tensor kind table is indexed by role");
static_assert(std::size(kKinds) == static_cast<size_t>(TensorRole::FfnGateInpShexp) + 1, "one row per role");

using H = Hyper;
constexpr std::string_view kHyperSuffix[] = {
    "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon", "attention.key_length",
    "attention.value_length", "rope.dimension_count", "rope.freq_base", "expert_count", "expert_used_count",
    "expert_feed_forward_length", "expert_shared_count", "vocab_size",
};
static_assert(std::size(kHyperSuffix) == static_cast<size_t>(Hyper::VocabSize) + 1, "one suffix per Hyper");

// Keys llama.cpp's loader reads without a default: the three every model states, and the
// architecture's normalization epsilon.
constexpr Hyper kRms[] = {H::ContextLength, H::EmbeddingLength, H::BlockCount, H::LayerNormRmsEpsilon};
constexpr Hyper kLayerNorm[] = {H::ContextLength, H::EmbeddingLength, H::BlockCount, H::LayerNormEpsilon};

// What each architecture's models hold (biases aside), as llama.cpp's loader names them.
constexpr TensorRole kLlama[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::RopeFreqs, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV,
                                 R::AttnOutput, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown,
                                 // Mixtral and other MoE models of the llama architecture:
                                 R::FfnGateInp, R::FfnGateExps, R::FfnUpExps, R::FfnDownExps};
constexpr TensorRole kQwen2[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV,
                                 R::AttnOutput, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown};
constexpr TensorRole kQwen3[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput,
                                 R::AttnQNorm, R::AttnKNorm, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown};
constexpr TensorRole kQwen2Moe[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput,
                                    R::FfnNorm, R::FfnGateInp, R::FfnGateExps, R::FfnUpExps, R::FfnDownExps, R::FfnGateInpShexp,
                                    R::FfnGateShexp, R::FfnUpShexp, R::FfnDownShexp};
constexpr TensorRole kQwen3Moe[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput,
                                    R::AttnQNorm, R::AttnKNorm, R::FfnNorm, R::FfnGateInp, R::FfnGateExps, R::FfnUpExps, R::FfnDownExps};
constexpr TensorRole kGemma[] = {R::TokenEmbd, R::OutputNorm, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV,
                                 R::AttnOutput, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown};
constexpr TensorRole kGemma2[] = {R::TokenEmbd, R::OutputNorm, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput,
                                  R::AttnPostNorm, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown, R::FfnPostNorm};
constexpr TensorRole kGemma3[] = {R::TokenEmbd, R::OutputNorm, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput, R::AttnQNorm,
                                  R::AttnKNorm, R::AttnPostNorm, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown, R::FfnPostNorm};
constexpr TensorRole kPhi3[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQKV, R::AttnQ, R::AttnK, R::AttnV,
                                R::AttnOutput, R::FfnNorm, R::FfnUp, R::FfnDown};
constexpr TensorRole kFalcon[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnNorm2, R::AttnQKV,
                                  R::AttnOutput, R::FfnUp, R::FfnDown};
constexpr TensorRole kGpt2[] = {R::TokenEmbd, R::PositionEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQKV,
                                R::AttnOutput, R::FfnNorm, R::FfnUp, R::FfnDown};
constexpr TensorRole kDeepseek2[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnQA, R::AttnQB,
                                     R::AttnQANorm, R::AttnKvAMqa, R::AttnKvANorm, R::AttnKvB, R::AttnKB, R::AttnVB,
                                     R::AttnOutput, R::FfnNorm, R::FfnGate, R::FfnUp, R::FfnDown, R::FfnGateInp,
                                     R::FfnGateExps, R::FfnUpExps, R::FfnDownExps, R::FfnGateShexp, R::FfnUpShexp,
                                     R::FfnDownShexp, R::ExpProbsB};
constexpr TensorRole kOlmoe[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnQ, R::AttnK, R::AttnV, R::AttnOutput,
                                 R::AttnQNorm, R::AttnKNorm, R::FfnNorm, R::FfnGateInp, R::FfnGateExps, R::FfnUpExps, R::FfnDownExps};
constexpr TensorRole kGptOss[] = {R::TokenEmbd, R::OutputNorm, R::Output, R::AttnNorm, R::AttnPostNorm, R::AttnQ, R::AttnK,
                                  R::AttnV, R::AttnOutput, R::AttnSinks, R::FfnGateInp, R::FfnGateExps, R::FfnUpExps,
                                  R::FfnDownExps};

// Architectures described here only by how they keep context (gguf mem); their tensors are
// not listed, so checks hold them only to the keys every model states.
constexpr Hyper kCommon[] = {H::ContextLength, H::EmbeddingLength, H::BlockCount};
using S = LayerState;
using F = StateFormula;

// Mistral's and Mixtral's models are written with the llama architecture.
constexpr Architecture kArchitectures[] = {
    {"llama", kRms, kLlama},
    {"qwen2", kRms, kQwen2},
    {"qwen3", kRms, kQwen3},
    {"qwen2moe", kRms, kQwen2Moe, false, false, true},
    {"qwen3moe", kRms, kQwen3Moe, false, false, true},
    {"gemma", kRms, kGemma},
    {"gemma2", kRms, kGemma2, false, false, false, 2, 4096},
    {"gemma3", kRms, kGemma3, false, false, false, 6},
    {"phi3", kRms, kPhi3, true},  // llama.cpp reads its sliding_window and does not slide
    {"falcon", kLayerNorm, kFalcon, true},
    {"gpt2", kLayerNorm, kGpt2, true},
    {"deepseek2", kRms, kDeepseek2, false, true, true},
    {"olmoe", kRms, kOlmoe, false, false, true},
    {"gpt-oss", kRms, kGptOss, false, false, true, 2},
    {"cohere2", kLayerNorm, {}, false, false, false, 4},
    {"llama4", kRms, {}, false, false, true, 4, 8192},  // chunked attention: 8192-token chunks, cached as a window
    {"exaone4", kRms, {}, false, false, false, 4, 4096, 64},
    {"mamba", kCommon, {}, false, false, false, 0, 0, 0, S::Recurrent, F::Ssm},
    {"mamba2", kCommon, {}, false, false, false, 0, 0, 0, S::Recurrent, F::Ssm},
    {"rwkv6", kCommon, {}, false, false, false, 0, 0, 0, S::Recurrent, F::Rwkv},
    {"rwkv7", kCommon, {}, false, false, false, 0, 0, 0, S::Recurrent, F::Rwkv},
    {"jamba", kCommon, {}, false, false, true, 0, 0, 0, S::HybridByKvHeads, F::Ssm},
    {"granitehybrid", kCommon, {}, false, false, true, 0, 0, 0, S::HybridByKvHeads, F::Ssm},
    {"plamo2", kCommon, {}, false, false, false, 0, 0, 0, S::HybridByKvHeads, F::Ssm},
    {"lfm2", kCommon, {}, false, false, false, 0, 0, 0, S::HybridByKvHeads, F::ShortConv},
    {"lfm2moe", kCommon, {}, false, false, true, 0, 0, 0, S::HybridByKvHeads, F::ShortConv},
    {"nemotron_h", kCommon, {}, false, false, false, 0, 0, 0, S::HybridNemotron, F::Ssm},
    {"falcon-h1", kCommon, {}, false, false, false, 0, 0, 0, S::HybridBoth, F::Ssm},
    {"qwen3next", kCommon, {}, false, false, true, 0, 0, 0, S::HybridEveryFourth, F::Ssm},
};

}  // namespace

std::span<const TensorKind> all_tensor_kinds() { return kKinds; }
const TensorKind* find_tensor_kind(TensorRole role) { return &kKinds[static_cast<size_t>(role)]; }

std::optional<TensorName> parse_tensor_name(std::string_view name) {
    const std::optional<uint32_t> layer = layer_of(name);
    if (name.starts_with("blk.") && !layer) return std::nullopt;
    const std::string_view tail = layer ? name.substr(name.find('.', 4) + 1) : name;
    const size_t dot = tail.rfind('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::string_view stem = tail.substr(0, dot), suffix = tail.substr(dot + 1);
    for (const TensorKind& k : kKinds)
        if (k.stem == stem && k.per_layer == layer.has_value()) return TensorName{&k, layer, suffix};
    return std::nullopt;
}

std::string tensor_name(TensorRole role, std::optional<uint32_t> layer, std::string_view suffix) {
    const TensorKind& k = *find_tensor_kind(role);
    return k.per_layer ? fmt::format("blk.{}.{}.{}", layer.value_or(0), k.stem, suffix) : fmt::format("{}.{}", k.stem, suffix);
}

std::string_view hyper_suffix(Hyper h) { return kHyperSuffix[static_cast<size_t>(h)]; }
std::string hyper_key(std::string_view arch, Hyper h) { return fmt::format("{}.{}", arch, hyper_suffix(h)); }

std::span<const Architecture> all_architectures() { return kArchitectures; }

const Architecture* find_architecture(std::string_view name) {
    for (const Architecture& a : kArchitectures)
        if (a.name == name) return &a;
    return nullptr;
}

Hyperparameters read_hyperparameters(const Model& m) {
    Hyperparameters h;
    if (const KeyValue* a = m.find("general.architecture"); a && a->value.type() == ValueType::String) h.arch = a->value.str();
    h.architecture = find_architecture(h.arch);
    // A u32-range integer, or an array's first such element; 0 otherwise.
    auto u32 = [&](Hyper key) -> uint32_t {
        const KeyValue* kv = m.find(hyper_key(h.arch, key));
        if (!kv) return 0;
        Value v = kv->value;
        if (v.type() == ValueType::Array) {
            if (v.array().empty()) return 0;
            v = *v.array().begin();
        }
        if (!v.is_integer()) return 0;
        if (v.type() == ValueType::U64) return v.u64() <= UINT32_MAX ? static_cast<uint32_t>(v.u64()) : 0;  // as_int would throw
        return v.as_int() >= 0 && v.as_int() <= UINT32_MAX ? static_cast<uint32_t>(v.as_int()) : 0;
    };
    h.n_layer = u32(H::BlockCount);
    h.n_embd = u32(H::EmbeddingLength);
    h.n_ff = u32(H::FeedForwardLength);
    h.n_ctx = u32(H::ContextLength);
    h.n_head = u32(H::HeadCount);
    h.n_head_kv = m.find(hyper_key(h.arch, H::HeadCountKv)) ? u32(H::HeadCountKv) : h.n_head;
    h.n_expert = u32(H::ExpertCount);
    h.n_expert_used = u32(H::ExpertUsedCount);
    return h;
}

}  // namespace gguf
