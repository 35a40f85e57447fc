// The architecture table: what llama.cpp's loader expects of a model of each architecture
// (general.architecture): its hyperparameter keys, its tensor names and what each tensor is.
//
// Tensor names follow llama.cpp's scheme: global tensors ("token_embd", "output_norm",
// "output") and per-layer tensors "blk.N.<stem>", each followed by ".weight" or ".bias".
// The stems mean the same in every architecture ("attn_q" is always the query projection),
// so a tensor's role is known from its name alone; what an architecture adds is which
// tensors it has, which keys it needs, and its quirks.
//
// Adding an architecture is adding one entry to the table in arch.cpp (and, for a new kind
// of tensor, one row of the tensor table).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace gguf {

class Model;

// What a tensor is, whatever the architecture.
enum class TensorRole : uint8_t {
    TokenEmbd, TokenEmbdNorm, PositionEmbd, TokenTypes, OutputNorm, Output, RopeFreqs,
    AttnNorm, AttnNorm2, AttnQ, AttnK, AttnV, AttnQKV, AttnOutput, AttnQNorm, AttnKNorm, AttnPostNorm, AttnSinks,
    AttnQA, AttnQB, AttnQANorm, AttnKvAMqa, AttnKvANorm, AttnKvB, AttnKB, AttnVB,  // multi-head latent attention
    FfnNorm, FfnPostNorm, FfnGate, FfnUp, FfnDown,
    FfnGateInp, FfnGateExps, FfnUpExps, FfnDownExps, ExpProbsB,  // mixture of experts: router and experts
    FfnGateShexp, FfnUpShexp, FfnDownShexp, FfnGateInpShexp,     // shared experts
};

struct TensorKind {
    TensorRole role;
    std::string_view stem;  // "attn_q": the name is "blk.N.attn_q.weight" (per layer) or "output.weight"
    bool per_layer;
    bool kept;              // llama.cpp never quantizes it: norms, routers, position tables, rope factors
};

// Every kind of tensor the table knows, by stem.
std::span<const TensorKind> all_tensor_kinds();
const TensorKind* find_tensor_kind(TensorRole role);

// A tensor name taken apart: its kind, its layer (per-layer tensors), and its suffix
// ("weight", "bias"). nullopt for names outside the scheme.
struct TensorName {
    const TensorKind* kind;
    std::optional<uint32_t> layer;
    std::string_view suffix;
};
std::optional<TensorName> parse_tensor_name(std::string_view name);
// "blk.3.attn_q.weight" for (AttnQ, 3); "output.weight" for (Output).
std::string tensor_name(TensorRole role, std::optional<uint32_t> layer = std::nullopt, std::string_view suffix = "weight");

// Hyperparameter keys, as the suffix after "<arch>.".
enum class Hyper : uint8_t {
    ContextLength, EmbeddingLength, BlockCount, FeedForwardLength, HeadCount, HeadCountKv,
    LayerNormEpsilon, LayerNormRmsEpsilon, KeyLength, ValueLength, RopeDimensionCount, RopeFreqBase,
    ExpertCount, ExpertUsedCount, ExpertFeedForwardLength, ExpertSharedCount, VocabSize,
};
std::string_view hyper_suffix(Hyper h);                   // "attention.head_count"
std::string hyper_key(std::string_view arch, Hyper h);    // "llama.attention.head_count"

// What a layer keeps from token to token (the memory a runtime sets aside for context).
enum class LayerState : uint8_t {
    Attention,          // every layer: a KV cache
    Recurrent,          // every layer: a fixed-size recurrent state (Mamba, RWKV), no KV cache
    HybridByKvHeads,    // layers whose head_count_kv entry is 0 are recurrent, the rest attend (Jamba, Granite 4, LFM2)
    HybridNemotron,     // head_count_kv 0 and feed_forward_length 0: recurrent; head_count_kv 0 alone: MLP only, no state
    HybridBoth,         // every layer both attends and keeps a recurrent state (Falcon-H1)
    HybridEveryFourth,  // layers i with (i + 1) % 4 != 0 are recurrent (Qwen3-Next)
};
// The recurrent state's sizes per layer, by the keys each family writes.
enum class StateFormula : uint8_t {
    None,
    Ssm,        // conv: (ssm.conv_kernel - 1) x (ssm.inner_size + 2 ssm.group_count ssm.state_size); scan: ssm.state_size x ssm.inner_size
    Rwkv,       // token shift: token_shift_count x embedding_length; wkv: embedding_length x wkv.head_size
    ShortConv,  // shortconv.l_cache - 1 values of embedding_length, no scan state (LFM2)
};

struct Architecture {
    std::string_view name;                       // general.architecture, e.g. "llama"
    std::span<const Hyper> required_keys;        // llama.cpp refuses to load the model without them
    std::span<const TensorRole> tensors;         // what a model of it may hold (biases aside); empty: not described
    bool fused_qkv = false;                      // attention as one attn_qkv tensor
    bool latent_attention = false;               // DeepSeek's MLA: q/kv through low-rank tensors
    bool experts = false;                        // a mixture-of-experts architecture
    // Sliding-window attention: layer i slides when i % swa_period < swa_period - 1 (the last
    // layer of each period attends to everything); 0 when no layer slides.
    // attention.sliding_window (the window) and attention.sliding_window_pattern (a period,
    // or one bool per layer) in the file take precedence.
    uint8_t swa_period = 0;
    uint32_t swa_window = 0;                     // the window when the file does not state it (0: the file must)
    uint32_t swa_only_with_layers = 0;           // sliding only in models of this many layers (EXAONE 4's 32B); 0: always
    LayerState state = LayerState::Attention;
    StateFormula state_formula = StateFormula::None;
};

// Every architecture in the table, and lookup by general.architecture.
std::span<const Architecture> all_architectures();
const Architecture* find_architecture(std::string_view name);

// The hyperparameters a model's metadata states, read one way for every consumer (quant
// rules, checks, the forward pass). Per-layer arrays (head counts, feed-forward lengths)
// read as their first element, as llama.cpp's n_gqa() and friends do; 0 where absent.
struct Hyperparameters {
    std::string arch;
    const Architecture* architecture = nullptr;  // nullptr for an architecture not in the table
    uint32_t n_layer = 0, n_embd = 0, n_ff = 0, n_ctx = 0;
    uint32_t n_head = 0, n_head_kv = 0;          // head_count_kv defaults to head_count
    uint32_t n_expert = 0, n_expert_used = 0;
    uint32_t n_gqa() const { return n_head_kv ? n_head / n_head_kv : 0; }
};
Hyperparameters read_hyperparameters(const Model& m);

}  // namespace gguf
