#include "gguf/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "gguf/arch.h"
#include "gguf/error.h"
#include "gguf/names.h"

namespace gguf {

namespace {

constexpr uint64_t pad_to(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// The architecture's keys, per layer where the file gives an array.
class Keys {
public:
    Keys(const Model& m, std::string arch) : m_(m), arch_(std::move(arch)) {}

    const KeyValue* find(std::string_view suffix) const { return m_.find(fmt::format("{}.{}", arch_, suffix)); }

    [[noreturn]] void fail(const KeyValue& kv, const std::string& what) const {
        throw Error(m_.first().path(), kv.file_offset, fmt::format("{}: {}", kv.key, what));
    }

    // A non-negative integer that fits llama.cpp's 32 bits.
    uint64_t integer(const KeyValue& kv, Value v) const {
        if (!v.is_integer()) fail(kv, "is not an integer");
        if (v.type() == ValueType::U64 ? v.u64() > UINT32_MAX : v.as_int() < 0 || v.as_int() > int64_t{UINT32_MAX})
            fail(kv, "is not an integer from 0 to 4294967295 (llama.cpp reads it as 32 bits)");
        return v.type() == ValueType::U64 ? v.u64() : static_cast<uint64_t>(v.as_int());
    }

    // A scalar integer key; `fallback` when absent.
    uint64_t scalar(std::string_view suffix, uint64_t fallback = 0) const {
        const KeyValue* kv = find(suffix);
        if (!kv) return fallback;
        if (kv->value.type() == ValueType::Array) {
            if (kv->value.array().empty()) fail(*kv, "is an empty array");
            return integer(*kv, kv->value.array().at(0));
        }
        return integer(*kv, kv->value);
    }

    // A per-layer value: the array's element `layer` (the array must have one per block), or
    // the scalar, or `fallback`.
    uint64_t at(std::string_view suffix, uint32_t layer, uint32_t n_layer, uint64_t fallback = 0) const {
        const KeyValue* kv = find(suffix);
        if (!kv) return fallback;
        if (kv->value.type() != ValueType::Array) return integer(*kv, kv->value);
        const ArrayView a = kv->value.array();
        if (a.size() != n_layer) fail(*kv, fmt::format("has {} elements for {} blocks", a.size(), n_layer));
        if (a.element_type() == ValueType::String || a.element_type() == ValueType::Array) fail(*kv, "is not an array of integers");
        return integer(*kv, a.at(layer));
    }

    const std::string& arch() const { return arch_; }
    [[noreturn]] void missing(const std::string& what) const { throw Error(m_.first().path(), std::nullopt, what); }

private:
    const Model& m_;
    std::string arch_;
};

// Which blocks slide, and the window.
struct Sliding {
    std::vector<bool> layers;
    uint32_t window = 0;
};

Sliding sliding_layers(const Keys& k, const Architecture* a, uint32_t n_layer) {
    Sliding s;
    s.layers.assign(n_layer, false);
    const KeyValue* pattern = k.find("attention.sliding_window_pattern");
    uint64_t period = a ? a->swa_period : 0;
    if (a && a->swa_only_with_layers && a->swa_only_with_layers != n_layer) period = 0;
    if (pattern && pattern->value.type() == ValueType::Array) {
        const ArrayView v = pattern->value.array();
        if (v.size() != n_layer) k.fail(*pattern, fmt::format("has {} elements for {} blocks", v.size(), n_layer));
        if (v.element_type() != ValueType::Bool) k.fail(*pattern, "is an array but not of bools (true: the layer slides)");
        for (uint32_t i = 0; i < n_layer; ++i) s.layers[i] = v.at(i).boolean();
    } else {
        if (pattern) period = k.integer(*pattern, pattern->value);
        for (uint32_t i = 0; i < n_layer && period > 1; ++i) s.layers[i] = i % period < period - 1;
    }
    if (std::none_of(s.layers.begin(), s.layers.end(), [](bool b) { return b; })) return s;
    const KeyValue* window = k.find("attention.sliding_window");
    s.window = static_cast<uint32_t>(window ? k.integer(*window, window->value) : a ? a->swa_window : 0);
    if (s.window == 0) {
        if (window) {  // a window of 0: no layer slides (llama.cpp reads it so)
            s.layers.assign(n_layer, false);
            return s;
        }
        k.missing(fmt::format("{}.attention.sliding_window is missing: the model has sliding-window layers", k.arch()));
    }
    return s;
}

// Which blocks keep a recurrent state, which attend.
void layer_kinds(const Keys& k, const Architecture* a, uint32_t n_layer, std::vector<LayerMemory>& layers) {
    const LayerState st = a ? a->state : LayerState::Attention;
    for (uint32_t i = 0; i < n_layer; ++i) {
        const uint64_t heads = k.at("attention.head_count", i, n_layer);  // head_count_kv defaults to it
        LayerCache c = LayerCache::Full;
        switch (st) {
            case LayerState::Attention: break;
            case LayerState::Recurrent: c = LayerCache::Recurrent; break;
            case LayerState::HybridByKvHeads: c = k.at("attention.head_count_kv", i, n_layer, heads) == 0 ? LayerCache::Recurrent : LayerCache::Full; break;
            case LayerState::HybridNemotron: {
                const bool no_kv = k.at("attention.head_count_kv", i, n_layer, heads) == 0;
                const bool no_ff = k.at("feed_forward_length", i, n_layer) == 0;
                c = no_kv ? (no_ff ? LayerCache::Recurrent : LayerCache::None) : (no_ff ? LayerCache::Full : LayerCache::None);
                break;
            }
            case LayerState::HybridBoth: c = LayerCache::Both; break;
            case LayerState::HybridEveryFourth: c = (i + 1) % 4 != 0 ? LayerCache::Recurrent : LayerCache::Full; break;
        }
        layers[i].cache = c;
    }
}

// The recurrent state's two parts for one sequence, in f32 values.
std::pair<uint64_t, uint64_t> state_values(const Keys& k, const Architecture* a, uint64_t n_embd) {
    switch (a ? a->state_formula : StateFormula::None) {
        case StateFormula::None: return {0, 0};
        case StateFormula::Ssm: {
            const uint64_t d_conv = k.scalar("ssm.conv_kernel"), d_inner = k.scalar("ssm.inner_size");
            const uint64_t d_state = k.scalar("ssm.state_size"), groups = k.scalar("ssm.group_count");
            return {(d_conv ? d_conv - 1 : 0) * (d_inner + 2 * groups * d_state), d_state * d_inner};
        }
        case StateFormula::Rwkv: return {k.scalar("token_shift_count", 2) * n_embd, n_embd * k.scalar("wkv.head_size")};
        case StateFormula::ShortConv: {
            const uint64_t l_cache = k.scalar("shortconv.l_cache");
            return {n_embd * (l_cache ? l_cache - 1 : 0), 0};
        }
    }
    return {0, 0};
}

uint32_t vocabulary_size(const Model& m, const Keys& k) {
    if (const KeyValue* t = m.find("tokenizer.ggml.tokens"); t && t->value.type() == ValueType::Array)
        return static_cast<uint32_t>(t->value.array().size());
    if (const uint64_t v = k.scalar("vocab_size")) return static_cast<uint32_t>(v);  // at most 32 bits (Keys::integer)
    if (const Model::Tensor* e = m.find_tensor("token_embd.weight"); e && e->info->shape[1] <= UINT32_MAX)
        return static_cast<uint32_t>(e->info->shape[1]);
    return 0;
}

// Whether ggml's CPU backend moves a weight to its repacked buffer: the types it interleaves
// for x86, a multiple of 8 rows, and a weight that is multiplied (a lookup table is not).
bool repacked(const TensorInfo& t, const MemoryOptions& o) {
    if (t.n_dims < 2 || t.shape[1] % 8 != 0) return false;
    if (is_token_embedding(t.name) || t.name == "position_embd.weight" || t.name == "token_types.weight") return false;
    switch (t.type) {
        case TypeId::Q4_0:
        case TypeId::Q4_K:
        case TypeId::IQ4_NL: return o.repack_avx2;
        case TypeId::Q2_K: return o.repack_avx512;
        default: return false;
    }
}

void weight_buffers(const Model& m, const MemoryOptions& o, uint32_t n_vocab, MemoryEstimate& e) {
    WeightBuffer repack{"CPU_REPACK", 0, 0, 0}, plain{"CPU", 0, 0, 0};
    std::vector<WeightBuffer> mapped;
    for (uint32_t p = 0; p < m.parts().size(); ++p) mapped.push_back({"CPU_Mapped", p + 1, 0, 0});
    std::vector<uint64_t> first(m.parts().size(), std::numeric_limits<uint64_t>::max()), last(m.parts().size(), 0);
    for (const Model::Tensor& t : m.tensors()) {
        const TensorInfo& i = *t.info;
        if (repacked(i, o)) {
            repack.bytes += pad_to(i.n_bytes, 32);
            repack.tensors++;
        } else if (o.mmap) {
            const uint64_t at = m.parts()[t.part].data_section_offset() + i.data_offset;
            first[t.part] = std::min(first[t.part], at);
            last[t.part] = std::max(last[t.part], at + i.n_bytes);
            mapped[t.part].tensors++;
        } else {
            plain.bytes += pad_to(i.n_bytes, 32);
            plain.tensors++;
        }
    }
    // A model without output.weight multiplies by the token embedding: llama.cpp makes the
    // output a second tensor over the same data, repacked on its own when its type allows.
    if (!m.find_tensor("output.weight"))
        if (const Model::Tensor* emb = m.find_tensor("token_embd.weight")) {
            TensorInfo out = *emb->info;
            out.name = "output.weight";
            if (n_vocab % 8 == 0 && repacked(out, o)) {
                repack.bytes += pad_to(out.n_bytes, 32);
                repack.tensors++;
                e.notes.push_back("the shared token embedding is also repacked as the output weight (a second copy)");
            }
        }
    for (size_t p = 0; p < mapped.size(); ++p)
        if (mapped[p].tensors) {
            mapped[p].bytes = last[p] - first[p];
            e.weights.push_back(mapped[p]);
        }
    if (plain.tensors) e.weights.push_back(plain);
    if (repack.tensors) e.weights.push_back(repack);
}

}  // namespace

uint32_t MemoryEstimate::layers_with(LayerCache c) const {
    return static_cast<uint32_t>(std::count_if(layers.begin(), layers.end(), [c](const LayerMemory& l) { return l.cache == c; }));
}

uint64_t MemoryEstimate::weight_bytes() const {
    uint64_t n = 0;
    for (const WeightBuffer& w : weights) n += w.bytes;
    return n;
}

MemoryEstimate estimate_memory(const Model& m, const MemoryOptions& o) {
    const Hyperparameters h = read_hyperparameters(m);
    const std::string& path = m.first().path();
    if (h.arch.empty()) throw Error(path, std::nullopt, "general.architecture is missing: not a model");
    const Keys k(m, h.arch);
    const Architecture* a = h.architecture;
    const KeyValue* blocks = k.find("block_count");
    if (!blocks) throw Error(path, std::nullopt, fmt::format("{}.block_count is missing", h.arch));
    const uint64_t blocks_value = k.integer(*blocks, blocks->value);
    if (blocks_value > 4096) k.fail(*blocks, fmt::format("is {}: more blocks than any runtime loads", blocks_value));
    const auto n_layer = static_cast<uint32_t>(blocks_value);
    if (o.n_seq == 0 || o.n_ubatch == 0 || o.n_batch == 0) throw std::invalid_argument("estimate_memory: n_seq, n_batch and n_ubatch must be positive");
    for (const TypeId t : {o.type_k, o.type_v})
        if (type_info(t).block_size == 0) throw std::invalid_argument("estimate_memory: a retired cache type");

    MemoryEstimate e;
    e.type_k = o.type_k;
    e.type_v = o.type_v;
    e.flash_attn = o.flash_attn;
    e.n_vocab = vocabulary_size(m, k);
    const uint64_t n_embd = h.n_embd;

    // The context: padded to 256 cells, split evenly between the sequences unless unified.
    uint64_t n_ctx = o.n_ctx ? o.n_ctx : h.n_ctx;
    if (n_ctx == 0) throw Error(path, std::nullopt, fmt::format("{}.context_length is missing and no context size was given", h.arch));
    n_ctx = pad_to(n_ctx, 256);
    e.n_stream = o.kv_unified ? 1 : o.n_seq;
    uint64_t n_ctx_seq = n_ctx;
    if (!o.kv_unified) {
        n_ctx_seq = pad_to(n_ctx / o.n_seq, 256);
        if (n_ctx_seq == 0)
            throw std::invalid_argument(fmt::format("{} sequences cannot share a context of {} cells: each would get none", o.n_seq, n_ctx));
        n_ctx = n_ctx_seq * o.n_seq;
    }
    if (n_ctx > std::numeric_limits<uint32_t>::max()) throw std::invalid_argument("estimate_memory: the context does not fit 32 bits");
    e.n_ctx = static_cast<uint32_t>(n_ctx);
    e.n_ctx_seq = static_cast<uint32_t>(n_ctx_seq);
    const uint64_t n_batch = std::min<uint64_t>(n_ctx, o.n_batch);  // a causal model
    const uint64_t n_ubatch = std::min<uint64_t>(n_batch, o.n_ubatch);
    e.n_tokens = static_cast<uint32_t>(pad_to(std::min<uint64_t>(n_ctx, n_ubatch), e.n_stream));

    weight_buffers(m, o, e.n_vocab, e);

    // The caches, layer by layer.
    e.layers.resize(n_layer);
    layer_kinds(k, a, n_layer, e.layers);
    const Sliding sliding = sliding_layers(k, a, n_layer);
    e.swa_window = sliding.window;
    e.kv_cells = e.n_ctx_seq;
    if (sliding.window) {
        const uint64_t want = uint64_t{sliding.window} * (o.kv_unified ? o.n_seq : 1) + n_ubatch;
        e.swa_cells = o.swa_full ? e.kv_cells : static_cast<uint32_t>(pad_to(std::min<uint64_t>(e.kv_cells, want), 256));
    }
    const uint64_t head_count = k.scalar("attention.head_count");
    // Multi-head latent attention (files that state key_length_mla): the cache holds the
    // compressed K (key_length: kv_lora_rank + the rotary part, one head), and the values are
    // read from it, so V takes nothing (llama.cpp since 2026). Older DeepSeek files cache
    // every head's K and V.
    const bool mla = a && a->latent_attention && k.find("attention.key_length_mla");
    const auto [r_values, s_values] = state_values(k, a, n_embd);
    e.rs_cells = std::max<uint32_t>(1, o.n_seq);
    uint64_t max_head_v = 0, max_embd_k = 0, max_embd_v = 0, max_heads = 0;
    for (uint32_t i = 0; i < n_layer; ++i) {
        LayerMemory& l = e.layers[i];
        if (l.cache == LayerCache::Full && sliding.layers[i]) l.cache = LayerCache::Sliding;
        if (l.cache == LayerCache::Recurrent || l.cache == LayerCache::Both) {
            l.r_bytes = r_values * 4 * e.rs_cells;
            l.s_bytes = s_values * 4 * e.rs_cells;
        }
        if (l.cache == LayerCache::Recurrent || l.cache == LayerCache::None) continue;
        const uint64_t heads = k.at("attention.head_count", i, n_layer, head_count);
        const uint64_t heads_kv = k.at("attention.head_count_kv", i, n_layer, heads);
        if (heads == 0) throw Error(path, std::nullopt, fmt::format("{}.attention.head_count is missing or 0 for block {}", h.arch, i));
        const uint64_t head_k = k.scalar("attention.key_length", n_embd / (head_count ? head_count : heads));
        const uint64_t head_v = k.scalar("attention.value_length", n_embd / (head_count ? head_count : heads));
        uint64_t embd_k = head_k * heads_kv, embd_v = head_v * heads_kv;
        if (mla) embd_v = 0;
        l.cells = l.cache == LayerCache::Sliding ? e.swa_cells : e.kv_cells;
        const uint64_t row_k = tensor_bytes(o.type_k, embd_k), row_v = tensor_bytes(o.type_v, embd_v);
        if (embd_k % type_info(o.type_k).block_size || embd_v % type_info(o.type_v).block_size)
            throw std::invalid_argument(fmt::format("block {}: a K row of {} or V row of {} values is not a whole number of {} / {} blocks", i,
                                                    embd_k, embd_v, type_info(o.type_k).name, type_info(o.type_v).name));
        l.k_bytes = row_k * l.cells * e.n_stream;
        l.v_bytes = row_v * l.cells * e.n_stream;
        e.kv_k += l.k_bytes;
        e.kv_v += l.v_bytes;
        if (l.cache == LayerCache::Sliding) e.swa_k += l.k_bytes, e.swa_v += l.v_bytes;
        max_head_v = std::max(max_head_v, head_v * heads);
        max_embd_k = std::max(max_embd_k, embd_k);
        max_embd_v = std::max(max_embd_v, embd_v);
        max_heads = std::max(max_heads, heads);
    }
    for (const LayerMemory& l : e.layers) e.rs_r += l.r_bytes, e.rs_s += l.s_bytes;

    // The output buffer: one row of logits (and of embeddings) per sequence, f32.
    e.output = (uint64_t{e.n_vocab} + (o.embeddings ? n_embd : 0)) * std::max<uint32_t>(1, o.n_seq) * 4;

    // The compute buffer, sized by llama.cpp for a batch of n_tokens tokens that all output
    // logits, against the whole cache. Estimated as the most that is alive at once at three
    // points of the graph (spec/memory.md): the logits, an attention, a feed-forward.
    const uint64_t t = e.n_tokens, f32 = 4;
    uint64_t masks = 0;
    for (const uint32_t cells : {e.kv_cells, e.swa_cells}) {
        if (!cells) continue;
        masks += uint64_t{cells} * t * (o.flash_attn ? 2 : f32);  // with flash attention an f16 copy stays, the f32 input goes
    }
    const uint64_t logits = uint64_t{e.n_vocab} * t * f32 + 2 * n_embd * t * f32;
    uint64_t attention = 0;
    if (max_heads) {
        const uint64_t q = max_heads * k.scalar("attention.key_length", n_embd / max_heads);
        const uint64_t scores = o.flash_attn ? max_head_v * t * f32 : uint64_t{e.kv_cells} * t * max_heads * f32;
        attention = masks + (2 * n_embd + q + max_embd_k + max_embd_v) * t * f32 + scores;
    }
    uint64_t ffn = 0;
    for (uint32_t i = 0; i < n_layer; ++i) {
        const uint64_t n_ff = k.at("feed_forward_length", i, n_layer);
        ffn = std::max(ffn, (2 * n_embd + 2 * n_ff) * t * f32);
    }
    if (h.n_expert) {
        const uint64_t n_ff_exp = k.scalar("expert_feed_forward_length", h.n_ff);
        const uint64_t used = std::max<uint64_t>(1, h.n_expert_used);
        ffn = std::max(ffn, (2 * n_embd + h.n_expert + 2 * n_ff_exp * used + n_embd * used) * t * f32);
    }
    e.compute = std::max({logits, attention, masks + ffn});

    if (e.layers_with(LayerCache::Recurrent) || e.layers_with(LayerCache::Both))
        e.notes.push_back("recurrent states are f32 whatever the cache types");
    if (mla) e.notes.push_back("multi-head latent attention: K holds kv_lora_rank + the rotary part, V is read from it");
    if (!o.flash_attn && o.type_v != TypeId::F16 && o.type_v != TypeId::F32 && o.type_v != TypeId::BF16)
        e.notes.push_back("llama.cpp needs flash attention for a quantized V cache");
    return e;
}

KvPerToken kv_per_token(const Model& m) {
    MemoryOptions o;
    o.n_ctx = 256;
    o.n_ubatch = 1;
    const MemoryEstimate e = estimate_memory(m, o);
    KvPerToken k;
    for (const LayerMemory& l : e.layers) {
        if (l.cache == LayerCache::Full || l.cache == LayerCache::Both) {
            k.full_bytes_per_token += (l.k_bytes + l.v_bytes) / e.kv_cells;
            k.full_layers++;
        } else if (l.cache == LayerCache::Sliding) {
            k.sliding_layers++;
        }
        if (l.cache == LayerCache::Recurrent || l.cache == LayerCache::Both) k.recurrent_layers++;
    }
    return k;
}

}  // namespace gguf
