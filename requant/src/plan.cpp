#include "requant/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include "gguf/names.h"

namespace gguf::requant {

namespace {

// The mixes the rules name: llama.cpp's file type ids (general.file_type), from libgguf's table.
using enum FileType;

using T = TypeId;


// ---------------------------------------------------------------------------------------
// llama.cpp's per-tensor rules, as a table. Each tensor has a role (from its name); the
// rules are tried top to bottom, and the first whose role, mix and conditions all match
// decides: a type, or kKeep (the base type stays). Rows past a tensor's first match are
// never consulted, which is how llama.cpp's if/else chain reads.
// ---------------------------------------------------------------------------------------

enum class Role { Output, TokenEmbd, AttnV, AttnK, AttnQ, AttnOutput, FfnDown, FfnGate, FfnUp, Other, Any };

enum class When {
    Always,
    RowNotWholeBase,  // the row length is not a multiple of the base type's block size
    BaseNotQ8_0,
    Falcon,
    NotFalcon,
    Gqa4,             // n_head / n_head_kv >= 4
    Gqa4OrExperts4,
    Experts8,         // exactly 8 experts
    Stacked,          // a 3-D tensor (experts stacked)
    Imatrix,
    NoImatrix,
    VFirst2,          // among the first 2 attn_v-like tensors
    VFirst4,
    VMoreBits,        // use_more_bits over the attn_v-like tensors
    DownFirstEighth,  // the ffn_down counter in the first eighth (IQ1/IQ2 mixes)
    LayerEighth,      // layer < n_layer / 8
    LayerSixteenth,   // layer < n_layer / 16
    LayerMoreBits,    // use_more_bits(layer, n_layer)
    LayerMiddle,      // n_layer / 8 <= layer < 7 n_layer / 8
};

constexpr TypeId kKeep = static_cast<TypeId>(0xffffffffu);

// A set of mixes, as a bit mask of their file type ids.
struct Mixes {
    uint64_t bits = 0;
    constexpr Mixes() = default;
    constexpr Mixes(std::initializer_list<FileType> ids) {
        for (FileType id : ids) bits |= uint64_t{1} << static_cast<uint32_t>(id);
    }
    constexpr bool has(uint32_t id) const { return id < 64 && (bits >> id & 1); }
    constexpr Mixes except(Mixes other) const {
        Mixes m;
        m.bits = bits & ~other.bits;
        return m;
    }
    static constexpr Mixes every() {
        Mixes m;
        m.bits = ~uint64_t{0};
        return m;
    }
};
static_assert(static_cast<uint32_t>(Q2_0) < 64, "file type ids must fit the mask");
// Every mix of the file type table (a target's file type always comes from it).
constexpr Mixes kAll = Mixes::every();
// The 1- and 2-bit i-quant mixes, which have rules of their own for every role.
constexpr Mixes kLowBit{IQ2_XXS, IQ2_XS, IQ1_S, IQ2_S, IQ2_M, IQ1_M};
// Every mix but those and MXFP4_MOE: the general rules.
constexpr Mixes kGeneral = kAll.except(kLowBit).except({MXFP4_MOE});

struct Rule {
    Role role;
    Mixes mixes;
    When a, b;  // both must hold
    TypeId type;
};

constexpr Rule kRules[] = {
    // The output matrix (and a token embedding it shares, when the model has no output.weight).
    {Role::Output, {MXFP4_MOE}, When::Always, When::Always, T::Q8_0},
    {Role::Output, kAll, When::Falcon, When::Always, T::Q8_0},
    {Role::Output, kAll, When::RowNotWholeBase, When::Always, T::Q8_0},
    {Role::Output, {IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ2_S, IQ2_M, IQ1_M}, When::Always, When::Always, T::Q5_K},
    {Role::Output, kAll, When::BaseNotQ8_0, When::Always, T::Q6_K},
    {Role::Output, kAll, When::Always, When::Always, kKeep},

    // MXFP4_MOE: stacked experts in mxfp4, everything else in q8_0.
    {Role::Any, {MXFP4_MOE}, When::Stacked, When::Always, T::MXFP4},
    {Role::Any, {MXFP4_MOE}, When::Always, When::Always, T::Q8_0},

    {Role::TokenEmbd, {IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M}, When::Always, When::Always, T::Q2_K},
    {Role::TokenEmbd, {IQ2_S, IQ2_M, IQ3_XXS}, When::Always, When::Always, T::IQ3_S},
    {Role::TokenEmbd, {TQ1_0, TQ2_0, Q2_0}, When::Always, When::Always, T::Q4_K},
    {Role::TokenEmbd, kAll, When::Always, When::Always, kKeep},

    // 1- and 2-bit i-quant mixes.
    {Role::AttnV, kLowBit, When::Gqa4OrExperts4, When::Always, T::Q4_K},
    {Role::AttnV, {IQ2_S, IQ2_M}, When::Always, When::Always, T::IQ3_S},
    {Role::AttnV, kLowBit, When::Always, When::Always, T::Q2_K},
    {Role::AttnK, kLowBit, When::Experts8, When::Always, T::Q4_K},
    {Role::FfnDown, {IQ2_S, IQ2_M}, When::DownFirstEighth, When::Always, T::IQ3_S},
    {Role::FfnDown, kLowBit, When::DownFirstEighth, When::Always, T::Q2_K},
    {Role::AttnOutput, kLowBit, When::Experts8, When::Always, T::Q5_K},
    {Role::AttnOutput, {IQ1_S, IQ1_M}, When::Always, When::Always, T::IQ2_XXS},
    {Role::AttnOutput, {IQ2_S, IQ2_M}, When::Always, When::Always, T::IQ3_S},
    {Role::Any, kLowBit, When::Always, When::Always, kKeep},

    // attn_v (and attn_qkv, attn_kv_b); see also kAfterV.
    {Role::AttnV, {Q2_K}, When::Gqa4, When::Always, T::Q4_K},
    {Role::AttnV, {Q2_K}, When::Always, When::Always, T::Q3_K},
    {Role::AttnV, {Q2_K_S}, When::Gqa4, When::Always, T::Q4_K},
    {Role::AttnV, {IQ3_XXS}, When::Gqa4, When::Always, T::Q4_K},
    {Role::AttnV, {IQ3_XXS}, When::NoImatrix, When::Always, T::IQ3_S},
    {Role::AttnV, {IQ3_XXS}, When::Always, When::Always, T::IQ3_XXS},
    {Role::AttnV, {IQ3_XS, IQ3_S}, When::Gqa4, When::Always, T::Q4_K},
    {Role::AttnV, {IQ3_M}, When::Always, When::Always, T::Q4_K},
    {Role::AttnV, {Q3_K_M}, When::VFirst2, When::Always, T::Q5_K},
    {Role::AttnV, {Q3_K_M}, When::Always, When::Always, T::Q4_K},
    {Role::AttnV, {Q3_K_L}, When::Always, When::Always, T::Q5_K},
    {Role::AttnV, {IQ4_NL, IQ4_XS}, When::Gqa4, When::Always, T::Q5_K},
    {Role::AttnV, {Q4_K_M, Q5_K_M}, When::VMoreBits, When::Always, T::Q6_K},
    {Role::AttnV, {Q4_K_S}, When::VFirst4, When::Always, T::Q5_K},

    {Role::AttnK, kGeneral, When::Experts8, When::Always, T::Q8_0},
    {Role::AttnK, {IQ3_XS}, When::Always, When::Always, T::IQ3_XXS},
    {Role::AttnK, {IQ3_XXS}, When::Always, When::Always, T::IQ2_S},
    {Role::AttnQ, {IQ3_XS}, When::Always, When::Always, T::IQ3_XXS},
    {Role::AttnQ, {IQ3_XXS}, When::Always, When::Always, T::IQ2_S},

    // ffn_down, by layer.
    {Role::FfnDown, {Q2_K}, When::Always, When::Always, T::Q3_K},
    {Role::FfnDown, {Q2_K_S}, When::LayerEighth, When::Always, T::Q4_K},
    {Role::FfnDown, {IQ3_XXS}, When::NoImatrix, When::LayerEighth, T::Q4_K},
    {Role::FfnDown, {IQ3_XXS}, When::NoImatrix, When::Always, T::Q3_K},
    {Role::FfnDown, {Q3_K_M}, When::LayerSixteenth, When::Always, T::Q5_K},
    {Role::FfnDown, {Q3_K_M}, When::NotFalcon, When::Always, T::Q4_K},
    {Role::FfnDown, {Q3_K_M}, When::LayerMoreBits, When::Always, T::Q4_K},
    {Role::FfnDown, {Q3_K_M}, When::Always, When::Always, T::Q3_K},
    {Role::FfnDown, {IQ3_M}, When::LayerEighth, When::Always, T::Q4_K},
    {Role::FfnDown, {IQ3_M}, When::Experts8, When::LayerMoreBits, T::Q4_K},
    {Role::FfnDown, {Q3_K_L}, When::Falcon, When::Always, T::Q4_K},
    {Role::FfnDown, {Q3_K_L}, When::Always, When::Always, T::Q5_K},
    {Role::FfnDown, {Q4_K_M}, When::Falcon, When::LayerSixteenth, T::Q6_K},
    {Role::FfnDown, {Q4_K_M}, When::Falcon, When::LayerMoreBits, T::Q5_K},
    {Role::FfnDown, {Q4_K_M}, When::Falcon, When::Always, T::Q4_K},
    {Role::FfnDown, {Q4_K_M}, When::LayerMoreBits, When::Always, T::Q6_K},
    {Role::FfnDown, {Q4_K_M}, When::Always, When::Always, kKeep},
    {Role::FfnDown, {IQ4_NL, IQ4_XS}, When::LayerEighth, When::NoImatrix, T::Q5_K},
    {Role::FfnDown, {Q5_K_M}, When::LayerMoreBits, When::Always, T::Q6_K},
    {Role::FfnDown, {Q4_K_S}, When::NotFalcon, When::LayerEighth, T::Q5_K},
    {Role::FfnDown, {Q4_0}, When::Imatrix, When::LayerEighth, T::Q4_1},
    {Role::FfnDown, {Q5_0}, When::Imatrix, When::LayerEighth, T::Q5_1},

    // attn_output.
    {Role::AttnOutput, {Q2_K, IQ3_XS, IQ3_XXS, Q3_K_S, Q3_K_M, IQ4_NL, Q4_K_S, Q4_K_M, IQ3_S, IQ3_M, IQ4_XS},
     When::NotFalcon, When::Experts8, T::Q5_K},
    {Role::AttnOutput, kAll, When::NotFalcon, When::Experts8, kKeep},
    {Role::AttnOutput, {Q2_K}, When::NotFalcon, When::Always, T::Q3_K},
    {Role::AttnOutput, {IQ3_XXS}, When::NotFalcon, When::Always, T::IQ3_S},
    {Role::AttnOutput, {Q3_K_M, IQ3_M}, When::NotFalcon, When::Always, T::Q4_K},
    {Role::AttnOutput, {Q3_K_L}, When::Falcon, When::Always, T::Q4_K},
    {Role::AttnOutput, {Q3_K_L}, When::Always, When::Always, T::Q5_K},

    // ffn_gate and ffn_up in IQ3_XS: the middle layers in iq3_xxs.
    {Role::FfnGate, {IQ3_XS}, When::LayerMiddle, When::Always, T::IQ3_XXS},
    {Role::FfnUp, {IQ3_XS}, When::LayerMiddle, When::Always, T::IQ3_XXS},
};

// llama.cpp's special case for a 70B llama (80 layers, grouped-query attention).
bool is_70b(const Hyperparameters& h) { return h.arch == "llama" && h.n_layer == 80 && h.n_head != h.n_head_kv; }

bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// A tensor's role in the rules: from the architecture table for names in llama.cpp's
// scheme, else by the substrings llama.cpp's quantizer looks for (other naming schemes).
Role role_of(std::string_view name, bool tied) {
    if (name == "output.weight") return Role::Output;
    if (is_token_embedding(name)) return tied ? Role::Output : Role::TokenEmbd;
    if (const std::optional<TensorName> t = parse_tensor_name(name); t && t->suffix == "weight") {
        switch (t->kind->role) {
            case TensorRole::AttnV: case TensorRole::AttnQKV: case TensorRole::AttnKvB: return Role::AttnV;
            case TensorRole::AttnK: return Role::AttnK;
            case TensorRole::AttnQ: return Role::AttnQ;
            case TensorRole::AttnOutput: return Role::AttnOutput;
            case TensorRole::FfnUp: case TensorRole::FfnUpExps: case TensorRole::FfnUpShexp: return Role::FfnUp;
            case TensorRole::FfnGate: case TensorRole::FfnGateExps: case TensorRole::FfnGateShexp: case TensorRole::FfnGateInp:
            case TensorRole::FfnGateInpShexp: return Role::FfnGate;
            case TensorRole::FfnDown: case TensorRole::FfnDownExps: case TensorRole::FfnDownShexp: return Role::FfnDown;
            default: return Role::Other;
        }
    }
    auto has = [&](std::string_view s) { return name.find(s) != std::string_view::npos; };
    if (has("attn_qkv.weight") || has("attn_kv_b.weight") || has("attn_v.weight")) return Role::AttnV;
    if (has("attn_k.weight")) return Role::AttnK;
    if (has("attn_q.weight")) return Role::AttnQ;
    if (has("attn_output.weight")) return Role::AttnOutput;
    if (has("ffn_up")) return Role::FfnUp;
    if (has("ffn_gate")) return Role::FfnGate;
    if (has("ffn_down")) return Role::FfnDown;
    return Role::Other;
}

// When the row length does not divide by the chosen type's block size, llama.cpp's
// replacement; F16 when that does not divide either.
TypeId fallback_of(TypeId t, uint64_t row, std::string& why) {
    TypeId f;
    switch (t) {
        case T::IQ1_S: case T::IQ1_M: case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ3_XXS: case T::IQ3_S:
        case T::IQ4_XS: f = T::IQ4_NL; break;
        case T::Q2_0: case T::Q2_K: case T::Q3_K: case T::TQ1_0: case T::TQ2_0: f = T::Q4_0; break;
        case T::Q4_K: f = T::Q5_0; break;
        case T::Q5_K: f = T::Q5_1; break;
        case T::Q6_K: f = T::Q8_0; break;
        default:
            throw std::runtime_error(fmt::format("rows of {} values do not divide into {} blocks of {}, and {} has no fallback type",
                                                 row, type_info(t).name, type_info(t).block_size, type_info(t).name));
    }
    if (row % type_info(f).block_size != 0) f = T::F16;
    why = fmt::format("rows of {} values are not whole {} blocks of {}; {} instead", row, type_info(t).name, type_info(t).block_size,
                      type_info(f).name);
    return f;
}

struct Counters {
    int64_t attn_v = 0, ffn_down = 0, ffn_gate = 0, ffn_up = 0;
};

class Planner {
public:
    Planner(const Hyperparameters& shape, std::span<const TensorInfo* const> tensors, const Options& o)
        : o_(o), shape_(shape), mix_(o.target->file_type) {
        for (const TensorInfo* t : tensors) {
            if (t->name == "output.weight") tied_ = false;
        }
        for (const TensorInfo* t : tensors)
            if (role_of(t->name, tied_) == Role::AttnV) ++n_attn_v_;
    }

    // llama.cpp's rules for one tensor, with the counters as its quantizer keeps them.
    TypeId rules(const TensorInfo& t) {
        const Role role = role_of(t.name, tied_);
        if (role == Role::Output && o_.output_type) return *o_.output_type;  // a shared embedding too
        const int64_t counter = role == Role::AttnV ? c_.attn_v : role == Role::FfnDown ? c_.ffn_down
                              : role == Role::FfnGate ? c_.ffn_gate : role == Role::FfnUp ? c_.ffn_up : 0;
        int64_t layer = counter;
        if ((role == Role::FfnDown || role == Role::FfnGate || role == Role::FfnUp) && shape_.n_expert > 1) {
            // Expert tensors need not come in layer order: the layer is read from the name.
            const std::optional<uint32_t> l = layer_of(t.name);
            if (!l || *l >= shape_.n_layer)
                throw std::runtime_error(fmt::format("tensor '{}': cannot tell its layer (blk.N with N below {})", t.name, shape_.n_layer));
            layer = *l;
        }
        TypeId out = kKeep;
        for (const Rule& r : kRules) {
            if (r.role != role && !(r.role == Role::Any && role != Role::Output)) continue;
            if (!r.mixes.has(mix_) || !holds(r.a, t, counter, layer) || !holds(r.b, t, counter, layer)) continue;
            out = r.type;
            break;
        }
        // After the rules, attn_v-like tensors in the general mixes: a 70B llama's small attn_v
        // gets q5_K for q3_K/q4_K, and an 8-expert model's attn_v q8_0.
        if (role == Role::AttnV && kGeneral.has(mix_)) {
            if (is_70b(shape_) && (out == T::Q3_K || out == T::Q4_K || (out == kKeep && (base() == T::Q3_K || base() == T::Q4_K))))
                out = T::Q5_K;
            if (shape_.n_expert == 8) out = T::Q8_0;
        }
        // llama.cpp counts these only when its rules run for the tensor.
        if (role == Role::AttnV) ++c_.attn_v;
        if (role == Role::FfnDown) ++c_.ffn_down;
        if (role == Role::FfnGate && kGeneral.has(mix_)) ++c_.ffn_gate;
        if (role == Role::FfnUp && kGeneral.has(mix_)) ++c_.ffn_up;
        return out == kKeep ? base() : out;
    }

    TypeId base() const { return o_.target->base; }
    bool tied() const { return tied_; }

private:
    bool holds(When w, const TensorInfo& t, int64_t counter, int64_t layer) const {
        const int64_t n = shape_.n_layer;
        switch (w) {
            case When::Always: return true;
            case When::RowNotWholeBase: return t.shape[0] % type_info(base()).block_size != 0;
            case When::BaseNotQ8_0: return base() != T::Q8_0;
            case When::Falcon: return shape_.architecture == find_architecture("falcon");
            case When::NotFalcon: return shape_.architecture != find_architecture("falcon");
            case When::Gqa4: return shape_.n_gqa() >= 4;
            case When::Gqa4OrExperts4: return shape_.n_gqa() >= 4 || shape_.n_expert >= 4;
            case When::Experts8: return shape_.n_expert == 8;
            case When::Stacked: return t.shape[2] > 1;
            case When::Imatrix: return o_.has_imatrix;
            case When::NoImatrix: return !o_.has_imatrix;
            case When::VFirst2: return counter < 2;
            case When::VFirst4: return counter < 4;
            case When::VMoreBits: return use_more_bits(counter, n_attn_v_);
            case When::DownFirstEighth: return counter < n / 8;
            case When::LayerEighth: return layer < n / 8;
            case When::LayerSixteenth: return layer < n / 16;
            case When::LayerMoreBits: return use_more_bits(layer, n);
            case When::LayerMiddle: return layer >= n / 8 && layer < 7 * n / 8;
        }
        return false;
    }

    const Options& o_;
    Hyperparameters shape_;
    uint32_t mix_;
    bool tied_ = true;  // until an output.weight is seen
    int64_t n_attn_v_ = 0;
    Counters c_;
};

bool requires_imatrix(std::string_view name, TypeId t, uint32_t mix) {
    if (is_token_embedding(name) || name == "output.weight") return false;
    switch (t) {
        case T::IQ3_XXS: case T::IQ2_XXS: case T::IQ2_XS: case T::IQ2_S: case T::IQ1_M: case T::IQ1_S: return true;
        case T::Q2_K: return mix == static_cast<uint32_t>(Q2_K_S);
        default: return false;
    }
}


}  // namespace

std::string never_quantized(const TensorInfo& t, bool leave_output) {
    uint32_t dims = 1;
    for (uint32_t d = 0; d < kMaxDims; ++d)
        if (t.shape[d] > 1) dims = d + 1;
    if (t.n_elements == 0) return "no values";
    if (dims < 2) return "1-D: llama.cpp keeps vectors (norms, biases) in their type";
    const std::string_view n = t.name;
    if (!n.ends_with("weight")) return "not a weight: llama.cpp quantizes only tensors named *weight";
    if (leave_output && n == "output.weight") return "the output tensor is left as it is";
    if (const std::optional<TensorName> known = parse_tensor_name(n); known && known->kind->kept)
        return fmt::format("a {} tensor: llama.cpp never quantizes it", known->kind->stem);
    static constexpr std::string_view kNever[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
        "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
        "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger",
        "a.rvq.codebook", "mm.a.code_embd"};
    for (std::string_view s : kNever)
        if (n.find(s) != std::string_view::npos) return fmt::format("its name has '{}': llama.cpp never quantizes such tensors", s);
    return {};
}

namespace {

// llama-quantize's aliases: a k-quant's plain name means its _M mix.
struct Alias {
    std::string_view name;
    FileType mix;
    std::string_view note;
};
constexpr Alias kAliases[] = {{"Q3_K", Q3_K_M, "alias of Q3_K_M"}, {"Q4_K", Q4_K_M, "alias of Q4_K_M"}, {"Q5_K", Q5_K_M, "alias of Q5_K_M"}};

std::vector<Target> make_targets() {
    std::vector<Target> out;
    auto of = [](const FileTypeInfo& f, std::string_view name, std::string_view note) {
        // The rules apply to mixes of a quantized base; F16, BF16 and F32 convert every
        // quantizable tensor and keep the rest.
        return Target{name, static_cast<uint32_t>(f.id), f.base, type_info(f.base).quantized, false, note};
    };
    for (const FileTypeInfo& f : all_file_types())
        if (!f.retired) out.push_back(of(f, f.name, f.description));
    for (const Alias& a : kAliases) out.push_back(of(*find_file_type(static_cast<uint32_t>(a.mix)), a.name, a.note));
    // Not a llama.cpp name: mxfp4 for every quantizable tensor (MXFP4_MOE --pure).
    out.push_back(Target{"MXFP4", static_cast<uint32_t>(MXFP4_MOE), T::MXFP4, false, false, "mxfp4 throughout (MXFP4_MOE with --pure)"});
    out.push_back(Target{"COPY", 0, T::F32, false, true, "every tensor as it is; metadata only"});
    return out;
}

}  // namespace

std::span<const Target> targets() {
    static const std::vector<Target> all = make_targets();
    return all;
}

const Target* find_target(std::string_view name) {
    const std::span<const Target> all = targets();
    // llama-quantize's numeric form: a file type id names its mix.
    uint32_t id = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
    if (ec == std::errc() && end == name.data() + name.size() && !name.empty()) {
        for (const Target& t : all)
            if (!t.copy && t.file_type == id && find_file_type(id) && t.name == find_file_type(id)->name) return &t;
        return nullptr;
    }
    for (const Target& t : all)
        if (equal_ignoring_case(t.name, name)) return &t;
    return nullptr;
}

Hyperparameters shape_of(const Model& m) {
    Hyperparameters h = read_hyperparameters(m);
    // Without block_count, the layers the tensors name.
    if (h.n_layer == 0)
        for (const Model::Tensor& t : m.tensors())
            if (const auto layer = layer_of(t.info->name))  // saturated: blk.4294967295 is refused later as past n_layer
                h.n_layer = std::max(h.n_layer, *layer == UINT32_MAX ? *layer : *layer + 1);
    return h;
}

namespace {

// The plans for `tensors` in llama.cpp's write order; `entry(i)` is the Model::Tensor of
// tensors[i] (nullptr outside a file).
std::vector<TensorPlan> plan_tensors(const Hyperparameters& shape, std::vector<const TensorInfo*> tensors,
                                     const std::vector<const Model::Tensor*>& entries, const Options& o) {
    if (!o.target) throw std::invalid_argument("requant::plan needs a target");
    std::vector<size_t> order(tensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const std::optional<uint32_t> la = layer_of(tensors[a]->name), lb = layer_of(tensors[b]->name);  // nullopt sorts first
        return la != lb ? la < lb : tensors[a]->name < tensors[b]->name;
    });
    Planner planner(shape, tensors, o);
    const bool quantized_base = type_info(o.target->base).quantized;
    std::vector<TensorPlan> out;
    for (const size_t i : order) {
        const TensorInfo& info = *tensors[i];
        TensorPlan p{entries.empty() ? nullptr : entries[i], &info, std::string(info.name), info.type, info.type, false, {}};
        if (!o.target->copy && never_quantized(info, o.leave_output).empty()) {
            if (o.token_embd_type && is_token_embedding(info.name)) p.to = *o.token_embd_type;
            else if (o.output_type && info.name == "output.weight") p.to = *o.output_type;
            else {
                p.to = o.target->base;
                if (quantized_base) {
                    bool manual = false;
                    for (const auto& [pattern, type] : o.tensor_types)
                        if (std::regex_search(std::string(info.name), pattern)) {
                            p.to = type;
                            manual = true;
                            break;
                        }
                    if (!manual && o.target->rules && !o.pure) p.to = planner.rules(info);
                    if (info.shape[0] % type_info(p.to).block_size != 0) p.to = fallback_of(p.to, info.shape[0], p.fallback);
                }
            }
        }
        p.requires_imatrix = p.convert() && requires_imatrix(info.name, p.to, o.target->file_type);
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace

std::optional<uint32_t> renumbered_layer(uint32_t layer, std::span<const uint32_t> pruned) {
    const auto below = std::lower_bound(pruned.begin(), pruned.end(), layer);
    if (below != pruned.end() && *below == layer) return std::nullopt;
    return layer - static_cast<uint32_t>(below - pruned.begin());
}

void prune_metadata(Writer& w, const Model& m, std::span<const uint32_t> pruned) {
    const Hyperparameters h = shape_of(m);
    if (pruned.empty() || h.arch.empty()) return;
    const std::string prefix = h.arch + ".";
    // The keys llama.cpp reads with one element per block.
    static constexpr std::string_view kPerLayer[] = {"feed_forward_length", "attention.head_count", "attention.head_count_kv",
                                                     "attention.sliding_window_pattern"};
    for (const KeyValue& kv : m.kvs()) {
        if (!kv.key.starts_with(prefix) || kv.value.type() != ValueType::Array) continue;
        if (std::find(std::begin(kPerLayer), std::end(kPerLayer), kv.key.substr(prefix.size())) == std::end(kPerLayer)) continue;
        const OwnedValue* v = w.find(kv.key);
        if (!v || v->type() != ValueType::Array || v->size() != h.n_layer || v->element_type() == ValueType::Array) continue;
        std::vector<OwnedValue> kept;
        for (uint32_t i = 0; i < h.n_layer; ++i)
            if (renumbered_layer(i, pruned)) kept.push_back(v->at(i));
        w.set(std::string(kv.key), OwnedValue::array(v->element_type(), std::move(kept)));
    }
    const std::string count = hyper_key(h.arch, Hyper::BlockCount);
    const auto left = static_cast<uint32_t>(h.n_layer - pruned.size());
    // The key keeps the integer type it has (llama.cpp writes u32 either way).
    const OwnedValue* old = w.find(count);
    w.set(count, old && old->type() == ValueType::U64 ? OwnedValue::u64(left) : OwnedValue::u32(left));
}

std::vector<TensorPlan> plan(const Model& m, const Options& o) {
    std::vector<const TensorInfo*> infos;
    std::vector<const Model::Tensor*> entries;
    if (o.prune_layers.empty()) {
        for (const Model::Tensor& t : m.tensors()) infos.push_back(t.info), entries.push_back(&t);
        return plan_tensors(shape_of(m), std::move(infos), entries, o);
    }
    // Pruning: the rules see the renumbered tensors of the smaller model; each plan then
    // points back at the tensor it reads.
    const Hyperparameters shape = shape_of(m);
    const std::span<const uint32_t> pruned = o.prune_layers;
    if (!std::is_sorted(pruned.begin(), pruned.end()) || std::adjacent_find(pruned.begin(), pruned.end()) != pruned.end())
        throw std::invalid_argument("requant::plan: prune_layers must be sorted without repeats");
    if (pruned.back() >= shape.n_layer)
        throw std::runtime_error(fmt::format("--prune-layers: the model has no block {} (its blocks are 0 to {})", pruned.back(),
                                             shape.n_layer == 0 ? 0 : shape.n_layer - 1));
    if (pruned.size() >= shape.n_layer)
        throw std::runtime_error(fmt::format("--prune-layers: pruning all {} blocks leaves no model", shape.n_layer));
    std::vector<std::string> names;
    std::vector<const TensorInfo*> originals;
    for (const Model::Tensor& t : m.tensors()) {
        const std::optional<uint32_t> layer = layer_of(t.info->name);
        if (!layer) {
            names.emplace_back(t.info->name);
        } else {
            if (*layer >= shape.n_layer)
                throw std::runtime_error(fmt::format("tensor '{}': block {} is past the model's {} blocks", t.info->name, *layer, shape.n_layer));
            const std::optional<uint32_t> now = renumbered_layer(*layer, pruned);
            if (!now) continue;
            const std::string_view rest = t.info->name.substr(t.info->name.find('.', 4));  // after "blk.N"
            names.push_back(fmt::format("blk.{}{}", *now, rest));
        }
        originals.push_back(t.info);
        entries.push_back(&t);
    }
    std::vector<TensorInfo> renamed;
    renamed.reserve(originals.size());
    for (size_t i = 0; i < originals.size(); ++i) {
        renamed.push_back(*originals[i]);
        renamed.back().name = names[i];
    }
    for (const TensorInfo& t : renamed) infos.push_back(&t);
    // llama.cpp's quantizer counts attn_v tensors in the pruned model but sizes its
    // feed-forward rules (and the 70B case) by the original block count: `shape` keeps it.
    std::vector<TensorPlan> out = plan_tensors(shape, std::move(infos), entries, o);
    for (TensorPlan& p : out) {
        const auto i = static_cast<size_t>(p.info - renamed.data());
        p.name = names[i];
        p.info = originals[i];
    }
    return out;
}

std::vector<TensorPlan> plan(const Hyperparameters& shape, std::span<const TensorInfo> tensors, const Options& o) {
    if (!o.prune_layers.empty()) throw std::invalid_argument("requant::plan: prune_layers applies to a model's file");
    std::vector<const TensorInfo*> infos;
    for (const TensorInfo& t : tensors) infos.push_back(&t);
    return plan_tensors(shape, std::move(infos), {}, o);
}

}  // namespace gguf::requant
