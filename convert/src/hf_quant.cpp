#include "convert/hf_quant.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gguf/mapping.h"
#include "quant/blocks.h"
#include "quant/quant.h"

namespace convert {

namespace {

using gguf::TypeId;

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }
[[noreturn]] void fail_tensor(const SafeTensor& t, const std::string& what) { fail(t.file->string(), fmt::format("tensor {}: {}", t.name, what)); }

std::string shape_text(const std::vector<uint64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// ---- Reading elements of a safetensors tensor (little-endian) -----------------------------

uint32_t u32_at(const SafeTensor& t, uint64_t i) {
    uint32_t v;
    std::memcpy(&v, t.data.data() + i * 4, 4);
    return v;
}

// A float tensor's element i (F32, F16, BF16).
float float_at(const SafeTensor& t, uint64_t i) {
    switch (t.dtype) {
        case Dtype::F32: {
            float v;
            std::memcpy(&v, t.data.data() + i * 4, 4);
            return v;
        }
        case Dtype::F16: return quant::f16_to_f32(static_cast<uint16_t>(t.data[i * 2] | t.data[i * 2 + 1] << 8));
        case Dtype::BF16: return quant::bf16_to_f32(static_cast<uint16_t>(t.data[i * 2] | t.data[i * 2 + 1] << 8));
        default: fail_tensor(t, "not a float tensor");
    }
}

// An integer tensor's element i (I8, U8, I32, I64).
int64_t int_at(const SafeTensor& t, uint64_t i) {
    switch (t.dtype) {
        case Dtype::I8: return static_cast<int8_t>(t.data[i]);
        case Dtype::U8: return t.data[i];
        case Dtype::I32: return static_cast<int32_t>(u32_at(t, i));
        case Dtype::I64: {
            int64_t v;
            std::memcpy(&v, t.data.data() + i * 8, 8);
            return v;
        }
        default: fail_tensor(t, "not an integer tensor");
    }
}

// `b` bits at bit `bit` of a stream of 32-bit words, the words `stride` apart starting at
// word `first` (an LSB-first stream: bit 0 of the stream is bit 0 of the first word).
inline uint32_t stream_bits(const SafeTensor& words, uint64_t first, uint64_t stride, uint64_t bit, uint32_t b) {
    const uint64_t w = bit / 32;
    const uint32_t off = static_cast<uint32_t>(bit % 32);
    uint64_t v = u32_at(words, first + w * stride) >> off;
    if (off + b > 32) v |= uint64_t{u32_at(words, first + (w + 1) * stride)} << (32 - off);
    return static_cast<uint32_t>(v & ((uint64_t{1} << b) - 1));
}

bool f16_exact(float x) { return std::isfinite(x) && quant::f16_to_f32(quant::f32_to_f16(x)) == x; }

void put_half(uint8_t (&d)[2], float x) {
    const uint16_t h = quant::f32_to_f16(x);
    d[0] = static_cast<uint8_t>(h), d[1] = static_cast<uint8_t>(h >> 8);
}

// ---- The integer formats: W[n][k] = s(g, n) x (q(k, n) - z(g, n)), g the group of k -------

class AffineTensor : public QuantizedTensor {
public:
    void decode(uint64_t n0, uint64_t count, float* out) const override {
        std::vector<int32_t> q(cols_), z(groups_);
        std::vector<float> s(groups_);
        for (uint64_t n = n0; n < n0 + count; ++n, out += cols_) {
            codes(n, q.data());
            for (uint32_t g = 0; g < groups_; ++g) s[g] = scale(g, n), z[g] = zero(g, n);
            for (uint64_t k = 0; k < cols_; ++k) {
                const uint32_t g = group_of_[k];
                out[k] = s[g] * static_cast<float>(q[k] - z[g]);
            }
        }
    }

    std::optional<TypeId> lossless_type() const override {
        // One group in every aligned run of 32 (256) input values.
        const auto runs_in_one_group = [&](uint64_t run) {
            if (cols_ % run) return false;
            for (uint64_t k = 0; k < cols_; ++k)
                if (group_of_[k] != group_of_[k - k % run]) return false;
            return true;
        };
        const bool a32 = runs_in_one_group(32), a256 = runs_in_one_group(256);
        if (!a32) return std::nullopt;
        // Each candidate's conditions over every (group, row): the value d x (code - offset)
        // with d = s needs s in F16 and q - z + offset inside the code range for every q.
        bool q3k = a256, q40 = true, q4k = a256 && lo_ >= 0 && hi_ <= 15, q41 = lo_ >= 0 && hi_ <= 15, q80 = true;
        for (uint64_t n = 0; n < rows_; ++n)
            for (uint32_t g = 0; g < groups_; ++g) {
                const float s = scale(g, n);
                const int32_t z = zero(g, n);
                if (!f16_exact(s)) return std::nullopt;
                q3k = q3k && lo_ - z + 4 >= 0 && hi_ - z + 4 <= 7;
                q40 = q40 && lo_ - z + 8 >= 0 && hi_ - z + 8 <= 15;
                // d q - m gives +0 where s (q - z) is -0 (s negative or zero, q < z): those need s > 0.
                q4k = q4k && z >= 0 && z <= 63 && s > 0;
                q41 = q41 && f16_exact(-s * static_cast<float>(z)) && s > 0;
                q80 = q80 && lo_ - z >= -128 && hi_ - z <= 127;
            }
        if (q3k) return TypeId::Q3_K;
        if (q40) return TypeId::Q4_0;
        if (q4k) return TypeId::Q4_K;
        if (q41) return TypeId::Q4_1;
        if (q80) return TypeId::Q8_0;
        return std::nullopt;
    }

    void encode_lossless(TypeId type, uint64_t n, std::span<uint8_t> out) const override {
        std::vector<int32_t> q(cols_);
        codes(n, q.data());
        const uint64_t run = type == TypeId::Q3_K || type == TypeId::Q4_K ? 256 : 32;
        const size_t size = gguf::type_info(type).type_size;
        if (out.size() != cols_ / run * size) throw std::invalid_argument("encode_lossless: wrong row size");
        for (uint64_t k0 = 0, at = 0; k0 < cols_; k0 += run, at += size) {
            const uint32_t g = group_of_[k0];
            const float s = scale(g, n);
            const int32_t z = zero(g, n);
            const int32_t* c = q.data() + k0;
            uint8_t* block = out.data() + at;
            std::memset(block, 0, size);
            switch (type) {
                case TypeId::Q4_0: {
                    auto& b = *reinterpret_cast<quant::BlockQ4_0*>(block);
                    put_half(b.d, s);
                    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((c[j] - z + 8) | (c[j + 16] - z + 8) << 4);
                    break;
                }
                case TypeId::Q4_1: {
                    auto& b = *reinterpret_cast<quant::BlockQ4_1*>(block);
                    put_half(b.d, s);
                    put_half(b.m, -s * static_cast<float>(z));
                    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(c[j] | c[j + 16] << 4);
                    break;
                }
                case TypeId::Q8_0: {
                    auto& b = *reinterpret_cast<quant::BlockQ8_0*>(block);
                    put_half(b.d, s);
                    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(c[j] - z);
                    break;
                }
                case TypeId::Q4_K: {
                    // d = dmin = s, every sub-block's scale 1 and minimum z: d x 1 x q - s x z.
                    auto& b = *reinterpret_cast<quant::BlockQ4_K*>(block);
                    put_half(b.d, s);
                    put_half(b.dmin, s);
                    const auto m = static_cast<uint8_t>(z);
                    for (int j = 0; j < 4; ++j) {
                        b.scales[j] = static_cast<uint8_t>(1 | ((1 >> 4) << 6));          // scale j, top bits of scale j + 4
                        b.scales[j + 4] = static_cast<uint8_t>((m & 63) | ((m >> 4) << 6));  // min j, top bits of min j + 4
                        b.scales[j + 8] = static_cast<uint8_t>((1 & 15) | ((m & 15) << 4));  // low nibbles of scale and min j + 4
                    }
                    for (int half = 0; half < 4; ++half)
                        for (int l = 0; l < 32; ++l)
                            b.qs[32 * half + l] = static_cast<uint8_t>(c[64 * half + l] | c[64 * half + 32 + l] << 4);
                    break;
                }
                case TypeId::Q3_K: {
                    // d = s, every 6-bit scale 33 (scale - 32 = 1), 3-bit code q - z + 4.
                    auto& b = *reinterpret_cast<quant::BlockQ3_K*>(block);
                    put_half(b.d, s);
                    for (int i = 0; i < 8; ++i) b.scales[i] = 0x11;       // low nibbles of scales i and i + 8
                    for (int i = 8; i < 12; ++i) b.scales[i] = 0xAA;      // their top two bits, 2 each
                    for (int i = 0; i < 256; ++i) {
                        const int sub = i / 16, l = 16 * (sub % 2) + i % 16, code = c[i] - z + 4;
                        b.qs[32 * (sub / 8) + l] |= static_cast<uint8_t>((code & 3) << (2 * ((sub % 8) / 2)));
                        if (code & 4) b.hmask[l] |= static_cast<uint8_t>(1u << (sub / 2));
                    }
                    break;
                }
                default: throw std::invalid_argument(fmt::format("encode_lossless: {} is not a lossless type", gguf::type_info(type).name));
            }
        }
    }

protected:
    // Row n's K codes.
    virtual void codes(uint64_t n, int32_t* out) const = 0;
    virtual float scale(uint32_t g, uint64_t n) const = 0;
    virtual int32_t zero(uint32_t g, uint64_t n) const = 0;

    // group_of_[k] for every input k, from a g_idx tensor (values checked against groups_)
    // or k / group_size (group_size <= 0: one group).
    void set_groups(uint32_t groups, int64_t group_size, const SafeTensor* g_idx) {
        groups_ = groups;
        group_of_.resize(cols_);
        for (uint64_t k = 0; k < cols_; ++k) {
            int64_t g = group_size > 0 ? static_cast<int64_t>(k) / group_size : 0;
            if (g_idx) {
                const int64_t v = int_at(*g_idx, k);
                if (v >= 0) g = v;  // compressed-tensors writes -1 for "not set": column order
            }
            if (g < 0 || g >= groups) {
                const SafeTensor& t = g_idx ? *g_idx : *parts_[0];
                fail_tensor(t, fmt::format("input channel {} falls in group {}, past the {} groups of its scales", k, g, groups));
            }
            group_of_[k] = static_cast<uint32_t>(g);
        }
    }

    uint32_t groups_ = 1;
    std::vector<uint32_t> group_of_;
    int32_t lo_ = 0, hi_ = 15;  // the codes' range
};

const SafeTensor* need(const Checkpoint& w, const std::string& module, const std::string& suffix, const std::string& why,
                       std::vector<std::string>& used) {
    const std::string name = module + "." + suffix;
    const SafeTensor* t = w.find(name);
    if (!t) fail(w.folder().string(), fmt::format("tensor {} is missing: {} needs it ({})", name, module, why));
    used.push_back(name);
    return t;
}
const SafeTensor* maybe(const Checkpoint& w, const std::string& module, const std::string& suffix, std::vector<std::string>& used) {
    const std::string name = module + "." + suffix;
    const SafeTensor* t = w.find(name);
    if (t) used.push_back(name);
    return t;
}
void expect(const SafeTensor& t, std::initializer_list<Dtype> dtypes, const std::vector<uint64_t>& shape) {
    if (std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end()) {
        std::vector<std::string_view> names;
        for (Dtype d : dtypes) names.push_back(dtype_name(d));
        fail_tensor(t, fmt::format("dtype {}, expected {}", dtype_name(t.dtype), fmt::join(names, " or ")));
    }
    if (!shape.empty() && t.shape != shape) fail_tensor(t, fmt::format("shape {}, expected {}", shape_text(t.shape), shape_text(shape)));
}
constexpr std::initializer_list<Dtype> kFloats = {Dtype::F16, Dtype::BF16, Dtype::F32};

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }  // b > 0; no overflow

// ---- GPTQ (spec/hf-quantized.md §1) -------------------------------------------------------

class GptqTensor final : public AffineTensor {
public:
    GptqTensor(const Checkpoint& w, const QuantConfig& c, const std::string& module, uint64_t N, uint64_t K, std::vector<std::string>& used) {
        module_ = module, rows_ = N, cols_ = K;
        qweight_ = need(w, module, "qweight", "GPTQ codes", used);
        expect(*qweight_, {Dtype::I32}, {});
        if (qweight_->shape.size() != 2 || qweight_->shape[1] != N || (qweight_->shape[0] * 32) % K)
            fail_tensor(*qweight_, fmt::format("shape {} does not hold {} x {} codes (expected [{} x bits / 32, {}])", shape_text(qweight_->shape), N, K, K, N));
        bits_ = static_cast<uint32_t>(qweight_->shape[0] * 32 / K);
        if (!c.has_dynamic && bits_ != c.bits)
            fail_tensor(*qweight_, fmt::format("shape {} holds {}-bit codes, the config says bits {}", shape_text(qweight_->shape), bits_, c.bits));
        if (bits_ != 2 && bits_ != 3 && bits_ != 4 && bits_ != 8)
            fail_tensor(*qweight_, fmt::format("{}-bit codes are not supported (GPTQ bits 2, 3, 4, 8 are)", bits_));
        scales_ = need(w, module, "scales", "the group scales", used);
        expect(*scales_, kFloats, {});
        if (scales_->shape.size() != 2 || scales_->shape[1] != N || scales_->shape[0] == 0)
            fail_tensor(*scales_, fmt::format("shape {}, expected [groups, {}]", shape_text(scales_->shape), N));
        const uint64_t G = scales_->shape[0];
        const SafeTensor* g_idx = maybe(w, module, "g_idx", used);
        if (g_idx) expect(*g_idx, {Dtype::I32, Dtype::I64}, {K});
        // The group size: the config's, or with per-module (dynamic) overrides the one the
        // shapes imply.
        int64_t gs = G == 1 ? 0 : c.group_size;
        if (c.has_dynamic && G > 1 && (c.group_size <= 0 || G != ceil_div(K, static_cast<uint64_t>(c.group_size)))) {
            if (K % G && !g_idx) fail_tensor(*scales_, fmt::format("{} groups do not divide {} inputs, and there is no g_idx to say which is which", G, K));
            gs = static_cast<int64_t>(K / G);
        } else if (!c.has_dynamic) {
            if (c.group_size > 0 && G != ceil_div(K, static_cast<uint64_t>(c.group_size)))
                fail_tensor(*scales_, fmt::format("{} groups, but {} inputs in groups of {} make {}", G, K, c.group_size, ceil_div(K, static_cast<uint64_t>(c.group_size))));
            if (c.group_size <= 0 && G != 1) fail_tensor(*scales_, fmt::format("{} groups, but group_size {} means one", G, c.group_size));
        }
        if (c.desc_act && G > 1 && !g_idx)
            fail_tensor(*qweight_, fmt::format("desc_act (act-order) needs {}.g_idx to say each input's group, and it is missing", module));
        qzeros_ = need(w, module, "qzeros", "the zero points", used);
        if ((N * bits_) % 32) fail_tensor(*qzeros_, fmt::format("{} outputs of {} bits are not whole 32-bit words", N, bits_));
        expect(*qzeros_, {Dtype::I32}, {G, N * bits_ / 32});
        parts_ = {qweight_, qzeros_, scales_};
        if (g_idx) parts_.push_back(g_idx);
        set_groups(static_cast<uint32_t>(G), gs, g_idx);
        lo_ = 0, hi_ = (1 << bits_) - 1;
        v2_ = c.gptq_v2;
        if (!v2_) {
            // v1 cannot store a zero of 0: a field of all ones is a writer's wrapped -1 (or a
            // borrow from its neighbour). Decoded as llama.cpp decodes it (field + 1), and said.
            uint64_t wrapped = 0;
            for (uint64_t g = 0; g < G; ++g)
                for (uint64_t n = 0; n < N; ++n) wrapped += zero(static_cast<uint32_t>(g), n) == (1 << bits_);
            if (wrapped)
                warnings_.push_back(fmt::format("{}: {} of {} zero fields hold {} (all ones): a v1 writer cannot store a zero of 0 and may have wrapped it; "
                                                "decoded as {} (field + 1, as llama.cpp does). If the checkpoint is gptq_v2, say so in checkpoint_format",
                                                qzeros_->name, wrapped, G * N, (1 << bits_) - 1, 1 << bits_));
        }
        bool permuted = false;
        for (uint64_t k = 0; gs && k < K; ++k) permuted = permuted || group_of_[k] != k / static_cast<uint64_t>(gs);
        kind_ = fmt::format("GPTQ {}-bit {}{}{}", bits_, G == 1 ? "per channel" : fmt::format("g{}", gs), permuted ? " act-order" : "",
                            v2_ ? " v2" : "");
    }

protected:
    void codes(uint64_t n, int32_t* out) const override {
        // Column n of qweight, an LSB-first stream along the input dimension: whole fields
        // per word for 2, 4 and 8 bits (K is then a multiple of 32 / bits), a stream for 3.
        if (32 % bits_ == 0) {
            const uint32_t per_word = 32 / bits_, mask = (1u << bits_) - 1;
            const uint8_t* word_at = qweight_->data.data() + n * 4;
            for (uint64_t k = 0; k < cols_; word_at += rows_ * 4) {
                uint32_t word;
                std::memcpy(&word, word_at, 4);
                for (uint32_t j = 0; j < per_word; ++j, ++k, word >>= bits_) out[k] = static_cast<int32_t>(word & mask);
            }
            return;
        }
        for (uint64_t k = 0; k < cols_; ++k) out[k] = static_cast<int32_t>(stream_bits(*qweight_, n, rows_, k * bits_, bits_));
    }
    float scale(uint32_t g, uint64_t n) const override { return float_at(*scales_, uint64_t{g} * rows_ + n); }
    int32_t zero(uint32_t g, uint64_t n) const override {
        // Row g of qzeros, a stream along the output dimension; v1 stores the zero minus one.
        const uint64_t per_row = rows_ * bits_ / 32;
        return static_cast<int32_t>(stream_bits(*qzeros_, uint64_t{g} * per_row, 1, n * bits_, bits_)) + (v2_ ? 0 : 1);
    }

private:
    const SafeTensor *qweight_, *qzeros_, *scales_;
    uint32_t bits_ = 4;
    bool v2_ = false;
};

// ---- AWQ (§2) ------------------------------------------------------------------------------

class AwqTensor final : public AffineTensor {
public:
    AwqTensor(const Checkpoint& w, const QuantConfig& c, const std::string& module, uint64_t N, uint64_t K, std::vector<std::string>& used) {
        module_ = module, rows_ = N, cols_ = K;
        gemv_ = c.awq_version == "gemv";
        const uint64_t gs = c.group_size > 0 ? static_cast<uint64_t>(c.group_size) : K;
        qweight_ = need(w, module, "qweight", "AWQ codes", used);
        if (K % gs) fail_tensor(*qweight_, fmt::format("{} inputs are not whole groups of {} (group_size)", K, gs));
        const uint64_t G = K / gs;
        scales_ = need(w, module, "scales", "the group scales", used);
        qzeros_ = need(w, module, "qzeros", "the zero points", used);
        if (!gemv_) {
            if (N % 8) fail_tensor(*qweight_, fmt::format("{} outputs are not whole words of 8", N));
            expect(*qweight_, {Dtype::I32}, {K, N / 8});
            expect(*qzeros_, {Dtype::I32}, {G, N / 8});
            expect(*scales_, kFloats, {G, N});
        } else {
            if (K % 8) fail_tensor(*qweight_, fmt::format("{} inputs are not whole words of 8", K));
            expect(*qweight_, {Dtype::I32}, {N, K / 8});
            expect(*qzeros_, {Dtype::I32}, {});
            if (qzeros_->shape.size() != 2 || qzeros_->shape[0] != N || qzeros_->shape[1] * 8 < G)
                fail_tensor(*qzeros_, fmt::format("shape {}, expected [{}, at least {}]", shape_text(qzeros_->shape), N, ceil_div(G, 8)));
            zero_words_ = qzeros_->shape[1];
            expect(*scales_, kFloats, {N, zero_words_ * 8});
        }
        parts_ = {qweight_, qzeros_, scales_};
        set_groups(static_cast<uint32_t>(G), static_cast<int64_t>(gs), nullptr);
        kind_ = fmt::format("AWQ 4-bit g{} {}", gs, gemv_ ? "GEMV" : "GEMM");
    }

protected:
    // GEMM packs 8 outputs per word, field j holding output 8c + kOrder[j]; kField is its inverse.
    static constexpr int kField[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    void codes(uint64_t n, int32_t* out) const override {
        if (gemv_) {
            for (uint64_t k = 0; k < cols_; ++k) out[k] = static_cast<int32_t>(u32_at(*qweight_, n * (cols_ / 8) + k / 8) >> (4 * (k % 8)) & 15);
            return;
        }
        const uint32_t shift = 4 * kField[n % 8];
        for (uint64_t k = 0; k < cols_; ++k) out[k] = static_cast<int32_t>(u32_at(*qweight_, k * (rows_ / 8) + n / 8) >> shift & 15);
    }
    float scale(uint32_t g, uint64_t n) const override { return float_at(*scales_, gemv_ ? n * zero_words_ * 8 + g : uint64_t{g} * rows_ + n); }
    int32_t zero(uint32_t g, uint64_t n) const override {
        if (gemv_) return static_cast<int32_t>(u32_at(*qzeros_, n * zero_words_ + g / 8) >> (4 * (g % 8)) & 15);
        return static_cast<int32_t>(u32_at(*qzeros_, uint64_t{g} * (rows_ / 8) + n / 8) >> (4 * kField[n % 8]) & 15);
    }

private:
    const SafeTensor *qweight_, *qzeros_, *scales_;
    bool gemv_ = false;
    uint64_t zero_words_ = 0;
};

// ---- compressed-tensors integers (§5) ------------------------------------------------------

// A scale (or zero point) laid out by strategy: [1] per tensor, [N, 1] per channel, [N, G]
// per group; the group count comes from the shape.
struct ScaleLayout {
    const SafeTensor* t = nullptr;
    uint64_t groups = 1;  // per row
    bool per_row = false;
    uint64_t index(uint32_t g, uint64_t n) const { return per_row ? n * groups + g : 0; }
};

ScaleLayout scale_layout(const SafeTensor& t, uint64_t N) {
    ScaleLayout l{&t};
    const uint64_t elements = t.elements();
    if (elements == 0) fail_tensor(t, fmt::format("shape {} holds no scale", shape_text(t.shape)));
    if (elements == 1) return l;
    if (t.shape.size() == 2 && t.shape[0] == N) {
        l.per_row = true, l.groups = t.shape[1];
        return l;
    }
    if (t.shape.size() == 1 && t.shape[0] == N) {
        l.per_row = true;
        return l;
    }
    fail_tensor(t, fmt::format("shape {} is not a per-tensor [1], per-channel [{}, 1] or per-group [{}, groups] scale", shape_text(t.shape), N, N));
}

class CtIntTensor final : public AffineTensor {
public:
    CtIntTensor(const Checkpoint& w, const CtGroup& grp, const std::string& module, uint64_t N, uint64_t K, std::vector<std::string>& used) {
        module_ = module, rows_ = N, cols_ = K;
        bits_ = grp.num_bits;
        packed_ = w.find(module + ".weight_packed");
        if (packed_) {
            used.push_back(packed_->name);
            if (bits_ != 4 && bits_ != 8) fail_tensor(*packed_, fmt::format("num_bits {} is not supported for pack-quantized (4 and 8 are)", bits_));
            expect(*packed_, {Dtype::I32}, {N, ceil_div(K * bits_, 32)});
            if (const SafeTensor* shape = maybe(w, module, "weight_shape", used)) {
                expect(*shape, {Dtype::I64, Dtype::I32}, {2});
                if (static_cast<uint64_t>(int_at(*shape, 0)) != N || static_cast<uint64_t>(int_at(*shape, 1)) != K)
                    fail_tensor(*shape, fmt::format("says [{}, {}], the config implies [{}, {}]", int_at(*shape, 0), int_at(*shape, 1), N, K));
            }
            lo_ = 0, hi_ = (1 << bits_) - 1;
        } else {
            codes8_ = need(w, module, "weight", "int8 codes", used);
            if (bits_ != 8) fail_tensor(*codes8_, fmt::format("num_bits {} stored unpacked: only 8 is read", bits_));
            expect(*codes8_, {Dtype::I8}, {N, K});
            lo_ = -128, hi_ = 127;
        }
        const SafeTensor& main = packed_ ? *packed_ : *codes8_;
        const SafeTensor* s = w.find(module + ".weight_scale");
        if (!s) fail_tensor(main, fmt::format("has no scale ({}.weight_scale is missing)", module));
        used.push_back(s->name);
        expect(*s, kFloats, {});
        scale_ = scale_layout(*s, N);
        zp_ = maybe(w, module, "weight_zero_point", used);
        if (!grp.symmetric && !zp_) fail_tensor(main, fmt::format("is asymmetric in the config but {}.weight_zero_point is missing", module));
        if (zp_) {
            if (packed_) {
                expect(*zp_, {Dtype::I32}, {ceil_div(N * bits_, 32), scale_.groups});
            } else {
                expect(*zp_, {Dtype::I8}, s->shape);
            }
        }
        const SafeTensor* g_idx = maybe(w, module, "weight_g_idx", used);
        if (g_idx) expect(*g_idx, {Dtype::I32, Dtype::I64}, {K});
        parts_ = {&main, s};
        if (zp_) parts_.push_back(zp_);
        if (g_idx) parts_.push_back(g_idx);
        const int64_t gs = scale_.groups == 1 ? 0 : static_cast<int64_t>(ceil_div(K, scale_.groups));
        if (grp.strategy == "group" && grp.group_size > 0 && scale_.groups != ceil_div(K, static_cast<uint64_t>(grp.group_size)))
            fail_tensor(*s, fmt::format("{} groups per row, but {} inputs in groups of {} make {}", scale_.groups, K, grp.group_size,
                                        ceil_div(K, static_cast<uint64_t>(grp.group_size))));
        set_groups(static_cast<uint32_t>(scale_.groups), grp.group_size > 0 ? grp.group_size : gs, g_idx);
        kind_ = fmt::format("int{} {} {}{}", bits_, scale_.per_row ? (scale_.groups == 1 ? "per channel" : fmt::format("g{}", gs)) : "per tensor",
                            zp_ ? "asym" : "sym", packed_ ? " (packed)" : "");
    }

protected:
    void codes(uint64_t n, int32_t* out) const override {
        if (packed_) {
            const uint64_t words = ceil_div(cols_ * bits_, 32);
            for (uint64_t k = 0; k < cols_; ++k) out[k] = static_cast<int32_t>(stream_bits(*packed_, n * words, 1, k * bits_, bits_));
        } else {
            for (uint64_t k = 0; k < cols_; ++k) out[k] = static_cast<int8_t>(codes8_->data[n * cols_ + k]);
        }
    }
    float scale(uint32_t g, uint64_t n) const override { return float_at(*scale_.t, scale_.index(g, n)); }
    int32_t zero(uint32_t g, uint64_t n) const override {
        const int32_t offset = packed_ ? 1 << (bits_ - 1) : 0;  // packed codes are stored + 2^(b-1)
        if (!zp_) return offset;
        if (packed_) return static_cast<int32_t>(stream_bits(*zp_, g, scale_.groups, n * bits_, bits_));  // column g, along the rows
        return static_cast<int32_t>(int_at(*zp_, scale_.index(g, n)));
    }

private:
    const SafeTensor *packed_ = nullptr, *codes8_ = nullptr, *zp_ = nullptr;
    ScaleLayout scale_;
    uint32_t bits_ = 4;
};

// ---- FP8 (§4) ------------------------------------------------------------------------------

class Fp8Tensor final : public QuantizedTensor {
public:
    // `block_rows` x `block_cols` > 0: a block scale (weight_scale_inv); else laid out by shape.
    Fp8Tensor(const SafeTensor& weight, const SafeTensor& scale, uint64_t N, uint64_t K, uint32_t block_rows, uint32_t block_cols, int64_t group_size = 0) {
        module_ = weight.name.substr(0, weight.name.size() - 7), rows_ = N, cols_ = K;
        weight_ = &weight, scale_ = &scale;
        expect(weight, {Dtype::F8_E4M3, Dtype::F8_E5M2}, {N, K});
        expect(scale, kFloats, {});
        if (block_rows) {
            br_ = block_rows, bc_ = block_cols;
            expect(scale, kFloats, {ceil_div(N, br_), ceil_div(K, bc_)});
            kind_ = fmt::format("FP8 {} {}x{} blocks", weight.dtype == Dtype::F8_E4M3 ? "E4M3" : "E5M2", br_, bc_);
        } else {
            layout_ = scale_layout(scale, N);
            // Groups of the config's size (the last one short), else as many as the scale has.
            group_ = group_size > 0 ? static_cast<uint64_t>(group_size) : ceil_div(K, layout_.groups);
            if (ceil_div(K, group_) != layout_.groups)
                fail_tensor(scale, fmt::format("{} groups per row, but {} inputs in groups of {} make {}", layout_.groups, K, group_, ceil_div(K, group_)));
            kind_ = fmt::format("FP8 {} {}", weight.dtype == Dtype::F8_E4M3 ? "E4M3" : "E5M2",
                                !layout_.per_row ? "per tensor" : layout_.groups == 1 ? "per channel" : fmt::format("g{}", group_));
        }
        parts_ = {&weight, &scale};
    }
    void decode(uint64_t n0, uint64_t count, float* out) const override {
        const bool e4m3 = weight_->dtype == Dtype::F8_E4M3;
        for (uint64_t n = n0; n < n0 + count; ++n, out += cols_) {
            const uint8_t* q = weight_->data.data() + n * cols_;
            for (uint64_t k = 0; k < cols_; ++k) {
                const float s = br_ ? float_at(*scale_, (n / br_) * ceil_div(cols_, bc_) + k / bc_) : float_at(*scale_, layout_.index(static_cast<uint32_t>(k / group_), n));
                out[k] = (e4m3 ? fp8_e4m3_to_f32(q[k]) : fp8_e5m2_to_f32(q[k])) * s;
            }
        }
    }

private:
    const SafeTensor *weight_, *scale_;
    uint32_t br_ = 0, bc_ = 0;
    ScaleLayout layout_;
    uint64_t group_ = 1;
};

// ---- bitsandbytes (§3) ---------------------------------------------------------------------

class Bnb4Tensor final : public QuantizedTensor {
public:
    Bnb4Tensor(const Checkpoint& w, const SafeTensor& weight, const SafeTensor& state, uint64_t N, uint64_t K, std::vector<std::string>& used) {
        module_ = weight.name.substr(0, weight.name.size() - 7), rows_ = N, cols_ = K;
        weight_ = &weight;
        // The quant_state JSON: quant_type, blocksize, shape, and the nested fields.
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        const simdjson::padded_string text(reinterpret_cast<const char*>(state.data.data()), state.data.size());
        if (parser.parse(text).get(root) || !root.is_object()) fail_tensor(state, "is not a JSON object (bitsandbytes' quant_state)");
        std::string_view type;
        if (root["quant_type"].get(type) || (type != "nf4" && type != "fp4")) fail_tensor(state, "quant_type is not \"nf4\" or \"fp4\"");
        uint64_t bs = 0;
        if (root["blocksize"].get(bs) || bs == 0 || bs > (uint64_t{1} << 20)) fail_tensor(state, "no blocksize between 1 and 2^20");
        simdjson::dom::array shape;
        std::vector<uint64_t> dims;
        if (root["shape"].get(shape)) fail_tensor(state, "no shape");
        for (const auto d : shape) {
            uint64_t v;
            if (d.get(v)) fail_tensor(state, "shape holds a value that is not a count");
            dims.push_back(v);
        }
        if (dims != std::vector<uint64_t>{N, K}) fail_tensor(state, fmt::format("shape {}, the config implies [{}, {}]", shape_text(dims), N, K));
        block_ = bs;
        const uint64_t M = N * K, blocks = ceil_div(M, bs);
        if (weight.data.size() != ceil_div(M, 2)) fail_tensor(weight, fmt::format("{} bytes, {} 4-bit codes need {}", weight.data.size(), M, ceil_div(M, 2)));
        const std::string p = weight.name;
        quant_map_ = need(w, p, "quant_map", "the 4-bit code table", used);
        expect(*quant_map_, {Dtype::F32}, {16});
        absmax_ = need(w, p, "absmax", "the block scales", used);
        nested_absmax_ = maybe(w, p, "nested_absmax", used);
        parts_ = {&weight, absmax_, quant_map_, &state};
        if (nested_absmax_) {
            nested_map_ = need(w, p, "nested_quant_map", "double quantization's code table", used);
            expect(*nested_map_, {Dtype::F32}, {256});
            expect(*absmax_, {Dtype::U8}, {blocks});
            uint64_t nbs = 0;
            if (root["nested_blocksize"].get(nbs) || nbs == 0 || nbs > (uint64_t{1} << 20))
                fail_tensor(state, "double-quantized without a nested_blocksize between 1 and 2^20");
            nested_block_ = nbs;
            expect(*nested_absmax_, {Dtype::F32}, {ceil_div(blocks, nbs)});
            double offset = 0;
            if (root["nested_offset"].get(offset)) fail_tensor(state, "double-quantized without nested_offset");
            offset_ = static_cast<float>(offset);
            parts_.push_back(nested_absmax_), parts_.push_back(nested_map_);
        } else {
            expect(*absmax_, {Dtype::F32}, {blocks});
        }
        kind_ = fmt::format("{} blocks of {}{}", type == "nf4" ? "NF4" : "FP4", bs, nested_absmax_ ? ", double-quantized" : "");
    }
    void decode(uint64_t n0, uint64_t count, float* out) const override {
        std::array<float, 16> map;
        for (int i = 0; i < 16; ++i) map[static_cast<size_t>(i)] = float_at(*quant_map_, static_cast<uint64_t>(i));
        for (uint64_t e = n0 * cols_, end = (n0 + count) * cols_; e < end; ++e) {
            const uint8_t byte = weight_->data[e / 2];
            const int code = e % 2 ? byte & 15 : byte >> 4;  // element 2i is byte i's high nibble
            *out++ = map[static_cast<size_t>(code)] * absmax(e / block_);
        }
    }

private:
    float absmax(uint64_t b) const {
        if (!nested_absmax_) return float_at(*absmax_, b);
        const float scaled = float_at(*nested_map_, absmax_->data[b]) * float_at(*nested_absmax_, b / nested_block_);
        return scaled + offset_;
    }
    const SafeTensor *weight_, *quant_map_ = nullptr, *absmax_ = nullptr, *nested_absmax_ = nullptr, *nested_map_ = nullptr;
    uint64_t block_ = 64, nested_block_ = 256;
    float offset_ = 0;
};

class Bnb8Tensor final : public QuantizedTensor {
public:
    Bnb8Tensor(const Checkpoint& w, const SafeTensor& weight, uint64_t N, uint64_t K, std::vector<std::string>& used) {
        module_ = weight.name.substr(0, weight.name.size() - 7), rows_ = N, cols_ = K;
        weight_ = &weight;
        expect(weight, {Dtype::I8}, {N, K});
        scb_ = need(w, module_, "SCB", "LLM.int8's row scales", used);
        expect(*scb_, {Dtype::F32}, {N});
        if (const SafeTensor* format = maybe(w, module_, "weight_format", used)) {
            if (format->data.size() != 1 || format->data[0] != 0)
                fail_tensor(*format, "a tiled layout (col32/turing/ampere) is not read: only the row-major format 0 is");
        }
        parts_ = {&weight, scb_};
        kind_ = "LLM.int8 per row";
    }
    void decode(uint64_t n0, uint64_t count, float* out) const override {
        const float inv127 = 1.0f / 127.0f;  // bitsandbytes multiplies by f32(1/127)
        for (uint64_t n = n0; n < n0 + count; ++n) {
            const float s = float_at(*scb_, n);
            for (uint64_t k = 0; k < cols_; ++k) *out++ = static_cast<float>(static_cast<int8_t>(weight_->data[n * cols_ + k])) * s * inv127;
        }
    }

private:
    const SafeTensor *weight_, *scb_;
};

// ---- config ------------------------------------------------------------------------------

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

int64_t int_field(simdjson::dom::element e, const char* key, int64_t fallback) {
    int64_t v;
    if (e[key].get(v) == simdjson::SUCCESS) return v;
    return fallback;
}
bool bool_field(simdjson::dom::element e, const char* key, bool fallback) {
    bool v;
    if (e[key].get(v) == simdjson::SUCCESS) return v;
    return fallback;
}
std::string string_field(simdjson::dom::element e, const char* key) {
    std::string_view v;
    if (e[key].get(v) == simdjson::SUCCESS) return std::string(v);
    return {};
}

void read_quant_fields(simdjson::dom::element q, QuantConfig& c) {
    const std::string& file = c.source;
    std::string method = lower(string_field(q, "quant_method"));
    if (method.empty() && q["bits"].error() == simdjson::SUCCESS) method = "gptq";  // quantize_config.json names no method
    if (method == "gptq") {
        c.method = QuantMethod::Gptq;
        c.bits = static_cast<uint32_t>(int_field(q, "bits", 0));
        c.group_size = int_field(q, "group_size", -1);
        c.sym = bool_field(q, "sym", true);
        c.desc_act = bool_field(q, "desc_act", false);
        std::string format = lower(string_field(q, "checkpoint_format"));
        if (format.empty()) format = lower(string_field(q, "format"));
        if (format.empty()) format = "gptq";
        if (format != "gptq" && format != "gptq_v2") fail(file, fmt::format("checkpoint_format '{}' is not read (gptq and gptq_v2 are)", format));
        c.gptq_v2 = format == "gptq_v2";
        const std::string pack = lower(string_field(q, "pack_dtype"));
        if (!pack.empty() && pack != "int32" && pack != "torch.int32") fail(file, fmt::format("pack_dtype '{}' is not read (int32 is)", pack));
        c.has_dynamic = q["dynamic"].is_object() && q["dynamic"].get_object().size() > 0;
        if (c.bits != 2 && c.bits != 3 && c.bits != 4 && c.bits != 8) fail(file, fmt::format("GPTQ bits {} is not supported (2, 3, 4, 8 are)", c.bits));
    } else if (method == "awq") {
        c.method = QuantMethod::Awq;
        c.bits = static_cast<uint32_t>(int_field(q, "bits", int_field(q, "w_bit", 4)));
        c.group_size = int_field(q, "group_size", int_field(q, "q_group_size", 128));
        c.sym = !bool_field(q, "zero_point", true);
        c.awq_version = lower(string_field(q, "version"));
        if (c.awq_version.empty()) c.awq_version = "gemm";
        if (c.bits != 4) fail(file, fmt::format("AWQ bits {} is not supported (4 is)", c.bits));
        if (c.awq_version != "gemm" && c.awq_version != "gemv")
            fail(file, fmt::format("AWQ version '{}' is not read (gemm and gemv are)", c.awq_version));
    } else if (method == "bitsandbytes") {
        c.method = QuantMethod::Bitsandbytes;
        c.load_in_4bit = bool_field(q, "load_in_4bit", bool_field(q, "_load_in_4bit", false));
        c.load_in_8bit = bool_field(q, "load_in_8bit", bool_field(q, "_load_in_8bit", false));
    } else if (method == "fp8") {
        c.method = QuantMethod::Fp8;
        simdjson::dom::array block;
        if (q["weight_block_size"].get(block) == simdjson::SUCCESS) {
            if (block.size() != 2) fail(file, "weight_block_size is not [rows, cols]");
            uint64_t r = 0, k = 0;
            if (block.at(0).get(r) || block.at(1).get(k) || !r || !k) fail(file, "weight_block_size holds a value that is not a positive count");
            c.block_rows = static_cast<uint32_t>(r), c.block_cols = static_cast<uint32_t>(k);
        }
    } else if (method == "compressed-tensors") {
        c.method = QuantMethod::CompressedTensors;
        c.format = string_field(q, "format");
        simdjson::dom::object groups;
        if (q["config_groups"].get(groups)) fail(file, "compressed-tensors without config_groups");
        for (const auto g : groups) {
            CtGroup grp;
            simdjson::dom::element weights;
            if (g.value["weights"].get(weights) || !weights.is_object()) fail(file, fmt::format("config_groups.{} has no weights arguments", std::string_view(g.key)));
            simdjson::dom::array targets;
            if (g.value["targets"].get(targets) == simdjson::SUCCESS)
                for (const auto t : targets) {
                    std::string_view s;
                    if (t.get(s) == simdjson::SUCCESS) grp.targets.emplace_back(s);
                }
            grp.format = string_field(g.value, "format");
            if (grp.format.empty()) grp.format = c.format;
            grp.num_bits = static_cast<uint32_t>(int_field(weights, "num_bits", 8));
            grp.type = string_field(weights, "type");
            grp.symmetric = bool_field(weights, "symmetric", true);
            grp.strategy = string_field(weights, "strategy");
            grp.group_size = int_field(weights, "group_size", 0);
            simdjson::dom::array block;
            if (weights["block_structure"].get(block) == simdjson::SUCCESS && block.size() == 2) {
                uint64_t r = 0, k = 0;
                if (block.at(0).get(r) || block.at(1).get(k) || !r || !k) fail(file, fmt::format("config_groups.{}: block_structure is not two positive counts", std::string_view(g.key)));
                grp.block_rows = static_cast<uint32_t>(r), grp.block_cols = static_cast<uint32_t>(k);
            }
            if (grp.type != "int" && grp.type != "float") fail(file, fmt::format("config_groups.{}: weights type '{}' is not int or float", std::string_view(g.key), grp.type));
            if (grp.type == "int" && grp.num_bits != 4 && grp.num_bits != 8)
                fail(file, fmt::format("config_groups.{}: int num_bits {} is not supported (4 and 8 are)", std::string_view(g.key), grp.num_bits));
            if (grp.type == "float" && grp.num_bits != 8)
                fail(file, fmt::format("config_groups.{}: float num_bits {} is not supported (8 is)", std::string_view(g.key), grp.num_bits));
            c.groups.push_back(std::move(grp));
        }
        simdjson::dom::array ignore;
        if (q["ignore"].get(ignore) == simdjson::SUCCESS)
            for (const auto t : ignore) {
                std::string_view s;
                if (t.get(s) == simdjson::SUCCESS) c.ignore.emplace_back(s);
            }
    } else {
        fail(file, fmt::format("quant_method '{}' is not read (gptq, awq, bitsandbytes, fp8 and compressed-tensors are)", method));
    }
}

// A compressed-tensors target or ignore entry against a module name: "Linear" (every
// linear layer), "re:" + a pattern matched at the start (Python's re.match), or the name.
bool ct_matches(const std::string& entry, const std::string& module) {
    if (entry == "Linear") return true;
    if (entry.starts_with("re:")) {
        try {
            return std::regex_search(module, std::regex(entry.substr(3)), std::regex_constants::match_continuous);
        } catch (const std::regex_error&) {
            return false;
        }
    }
    return entry == module;
}

std::string text_of(const std::filesystem::path& p) {
    const gguf::Mapping m(p);
    return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.bytes().size());
}

}  // namespace

// ---- public -----------------------------------------------------------------------------

float fp8_e4m3_to_f32(uint8_t v) {
    const int sign = v >> 7, e = (v >> 3) & 15, m = v & 7;
    if (e == 15 && m == 7) return std::numeric_limits<float>::quiet_NaN();
    const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
    return sign ? -mag : mag;
}

float fp8_e5m2_to_f32(uint8_t v) {
    const int sign = v >> 7, e = (v >> 2) & 31, m = v & 3;
    float mag;
    if (e == 31) mag = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    else mag = e == 0 ? std::ldexp(static_cast<float>(m), -16) : std::ldexp(1.0f + static_cast<float>(m) / 4.0f, e - 15);
    return sign ? -mag : mag;
}

const std::array<float, 16>& nf4_table() {
    static const std::array<float, 16> t = [] {
        // bitsandbytes' NF4 values, by their F32 bit patterns (spec/hf-quantized.md §3.3).
        constexpr uint32_t bits[16] = {0xBF800000, 0xBF3239B1, 0xBF066B30, 0xBECA32A0, 0xBE91A24D, 0xBE3D353F, 0xBDBA7871, 0x00000000,
                                       0x3DA2FAFF, 0x3E24CAE3, 0x3E7C04DD, 0x3EAD033A, 0x3EE1A4B8, 0x3F1007AB, 0x3F3913B3, 0x3F800000};
        std::array<float, 16> out;
        for (size_t i = 0; i < 16; ++i) out[i] = std::bit_cast<float>(bits[i]);
        return out;
    }();
    return t;
}

const std::array<float, 16>& bnb_fp4_table() {
    static const std::array<float, 16> t = [] {
        // Codes 0-7: {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12; 8-15 their negatives.
        constexpr float raw[8] = {0, 0.0625f, 8, 12, 4, 6, 2, 3};
        std::array<float, 16> out;
        for (size_t i = 0; i < 8; ++i) out[i] = raw[i] / 12.0f, out[i + 8] = -(raw[i] / 12.0f);
        return out;
    }();
    return t;
}

std::string QuantConfig::describe() const {
    switch (method) {
        case QuantMethod::None: return "not quantized";
        case QuantMethod::Gptq:
            return fmt::format("GPTQ {}-bit, {}, {}{}{}", bits, group_size > 0 ? fmt::format("groups of {}", group_size) : "one group per row",
                               sym ? "symmetric" : "asymmetric", desc_act ? ", act-order" : "", gptq_v2 ? " (gptq_v2)" : " (v1 zeros)");
        case QuantMethod::Awq: return fmt::format("AWQ {}-bit {}, groups of {}", bits, awq_version, group_size);
        case QuantMethod::Bitsandbytes: return load_in_8bit ? "bitsandbytes LLM.int8" : "bitsandbytes 4-bit";
        case QuantMethod::Fp8: return block_rows ? fmt::format("FP8, {}x{} block scales", block_rows, block_cols) : "FP8";
        case QuantMethod::CompressedTensors: return fmt::format("compressed-tensors ({})", format.empty() ? "per group" : format);
    }
    return "";
}

QuantConfig read_quant_config(const std::filesystem::path& folder) {
    QuantConfig c;
    simdjson::dom::parser parser;
    simdjson::dom::element root, q;
    const std::filesystem::path config = folder / "config.json", gptq = folder / "quantize_config.json";
    if (std::filesystem::exists(config)) {
        const simdjson::padded_string text(text_of(config));
        if (parser.parse(text).get(root) == simdjson::SUCCESS && root["quantization_config"].get(q) == simdjson::SUCCESS) {
            if (!q.is_object()) fail(config.string(), "quantization_config is not an object");
            c.source = config.string() + ": quantization_config";
            read_quant_fields(q, c);
            return c;
        }
    }
    if (std::filesystem::exists(gptq)) {
        const simdjson::padded_string text(text_of(gptq));
        if (parser.parse(text).get(q) || !q.is_object()) fail(gptq.string(), "not a JSON object");
        c.source = gptq.string();
        read_quant_fields(q, c);
    }
    return c;
}

std::span<const TypeId> lossless_types() {
    static constexpr TypeId kTypes[] = {TypeId::Q3_K, TypeId::Q4_0, TypeId::Q4_K, TypeId::Q4_1, TypeId::Q8_0};
    return kTypes;
}

double QuantizedTensor::bits_per_weight() const {
    uint64_t bytes = 0;
    for (const SafeTensor* t : parts_) bytes += t->data.size();
    return static_cast<double>(bytes) * 8.0 / static_cast<double>(rows_ * cols_);
}

void QuantizedTensor::encode_lossless(TypeId type, uint64_t, std::span<uint8_t>) const {
    throw std::invalid_argument(fmt::format("{}: {} has no lossless {} form", module_, kind_, gguf::type_info(type).name));
}

std::unique_ptr<QuantizedTensor> find_quantized(const Checkpoint& w, const QuantConfig& c, const std::string& module, uint64_t N, uint64_t K,
                                                std::vector<std::string>& used) {
    const auto method_is = [&](const SafeTensor& t, std::initializer_list<QuantMethod> methods, const char* what) {
        if (std::find(methods.begin(), methods.end(), c.method) == methods.end())
            fail_tensor(t, fmt::format("is {}, but {}", what,
                                       c.method == QuantMethod::None ? "config.json has no quantization_config (nor is there a quantize_config.json)"
                                                                     : fmt::format("the folder's quantization is {}", c.describe())));
    };
    // Tensors that only serve activations at run time: read by nobody here.
    for (const char* extra : {"input_scale", "input_zero_point", "activation_scale", "output_scale"}) maybe(w, module, extra, used);
    if (const SafeTensor* qweight = w.find(module + ".qweight")) {
        method_is(*qweight, {QuantMethod::Gptq, QuantMethod::Awq}, "GPTQ/AWQ-packed (qweight)");
        if (c.method == QuantMethod::Gptq) return std::make_unique<GptqTensor>(w, c, module, N, K, used);
        return std::make_unique<AwqTensor>(w, c, module, N, K, used);
    }
    const auto ct_group = [&](const SafeTensor& t, const char* type) -> const CtGroup& {
        for (const std::string& e : c.ignore)
            if (ct_matches(e, module)) fail_tensor(t, fmt::format("is quantized, but the config's ignore list names {}", module));
        // compressed-tensors' precedence: the module's own name, then a "re:" pattern, then a class.
        for (int pass = 0; pass < 3; ++pass)
            for (const CtGroup& g : c.groups)
                if (g.type == type)
                    for (const std::string& target : g.targets) {
                        const int kind = target.starts_with("re:") ? 1 : target == module ? 0 : 2;
                        if (kind == pass && ct_matches(target, module)) return g;
                    }
        fail_tensor(t, fmt::format("is quantized ({}), but no config_groups entry of type {} targets {}", dtype_name(t.dtype), type, module));
    };
    if (const SafeTensor* packed = w.find(module + ".weight_packed")) {
        method_is(*packed, {QuantMethod::CompressedTensors}, "compressed-tensors-packed (weight_packed)");
        return std::make_unique<CtIntTensor>(w, ct_group(*packed, "int"), module, N, K, used);
    }
    const SafeTensor* weight = w.find(module + ".weight");
    if (!weight) return nullptr;
    // The per-tensor quant_state of bitsandbytes 4-bit: exactly one weight.quant_state.* item
    // (its packed weight is U8, or any dtype bnb_4bit_quant_storage names, read as bytes).
    const SafeTensor* state = nullptr;
    for (auto it = w.tensors().lower_bound(weight->name + ".quant_state."); it != w.tensors().end() && it->first.starts_with(weight->name + ".quant_state."); ++it) {
        if (state) fail_tensor(*it->second, fmt::format("a second quant_state for {} (besides {})", weight->name, state->name));
        state = it->second;
    }
    if (state) {
        method_is(*weight, {QuantMethod::Bitsandbytes}, "bitsandbytes 4-bit (it has a quant_state)");
        used.push_back(state->name);
        return std::make_unique<Bnb4Tensor>(w, *weight, *state, N, K, used);
    }
    if (weight->dtype == Dtype::F32 || weight->dtype == Dtype::F16 || weight->dtype == Dtype::BF16) return nullptr;  // dense
    if (weight->dtype == Dtype::F8_E4M3 || weight->dtype == Dtype::F8_E5M2) {
        method_is(*weight, {QuantMethod::Fp8, QuantMethod::CompressedTensors}, fmt::format("{}", dtype_name(weight->dtype)).c_str());
        if (const SafeTensor* inv = maybe(w, module, "weight_scale_inv", used)) {
            const uint32_t br = c.block_rows ? c.block_rows : 128, bc = c.block_cols ? c.block_cols : 128;
            return std::make_unique<Fp8Tensor>(*weight, *inv, N, K, br, bc);
        }
        const SafeTensor* s = maybe(w, module, "weight_scale", used);
        if (!s) fail_tensor(*weight, fmt::format("has no scale ({0}.weight_scale_inv or {0}.weight_scale is missing)", module));
        uint32_t br = c.block_rows, bc = c.block_cols;
        int64_t gs = 0;
        if (c.method == QuantMethod::CompressedTensors) {
            const CtGroup& g = ct_group(*weight, "float");
            br = g.strategy == "block" ? g.block_rows : 0, bc = g.strategy == "block" ? g.block_cols : 0;
            if (g.strategy == "block" && !br) fail_tensor(*weight, fmt::format("strategy block without a block_structure in {}", c.source));
            if (g.strategy == "group") gs = g.group_size;
        }
        if (br && s->shape == std::vector<uint64_t>{ceil_div(N, br), ceil_div(K, bc)}) return std::make_unique<Fp8Tensor>(*weight, *s, N, K, br, bc);
        return std::make_unique<Fp8Tensor>(*weight, *s, N, K, 0, 0, gs);
    }
    if (weight->dtype == Dtype::I8) {
        if (w.find(module + ".SCB")) {
            method_is(*weight, {QuantMethod::Bitsandbytes}, "LLM.int8 (it has SCB)");
            return std::make_unique<Bnb8Tensor>(w, *weight, N, K, used);
        }
        if (c.method == QuantMethod::CompressedTensors) return std::make_unique<CtIntTensor>(w, ct_group(*weight, "int"), module, N, K, used);
        fail_tensor(*weight, fmt::format("is int8 without a scale ({0}.SCB or {0}.weight_scale is missing)", module));
    }
    if (weight->dtype == Dtype::U8 && c.method == QuantMethod::Bitsandbytes)
        fail_tensor(*weight, fmt::format("is bitsandbytes-packed but has no quant_state ({}.quant_state.bitsandbytes__nf4 or __fp4 is missing)", weight->name));
    fail_tensor(*weight, fmt::format("dtype {} is not a weight format that is read (F32, F16, BF16, or a quantized layout with its scales)", dtype_name(weight->dtype)));
}

}  // namespace convert
