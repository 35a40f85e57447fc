// gguf convert on quantized Hugging Face checkpoints (GPTQ, AWQ, bitsandbytes, FP8,
// compressed-tensors), checked against fixtures written from the packing side
// (fixtures/hf_quant.h):
// - each format decodes to exactly the values its formula defines: a quantized folder and its
//   dense twin (the same model with those exact values as F32 weights) convert to GGUF
//   tensors with identical bytes, Q/K permutation and expert stacking included;
// - --outtype lossless picks the GGUF type that holds the values (Q4_0, Q4_K, Q3_K, Q8_0...)
//   and its blocks dequantize to exactly those values; F32 where none does;
// - the second rounding of any other output type is reported per tensor;
// - layouts pinned by hand-made words (the AWQ interleave, GPTQ 3-bit streams, bitsandbytes'
//   nibble order, FP8 codes) independently of the fixture writers;
// - malformed configs and tensors are refused naming the file and tensor.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "convert/compare.h"
#include "convert/convert.h"
#include "convert/hf_quant.h"
#include "convert/safetensors.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "hf_quant.h"
#include "quant/quant.h"
#include "support.h"

namespace {

namespace hf = gguf::fixtures::hf;
using gguf::TypeId;

void write_text(const std::filesystem::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// A one-layer llama (hidden 256, 4 heads of 64, 2 KV heads, feed-forward 512, 64 tokens) whose
// linear layers `quantize` stores quantized, with `quantization_config` in config.json. The
// dense twin holds the exact values as F32 and everything else as the quantized folder has it.
struct Pair {
    std::filesystem::path quantized, dense, original;  // original: the weights before quantization, F32
    std::map<std::string, std::pair<std::vector<float>, std::vector<float>>> linear;  // module -> (original, exact)
};
using Quantizer = std::function<hf::Quantized(const std::string& module, const std::vector<float>& w, uint64_t N, uint64_t K)>;

constexpr uint64_t kHidden = 256, kFf = 512, kVocab = 64, kKv = 128;

Pair make_pair(const std::filesystem::path& root, const std::string& quantization_config, const Quantizer& quantize, uint32_t experts = 0) {
    Pair p{root / "quantized", root / "dense", root / "original", {}};
    std::filesystem::create_directories(p.quantized);
    std::filesystem::create_directories(p.dense);
    std::filesystem::create_directories(p.original);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0, 0.05f);
    std::vector<hf::StTensor> q, d, o;
    const auto random = [&](uint64_t n) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng);
        return v;
    };
    const auto dense = [&](const std::string& name, std::vector<uint64_t> shape, std::vector<float> v) {
        q.push_back(hf::f16_tensor(name, shape, v));
        d.push_back(hf::f16_tensor(name, shape, v));
        o.push_back(hf::f16_tensor(name, shape, v));
    };
    const auto linear = [&](const std::string& module, uint64_t N, uint64_t K) {
        const std::vector<float> w = random(N * K);
        const hf::Quantized made = quantize(module, w, N, K);
        q.insert(q.end(), made.tensors.begin(), made.tensors.end());
        d.push_back(hf::f32_tensor(module + ".weight", {N, K}, made.exact));
        o.push_back(hf::f32_tensor(module + ".weight", {N, K}, w));
        p.linear[module] = {w, made.exact};
    };
    std::vector<float> ones(kHidden, 1.0f);
    dense("model.embed_tokens.weight", {kVocab, kHidden}, random(kVocab * kHidden));
    const std::string l = "model.layers.0.";
    dense(l + "input_layernorm.weight", {kHidden}, ones);
    dense(l + "post_attention_layernorm.weight", {kHidden}, ones);
    linear(l + "self_attn.q_proj", kHidden, kHidden);
    linear(l + "self_attn.k_proj", kKv, kHidden);
    linear(l + "self_attn.v_proj", kKv, kHidden);
    linear(l + "self_attn.o_proj", kHidden, kHidden);
    if (experts) {
        dense(l + "block_sparse_moe.gate.weight", {experts, kHidden}, random(experts * kHidden));
        for (uint32_t e = 0; e < experts; ++e) {
            const std::string x = l + "block_sparse_moe.experts." + std::to_string(e) + ".";
            linear(x + "w1", kFf, kHidden);
            linear(x + "w3", kFf, kHidden);
            linear(x + "w2", kHidden, kFf);
        }
    } else {
        linear(l + "mlp.gate_proj", kFf, kHidden);
        linear(l + "mlp.up_proj", kFf, kHidden);
        linear(l + "mlp.down_proj", kHidden, kFf);
    }
    dense("model.norm.weight", {kHidden}, ones);
    dense("lm_head.weight", {kVocab, kHidden}, random(kVocab * kHidden));
    const std::string config = fmt::format(
        "{{\"architectures\":[\"{}\"],\"vocab_size\":{},\"hidden_size\":{},\"intermediate_size\":{},\"num_hidden_layers\":1,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":64,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0{}",
        experts ? "MixtralForCausalLM" : "LlamaForCausalLM", kVocab, kHidden, kFf,
        experts ? fmt::format(",\"num_local_experts\":{},\"num_experts_per_tok\":2", experts) : "");
    write_text(p.dense / "config.json", config + "}");
    write_text(p.original / "config.json", config + "}");
    hf::write_safetensors(p.original / "model.safetensors", o);
    write_text(p.quantized / "config.json", config + (quantization_config.empty() ? "" : ",\"quantization_config\":" + quantization_config) + "}");
    hf::write_safetensors(p.quantized / "model.safetensors", q);
    hf::write_safetensors(p.dense / "model.safetensors", d);
    return p;
}

std::filesystem::path convert_folder(const std::filesystem::path& folder, const std::string& outtype, std::vector<convert::ImportError>* errors = nullptr,
                                     int threads = 2) {
    const convert::Checkpoint weights = convert::Checkpoint::open(folder);
    convert::ConvertOptions o;
    o.outtype = outtype;
    const convert::Plan plan = convert::plan(folder, weights, o);
    const std::filesystem::path out = folder / ("out-" + outtype + "-" + std::to_string(threads) + ".gguf");
    convert::write(plan, out, {}, threads, {}, errors);
    return out;
}

// Every tensor of `got` has the bytes of the same tensor in `want` (both F32 conversions).
void check_same_tensors(const std::filesystem::path& got, const std::filesystem::path& want) {
    const gguf::File a = gguf::File::open(got), b = gguf::File::open(want);
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (const gguf::TensorInfo& t : b.tensors()) {
        const gguf::TensorInfo* u = a.find_tensor(t.name);
        REQUIRE_MESSAGE(u, t.name);
        CHECK_MESSAGE(u->type == t.type, t.name);
        const std::span<const uint8_t> x = a.tensor_data(*u), y = b.tensor_data(t);
        REQUIRE(x.size() == y.size());
        CHECK_MESSAGE(std::memcmp(x.data(), y.data(), x.size()) == 0, t.name, " differs from the dense twin's");
    }
}

// A quantized folder's F32 conversion equals its dense twin's.
void check_exact(const std::string& config, const Quantizer& quantize, uint32_t experts = 0) {
    test::TempDir dir;
    const Pair p = make_pair(dir.path(), config, quantize, experts);
    check_same_tensors(convert_folder(p.quantized, "f32"), convert_folder(p.dense, "f32"));
}

std::string gptq_config(const hf::Gptq& o) {
    return fmt::format("{{\"quant_method\":\"gptq\",\"bits\":{},\"group_size\":{},\"sym\":{},\"desc_act\":{}{}}}", o.bits, o.group_size, o.sym ? "true" : "false",
                       o.act_order ? "true" : "false", o.v2 ? ",\"checkpoint_format\":\"gptq_v2\"" : "");
}
Quantizer gptq(const hf::Gptq& o) {
    return [o](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::gptq(m, w, N, K, o); };
}
std::string awq_config(int gs, bool gemv) {
    return fmt::format("{{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":{},\"zero_point\":true,\"version\":\"{}\"}}", gs, gemv ? "gemv" : "gemm");
}
Quantizer awq(int gs, bool gemv) {
    return [gs, gemv](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::awq(m, w, N, K, gs, gemv); };
}
const char* kBnb4 = R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"nf4","bnb_4bit_use_double_quant":true})";
const char* kBnb8 = R"({"quant_method":"bitsandbytes","load_in_8bit":true})";
std::string ct_config(const std::string& format, const std::string& type, int bits, bool sym, const std::string& strategy, int gs) {
    return fmt::format(R"({{"quant_method":"compressed-tensors","format":"{}","quantization_status":"compressed","ignore":["lm_head"],)"
                       R"("config_groups":{{"group_0":{{"targets":["Linear"],"weights":{{"num_bits":{},"type":"{}","symmetric":{},"strategy":"{}","group_size":{}}},)"
                       R"("input_activations":null}}}}}})",
                       format, bits, type, sym ? "true" : "false", strategy, gs > 0 ? std::to_string(gs) : "null");
}
Quantizer ct_int(const hf::CtInt& o) {
    return [o](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::ct_int(m, w, N, K, o); };
}

}  // namespace

TEST_CASE("GPTQ imports exactly: 2, 3, 4, 8 bits, symmetric and not, v1 and v2 zeros, act-order, per-channel groups, no g_idx") {
    struct Case {
        hf::Gptq o;
        std::string what;
    };
    const Case cases[] = {
        {{4, 128, true, false, false}, "4-bit g128 sym v1"},
        {{4, 32, false, true, false}, "4-bit g32 asym v2"},
        {{4, 32, false, false, false}, "4-bit g32 asym v1"},
        {{3, 128, true, false, false}, "3-bit g128 sym"},
        {{3, 64, false, true, false}, "3-bit g64 asym v2"},
        {{2, -1, false, false, false}, "2-bit per channel asym v1"},
        {{8, 64, true, false, false}, "8-bit g64 sym"},
        {{8, 128, false, true, false}, "8-bit g128 asym v2"},
        {{4, 64, true, false, true, true, 7}, "4-bit g64 act-order"},
        {{4, 128, true, false, false, false}, "4-bit without g_idx"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        check_exact(gptq_config(c.o), gptq(c.o));
    }
}

TEST_CASE("GPTQ settings come from quantize_config.json when config.json has none") {
    test::TempDir dir;
    const hf::Gptq o{4, 64, true};
    const Pair p = make_pair(dir.path(), "", gptq(o));
    write_text(p.quantized / "quantize_config.json", R"({"bits": 4, "group_size": 64, "sym": true, "desc_act": false})");
    check_same_tensors(convert_folder(p.quantized, "f32"), convert_folder(p.dense, "f32"));
    const convert::QuantConfig c = convert::read_quant_config(p.quantized);
    CHECK(c.method == convert::QuantMethod::Gptq);
    CHECK(c.bits == 4);
    CHECK(c.group_size == 64);
}

TEST_CASE("AWQ imports exactly: GEMM's interleaved packing and GEMV's, with padded zero and scale columns") {
    for (int gs : {32, 64, 128})
        for (bool gemv : {false, true}) {
            CAPTURE(gs);
            CAPTURE(gemv);
            check_exact(awq_config(gs, gemv), awq(gs, gemv));
        }
}

TEST_CASE("bitsandbytes imports exactly: NF4 and FP4, blocks of 64 and 128, with and without double quantization; LLM.int8") {
    for (bool nf4 : {true, false})
        for (int bs : {64, 128})
            for (bool nested : {true, false}) {
                CAPTURE(nf4);
                CAPTURE(bs);
                CAPTURE(nested);
                check_exact(kBnb4, [&](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, nf4, bs, nested); });
            }
    check_exact(kBnb8, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb8(m, w, N, K); });
    // bnb_4bit_quant_storage bfloat16: the packed bytes held in a BF16 tensor of half the length.
    check_exact(kBnb4, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) {
        hf::Quantized q = hf::bnb4(m, w, N, K, true, 64, true);
        q.tensors[0].dtype = "BF16";
        q.tensors[0].shape = {q.tensors[0].bytes.size() / 2, 1};
        return q;
    });
}

TEST_CASE("FP8 imports exactly: E4M3 and E5M2 with 128 x 128 block scales, partial edge blocks, compressed-tensors per-channel and per-tensor scales") {
    check_exact(R"({"quant_method":"fp8","fmt":"e4m3","activation_scheme":"dynamic","weight_block_size":[128,128]})",
                [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128); });
    check_exact(R"({"quant_method":"fp8","weight_block_size":[128,128]})",
                [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128, true); });
    // Blocks of 96: every matrix ends in partial blocks (256 = 2 x 96 + 64).
    check_exact(R"({"quant_method":"fp8","weight_block_size":[96,96]})",
                [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 96); });
    for (bool channel : {true, false}) {
        CAPTURE(channel);
        check_exact(ct_config("float-quantized", "float", 8, true, channel ? "channel" : "tensor", 0),
                    [channel](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::ct_fp8(m, w, N, K, channel); });
    }
}

TEST_CASE("compressed-tensors integers import exactly: pack-quantized int4/int8 symmetric and asymmetric, int8 W8A8 per channel") {
    struct Case {
        hf::CtInt o;
        const char* format;
        const char* strategy;
    };
    const Case cases[] = {
        {{4, true, true, 128}, "pack-quantized", "group"},
        {{4, true, false, 64}, "pack-quantized", "group"},
        {{4, true, true, 0}, "pack-quantized", "channel"},
        {{8, true, true, 32}, "pack-quantized", "group"},
        {{8, false, true, 0}, "int-quantized", "channel"},
        {{8, false, false, 0, false}, "int-quantized", "channel"},
        {{8, false, true, 128}, "naive-quantized", "group"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.o.bits);
        CAPTURE(c.format);
        CAPTURE(c.o.sym);
        CAPTURE(c.o.group_size);
        check_exact(ct_config(c.format, "int", c.o.bits, c.o.sym, c.strategy, c.o.group_size), ct_int(c.o));
    }
}

TEST_CASE("Quantized experts are stacked like dense ones (Mixtral, GPTQ), and take a per-expert importance matrix") {
    const hf::Gptq o{4, 128, true};
    check_exact(gptq_config(o), gptq(o), 4);
    test::TempDir dir;
    const Pair p = make_pair(dir.path(), gptq_config(o), gptq(o), 4);
    quant::ImportanceMatrix imatrix;
    for (const char* name : {"blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight"}) imatrix.set(name, {std::vector<float>(kHidden * 4, 2.0f), std::vector<float>(4, 1.0f)});
    imatrix.set("blk.0.ffn_down_exps.weight", {std::vector<float>(kFf * 4, 2.0f), std::vector<float>(4, 1.0f)});
    const convert::Checkpoint weights = convert::Checkpoint::open(p.quantized);
    convert::ConvertOptions options;
    options.outtype = "Q4_K_M";
    options.imatrix = &imatrix;
    // Expert 1's up weights differ from expert 0's: its rows must be quantized with its own.
    std::vector<float> up(kHidden * 4, 1.0f);
    for (size_t k = 0; k < kHidden; ++k) up[kHidden + k] = k % 2 ? 50.0f : 0.02f;
    imatrix.set("blk.0.ffn_up_exps.weight", {up, std::vector<float>(4, 1.0f)});
    const convert::Plan plan = convert::plan(p.quantized, weights, options);
    size_t weighted = 0;
    for (const convert::TensorPlan& t : plan.tensors) weighted += t.importance != nullptr;
    CHECK(weighted == 3);
    convert::write(plan, dir / "moe.gguf");
    const gguf::File f = gguf::File::open(dir / "moe.gguf");
    const gguf::TensorInfo* t = f.find_tensor("blk.0.ffn_up_exps.weight");
    REQUIRE(t);
    const uint64_t row_bytes = quant::row_bytes(t->type, kHidden);
    const std::vector<float>& exact = p.linear.at("model.layers.0.block_sparse_moe.experts.1.w3").second;  // expert 1, row 0
    std::vector<uint8_t> own(row_bytes), other(row_bytes);
    quant::quantize(t->type, std::span<const float>(exact.data(), kHidden), kHidden, std::span<const float>(up).subspan(kHidden, kHidden), own);
    quant::quantize(t->type, std::span<const float>(exact.data(), kHidden), kHidden, std::span<const float>(up).subspan(0, kHidden), other);
    REQUIRE(own != other);  // the weights matter for this row
    const std::span<const uint8_t> written = f.tensor_data(*t).subspan(kFf * row_bytes, row_bytes);  // expert 1's first row
    CHECK(std::equal(written.begin(), written.end(), own.begin()));
}

TEST_CASE("--outtype lossless writes the GGUF type that holds the imported values, from the codes, and F32 where none does") {
    struct Case {
        std::string config;
        Quantizer quantize;
        TypeId want;
        std::string what;
    };
    const std::vector<Case> cases = {
        {gptq_config({4, 128, true}), gptq({4, 128, true}), TypeId::Q4_0, "GPTQ 4-bit sym g128 -> Q4_0"},
        {gptq_config({4, 32, true, true}), gptq({4, 32, true, true}), TypeId::Q4_0, "GPTQ 4-bit sym v2 g32 -> Q4_0"},
        {gptq_config({4, 256, false, true}), gptq({4, 256, false, true}), TypeId::Q4_K, "GPTQ 4-bit asym g256 -> Q4_K"},
        {gptq_config({4, -1, false, false}), gptq({4, -1, false, false}), TypeId::Q4_K, "GPTQ 4-bit asym per channel -> Q4_K"},
        {gptq_config({3, 256, true}), gptq({3, 256, true}), TypeId::Q3_K, "GPTQ 3-bit sym g256 -> Q3_K"},
        {gptq_config({3, 128, true}), gptq({3, 128, true}), TypeId::Q4_0, "GPTQ 3-bit sym g128 -> Q4_0"},
        {gptq_config({2, 256, false, true}), gptq({2, 256, false, true}), TypeId::Q3_K, "GPTQ 2-bit asym g256 -> Q3_K"},
        {gptq_config({8, 128, true}), gptq({8, 128, true}), TypeId::Q8_0, "GPTQ 8-bit sym -> Q8_0"},
        {gptq_config({4, 32, false, true}), gptq({4, 32, false, true, false, true, 1, true}), TypeId::Q4_1, "GPTQ 4-bit asym g32, power-of-two scales -> Q4_1"},
        {gptq_config({4, 64, true, false, true, true, 3}), gptq({4, 64, true, false, true, true, 3}), TypeId::F32, "GPTQ act-order -> F32"},
        {gptq_config({4, 32, false, true}), gptq({4, 32, false, true}), TypeId::Q8_0, "GPTQ 4-bit asym g32 (zero x scale not in F16: no Q4_1) -> Q8_0"},
        {awq_config(-1, false), awq(-1, false), TypeId::Q4_K, "AWQ per channel -> Q4_K"},
        {ct_config("pack-quantized", "int", 4, true, "group", 128), ct_int({4, true, true, 128}), TypeId::Q4_0, "compressed-tensors int4 sym -> Q4_0"},
        {ct_config("int-quantized", "int", 8, true, "channel", 0), ct_int({8, false, true, 0}), TypeId::Q8_0, "compressed-tensors int8 channel -> Q8_0"},
        {kBnb4, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, true); }, TypeId::F32,
         "NF4 -> F32"},
        {R"({"quant_method":"fp8","weight_block_size":[128,128]})",
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128); }, TypeId::F32, "FP8 -> F32"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        test::TempDir dir;
        const Pair p = make_pair(dir.path(), c.config, c.quantize);
        std::vector<convert::ImportError> errors;
        const gguf::File got = gguf::File::open(convert_folder(p.quantized, "lossless", &errors));
        const gguf::File want = gguf::File::open(convert_folder(p.dense, "f32"));
        REQUIRE(errors.size() == 7);
        for (const convert::ImportError& e : errors) {
            CAPTURE(e.name);
            CHECK(e.type == c.want);
            CHECK(e.exact == (c.want != TypeId::F32));
            CHECK(e.rmse == 0);
            CHECK(e.max_abs == 0);
            // The written blocks, dequantized, are the dense twin's values bit for bit.
            const gguf::TensorInfo* t = got.find_tensor(e.name);
            const gguf::TensorInfo* u = want.find_tensor(e.name);
            REQUIRE(t);
            REQUIRE(u);
            CHECK(t->type == c.want);
            std::vector<float> values(static_cast<size_t>(t->n_elements));
            quant::dequantize(t->type, got.tensor_data(*t), values);
            const std::span<const uint8_t> raw = want.tensor_data(*u);
            std::vector<float> exact(values.size());
            std::memcpy(exact.data(), raw.data(), raw.size());
            std::string first;
            CHECK_MESSAGE(test::bit_mismatches(values, exact, first) == 0, first);
        }
        // Dense tensors keep their type (F16 here); norms stay F32.
        CHECK(got.find_tensor("token_embd.weight")->type == TypeId::F16);
        CHECK(got.find_tensor("output_norm.weight")->type == TypeId::F32);
    }
}

TEST_CASE("The second rounding of another output type is measured per tensor, the same for every thread count") {
    test::TempDir dir;
    const Pair p = make_pair(dir.path(), gptq_config({4, 128, false, true}), gptq({4, 128, false, true}));
    std::vector<convert::ImportError> one, two;
    convert_folder(p.quantized, "Q4_K_M", &one, 1);
    convert_folder(p.quantized, "Q4_K_M", &two, 2);
    REQUIRE(one.size() == 7);
    REQUIRE(two.size() == 7);
    for (size_t i = 0; i < one.size(); ++i) {
        CAPTURE(one[i].name);
        CHECK(!one[i].exact);
        CHECK(one[i].rmse > 0);
        CHECK(one[i].rmse < one[i].rms);  // a 4-to-5-bit requantization loses far less than the signal
        CHECK(one[i].values > 0);
        CHECK(one[i].kind.starts_with("GPTQ 4-bit g128"));
        CHECK(one[i].rmse == two[i].rmse);
        CHECK(one[i].max_abs == two[i].max_abs);
    }
    // Against the dense twin: the RMSE reported is the one between the written file and the exact values.
    const gguf::File got = gguf::File::open(p.quantized / "out-Q4_K_M-1.gguf");
    const gguf::File exact = gguf::File::open(convert_folder(p.dense, "f32"));
    const gguf::TensorInfo* t = got.find_tensor(one[0].name);
    std::vector<float> values(static_cast<size_t>(t->n_elements)), want(values.size());
    quant::dequantize(t->type, got.tensor_data(*t), values);
    std::memcpy(want.data(), exact.tensor_data(*exact.find_tensor(one[0].name)).data(), want.size() * 4);
    double squared = 0;
    for (size_t i = 0; i < values.size(); ++i) squared += (static_cast<double>(values[i]) - want[i]) * (static_cast<double>(values[i]) - want[i]);
    CHECK(std::sqrt(squared / static_cast<double>(values.size())) == doctest::Approx(one[0].rmse).epsilon(1e-12));
}

// ---- Layouts pinned by hand -------------------------------------------------------------------

namespace {

hf::StTensor words(const std::string& name, std::vector<uint64_t> shape, std::vector<uint32_t> w) {
    hf::StTensor t{name, "I32", std::move(shape), {}};
    for (uint32_t x : w)
        for (int i = 0; i < 4; ++i) t.bytes.push_back(static_cast<uint8_t>(x >> (8 * i)));
    return t;
}

struct Opened {
    test::TempDir dir;
    std::unique_ptr<convert::Checkpoint> weights;
    std::vector<std::string> used;
    std::unique_ptr<convert::QuantizedTensor> find(const convert::QuantConfig& c, uint64_t N, uint64_t K) {
        return convert::find_quantized(*weights, c, "m", N, K, used);
    }
};
std::unique_ptr<Opened> open(const std::vector<hf::StTensor>& tensors) {
    auto o = std::make_unique<Opened>();
    hf::write_safetensors(o->dir / "model.safetensors", tensors);
    o->weights = std::make_unique<convert::Checkpoint>(convert::Checkpoint::open(o->dir.path()));
    return o;
}
std::vector<float> decode_all(const convert::QuantizedTensor& t) {
    std::vector<float> v(t.rows() * t.cols());
    t.decode(0, t.rows(), v.data());
    return v;
}

}  // namespace

TEST_CASE("AWQ GEMM: field j of a word holds output 8c + {0,2,4,6,1,3,5,7}[j]") {
    // One input row, 8 outputs, scale 1 and zero 0: the word 0x76543210 gives codes by field.
    auto o = open({words("m.qweight", {1, 1}, {0x76543210u}), words("m.qzeros", {1, 1}, {0}), hf::f16_tensor("m.scales", {1, 8}, std::vector<float>(8, 1.0f))});
    convert::QuantConfig c;
    c.method = convert::QuantMethod::Awq, c.bits = 4, c.group_size = 1, c.awq_version = "gemm";
    const auto t = o->find(c, 8, 1);
    REQUIRE(t);
    CHECK(decode_all(*t) == std::vector<float>{0, 4, 1, 5, 2, 6, 3, 7});
}

TEST_CASE("GPTQ 3-bit: 32 codes fill three words as one stream; v1 zeros are stored minus one") {
    // Codes k = 0..31 of one output, code k = k % 8; zero stored 3 (v1: 4), scale 0.5.
    std::vector<uint32_t> w(3, 0);
    for (uint32_t k = 0; k < 32; ++k)
        for (uint32_t i = 0; i < 3; ++i)
            if ((k % 8) >> i & 1) w[(3 * k + i) / 32] |= 1u << ((3 * k + i) % 32);
    CHECK(w[0] == 0x88fac688u);  // codes 0..9 and the low two bits of code 10, by hand: 0 1 2 3 4 5 6 7 0 1 | 2
    // 32 outputs (a zero row is a 96-bit stream too): output 0's zero is 3.
    std::vector<hf::StTensor> t = {words("m.qweight", {3, 32}, {}), words("m.qzeros", {1, 3}, {3, 0, 0}), hf::f16_tensor("m.scales", {1, 32}, std::vector<float>(32, 0.5f))};
    t[0].bytes.assign(3 * 32 * 4, 0);
    for (int i = 0; i < 3; ++i) std::memcpy(t[0].bytes.data() + i * 32 * 4, &w[static_cast<size_t>(i)], 4);  // column 0 of each word row
    auto o = open(t);
    convert::QuantConfig c;
    c.method = convert::QuantMethod::Gptq, c.bits = 3, c.group_size = -1;
    const auto q = o->find(c, 32, 32);
    REQUIRE(q);
    std::vector<float> row(32);
    q->decode(0, 1, row.data());
    for (int k = 0; k < 32; ++k) CHECK(row[static_cast<size_t>(k)] == 0.5f * static_cast<float>(k % 8 - 4));
}

TEST_CASE("Lossless Q4_K needs positive scales: a zero scale (s (q - z) = -0 below the zero point) falls back to Q8_0, exactly") {
    // K = 256 in one group per row, 8 rows; zeros 3 (so neither Q3_K nor Q4_0 fit); codes 0..15.
    std::vector<uint32_t> q(256 / 8 * 8);
    for (size_t i = 0; i < q.size(); ++i) q[i] = 0x76543210u + static_cast<uint32_t>(i % 8) * 0x11111111u % 0x88888888u;
    for (float first_scale : {0.5f, 0.0f}) {
        CAPTURE(first_scale);
        std::vector<float> scales(8, 0.25f);
        scales[0] = first_scale;
        auto o = open({words("m.qweight", {32, 8}, q), words("m.qzeros", {1, 1}, {0x22222222u}), hf::f16_tensor("m.scales", {1, 8}, scales)});
        convert::QuantConfig c;
        c.method = convert::QuantMethod::Gptq, c.bits = 4, c.group_size = -1, c.sym = false;
        const auto t = o->find(c, 8, 256);
        REQUIRE(t);
        const std::optional<TypeId> type = t->lossless_type();
        REQUIRE(type);
        CHECK(*type == (first_scale > 0 ? TypeId::Q4_K : TypeId::Q8_0));
        for (uint64_t n = 0; n < 8; ++n) {
            std::vector<float> exact(256), back(256);
            t->decode(n, 1, exact.data());
            std::vector<uint8_t> bytes(quant::row_bytes(*type, 256));
            t->encode_lossless(*type, n, bytes);
            quant::dequantize(*type, bytes, back);
            std::string first;
            CHECK_MESSAGE(test::bit_mismatches(back, exact, first) == 0, first);
        }
    }
}

TEST_CASE("bitsandbytes 4-bit: element 2i is the high nibble of byte i; NF4 and FP4 tables as published") {
    CHECK(convert::nf4_table()[0] == -1.0f);
    CHECK(convert::nf4_table()[7] == 0.0f);
    CHECK(convert::nf4_table()[8] == 0.07958029955625534f);
    CHECK(convert::nf4_table()[15] == 1.0f);
    CHECK(convert::bnb_fp4_table()[3] == 1.0f);
    CHECK(convert::bnb_fp4_table()[1] == 0.0625f / 12);
    CHECK(convert::bnb_fp4_table()[9] == -0.0625f / 12);
    std::vector<float> map(16);
    for (int i = 0; i < 16; ++i) map[static_cast<size_t>(i)] = static_cast<float>(i);
    const std::string state = R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [1, 4]})";
    auto o = open({hf::StTensor{"m.weight", "U8", {2, 1}, {0xAB, 0x12}}, hf::f32_tensor("m.weight.absmax", {1}, {2.0f}), hf::f32_tensor("m.weight.quant_map", {16}, map),
                   hf::StTensor{"m.weight.quant_state.bitsandbytes__nf4", "U8", {state.size()}, std::vector<uint8_t>(state.begin(), state.end())}});
    convert::QuantConfig c;
    c.method = convert::QuantMethod::Bitsandbytes;
    const auto t = o->find(c, 1, 4);
    REQUIRE(t);
    CHECK(decode_all(*t) == std::vector<float>{20, 22, 2, 4});  // codes A B 1 2, times absmax 2
}

TEST_CASE("FP8 codes: E4M3 has no infinity and 448 at 0x7E; E5M2 has infinities; subnormals") {
    CHECK(convert::fp8_e4m3_to_f32(0x7E) == 448.0f);
    CHECK(convert::fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
    CHECK(convert::fp8_e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));
    CHECK(convert::fp8_e4m3_to_f32(0xB8) == -1.0f);
    CHECK(std::isnan(convert::fp8_e4m3_to_f32(0x7F)));
    CHECK(std::isnan(convert::fp8_e4m3_to_f32(0xFF)));
    CHECK(convert::fp8_e4m3_to_f32(0x78) == 256.0f);
    CHECK(convert::fp8_e5m2_to_f32(0x7B) == 57344.0f);
    CHECK(std::isinf(convert::fp8_e5m2_to_f32(0x7C)));
    CHECK(std::isnan(convert::fp8_e5m2_to_f32(0x7D)));
    CHECK(convert::fp8_e5m2_to_f32(0x01) == std::ldexp(1.0f, -16));
    CHECK(convert::fp8_e5m2_to_f32(0x3C) == 1.0f);
    for (int c = 0; c < 256; ++c) {
        CAPTURE(c);
        const float a = convert::fp8_e4m3_to_f32(static_cast<uint8_t>(c)), b = hf::e4m3_value(static_cast<uint8_t>(c));
        CHECK((a == b || (std::isnan(a) && std::isnan(b))));
        const float x = convert::fp8_e5m2_to_f32(static_cast<uint8_t>(c)), y = hf::e5m2_value(static_cast<uint8_t>(c));
        CHECK((x == y || (std::isnan(x) && std::isnan(y))));
    }
}

// ---- Refusals -----------------------------------------------------------------------------

namespace {

std::string convert_error(const std::filesystem::path& folder) {
    try {
        convert_folder(folder, "f32");
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// The quantized folder with one tensor's entry dropped or replaced.
void rewrite(const std::filesystem::path& folder, const std::function<void(std::vector<hf::StTensor>&)>& edit, const Quantizer& quantize, const std::string& config) {
    test::TempDir scratch;
    const Pair p = make_pair(scratch.path(), config, quantize);
    (void)p;
    std::filesystem::remove_all(folder);
    std::filesystem::copy(scratch.path() / "quantized", folder, std::filesystem::copy_options::recursive);
    // Re-read the tensors by writing them again from the fixture, with the edit applied.
    std::vector<hf::StTensor> tensors;
    const convert::SafetensorsFile f = convert::SafetensorsFile::open(folder / "model.safetensors");
    for (const convert::SafeTensor& t : f.tensors())
        tensors.push_back(hf::StTensor{t.name, std::string(convert::dtype_name(t.dtype)), t.shape, std::vector<uint8_t>(t.data.begin(), t.data.end())});
    edit(tensors);
    hf::write_safetensors(folder / "model.safetensors.new", tensors);
    std::filesystem::rename(folder / "model.safetensors.new", folder / "model.safetensors");
}

void drop(std::vector<hf::StTensor>& t, const std::string& name) {
    const auto it = std::find_if(t.begin(), t.end(), [&](const hf::StTensor& x) { return x.name == name; });
    REQUIRE_MESSAGE(it != t.end(), name);
    t.erase(it);
}

}  // namespace

TEST_CASE("Refused with the file and tensor named: a missing scale or zero point, unsupported bits, shapes that disagree, no config") {
    test::TempDir dir;
    const std::filesystem::path f = dir / "model";
    const std::string q = "model.layers.0.self_attn.q_proj";
    const hf::Gptq g4{4, 128, true};
    struct Case {
        std::string what;
        std::function<void(std::vector<hf::StTensor>&)> edit;
        Quantizer quantize;
        std::string config;
        std::vector<std::string> expect;  // pieces of the message
    };
    const std::vector<Case> cases = {
        {"GPTQ without scales", [&](auto& t) { drop(t, q + ".scales"); }, gptq(g4), gptq_config(g4), {q + ".scales is missing", "group scales"}},
        {"GPTQ without zeros", [&](auto& t) { drop(t, q + ".qzeros"); }, gptq(g4), gptq_config(g4), {q + ".qzeros is missing"}},
        {"GPTQ qweight of the wrong height", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".qweight") x.shape[0] = 24, x.bytes.resize(24 * 256 * 4);
         },
         gptq(g4), gptq_config(g4), {"tensor " + q + ".qweight", "3-bit codes, the config says bits 4"}},
        {"GPTQ scales for the wrong groups", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".scales") x.shape[0] = 1, x.bytes.resize(256 * 2);
         },
         gptq(g4), gptq_config(g4), {"tensor " + q + ".scales", "1 groups, but 256 inputs in groups of 128 make 2"}},
        {"GPTQ g_idx past the groups", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".g_idx") x.bytes[4 * 10] = 9;
         },
         gptq(g4), gptq_config(g4), {"tensor " + q + ".g_idx", "input channel 10 falls in group 9"}},
        {"bits 5", [](auto&) {}, gptq(g4), R"({"quant_method":"gptq","bits":5,"group_size":128})", {"config.json: quantization_config", "GPTQ bits 5 is not supported"}},
        {"an unknown method", [](auto&) {}, gptq(g4), R"({"quant_method":"hqq"})", {"quant_method 'hqq' is not read"}},
        {"AWQ gemv_fast", [](auto&) {}, awq(128, false), R"({"quant_method":"awq","bits":4,"group_size":128,"version":"gemv_fast"})", {"AWQ version 'gemv_fast' is not read"}},
        {"qweight without a config", [](auto&) {}, gptq(g4), "", {"tensor " + q + ".qweight", "no quantization_config"}},
        {"NF4 without its quant_state", [&](auto& t) { drop(t, q + ".weight.quant_state.bitsandbytes__nf4"); },
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, false); }, kBnb4,
         {"tensor " + q + ".weight", "no quant_state"}},
        {"NF4 absmax of the wrong length", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".weight.absmax") x.shape[0] = 3, x.bytes.resize(12);
         },
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, false); }, kBnb4,
         {"tensor " + q + ".weight.absmax", "shape [3], expected [1024]"}},
        {"FP8 without a scale", [&](auto& t) { drop(t, q + ".weight_scale_inv"); },
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128); },
         R"({"quant_method":"fp8","weight_block_size":[128,128]})", {"tensor " + q + ".weight", "has no scale"}},
        {"LLM.int8 tiled", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".weight_format") x.bytes[0] = 1;
         },
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb8(m, w, N, K); }, kBnb8,
         {"tensor " + q + ".weight_format", "tiled layout"}},
        {"compressed-tensors asymmetric without a zero point", [&](auto& t) { drop(t, q + ".weight_zero_point"); }, ct_int({4, true, false, 128}),
         ct_config("pack-quantized", "int", 4, false, "group", 128), {"tensor " + q + ".weight_packed", "weight_zero_point is missing"}},
        {"compressed-tensors without a scale", [&](auto& t) { drop(t, q + ".weight_scale"); }, ct_int({4, true, true, 128}),
         ct_config("pack-quantized", "int", 4, true, "group", 128), {"tensor " + q + ".weight_packed", "has no scale"}},
        {"compressed-tensors num_bits 3", [](auto&) {}, ct_int({4, true, true, 128}), ct_config("pack-quantized", "int", 3, true, "group", 128),
         {"int num_bits 3 is not supported"}},
        {"compressed-tensors weight_shape that disagrees", [&](auto& t) {
             for (auto& x : t)
                 if (x.name == q + ".weight_shape") x.bytes[0] = 255;
         },
         ct_int({4, true, true, 128}), ct_config("pack-quantized", "int", 4, true, "group", 128), {"tensor " + q + ".weight_shape", "says [511, 256]"}},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        rewrite(f, c.edit, c.quantize, c.config);
        const std::string message = convert_error(f);
        REQUIRE_MESSAGE(!message.empty(), "converted without an error");
        for (const std::string& piece : c.expect) CHECK_MESSAGE(message.find(piece) != std::string::npos, message);
    }
}

TEST_CASE("gguf convert on a quantized folder: says what it is, writes lossless blocks or reports the second rounding, and the file checks") {
    test::TempDir dir;
    const Pair p = make_pair(dir.path(), gptq_config({4, 128, true}), gptq({4, 128, true}));
    const std::string lossless = (dir / "lossless.gguf").string(), mixed = (dir / "q4km.gguf").string();
    test::RunResult r = test::run_gguf("convert " + p.quantized.string() + " -o " + lossless + " --outtype lossless");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.find("quantized checkpoint: GPTQ 4-bit, groups of 128, symmetric (v1 zeros); 7 layers decoded exactly; lossless GGUF forms: 7 x q4_0") != std::string::npos);
    CHECK(r.err.find("blk.0.attn_q.weight") != std::string::npos);
    CHECK(r.err.find("-> q4_0  exact (blocks written from the codes)") != std::string::npos);
    r = test::run_gguf("check " + lossless);
    CHECK_MESSAGE(r.exit_code == 0, r.out, r.err);
    r = test::run_gguf("convert " + p.quantized.string() + " -o " + mixed + " --outtype Q4_K_M");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.find("(--outtype lossless writes them without a second rounding)") != std::string::npos);
    CHECK(r.err.find("second rounding: RMSE") != std::string::npos);
    r = test::run_gguf("convert " + p.quantized.string() + " --dry-run");
    CHECK(r.out.find("(GPTQ 4-bit g128)") != std::string::npos);
}

// ---- compare-methods ------------------------------------------------------------------------

namespace {

// RMSE and bits of the fixture's exact values against the original weights, over the linear layers.
struct Expected {
    double error = 0, signal = 0, bits = 0;
    uint64_t values = 0;
};
Expected expected_of(const Pair& p, const std::filesystem::path& safetensors) {
    Expected e;
    for (const auto& [module, values] : p.linear)
        for (size_t i = 0; i < values.first.size(); ++i) {
            const double d = static_cast<double>(values.second[i]) - values.first[i];
            e.error += d * d, e.signal += static_cast<double>(values.first[i]) * values.first[i];
            ++e.values;
        }
    // Stored bits: every tensor of the quantized folder but the dense F16 weights (embeddings,
    // norms, output), scales and zeros included.
    const convert::SafetensorsFile f = convert::SafetensorsFile::open(safetensors);
    for (const convert::SafeTensor& t : f.tensors())
        if (!(t.dtype == convert::Dtype::F16 && t.name.ends_with(".weight"))) e.bits += static_cast<double>(t.data.size()) * 8;
    return e;
}

}  // namespace

TEST_CASE("compare-methods: each version's figures against the original, GGUF types applied here, the same for every thread count") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "gptq", gptq_config({4, 128, true}), gptq({4, 128, true}));
    const Pair n = make_pair(dir / "nf4", kBnb4, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, true); });
    // The same random weights in both (one generator, one order).
    REQUIRE(g.linear.begin()->second.first == n.linear.begin()->second.first);
    const auto original = convert::WeightSource::open(g.original);
    const auto gptq_folder = convert::WeightSource::open(g.quantized), nf4_folder = convert::WeightSource::open(n.quantized);
    // The GPTQ folder written losslessly as GGUF (Q4_0): the same values, so the same figures.
    const auto lossless = convert::WeightSource::open(convert_folder(g.quantized, "lossless"));
    convert::CompareOptions o;
    o.types = {TypeId::Q4_K, TypeId::IQ4_XS};
    o.threads = 1;
    const convert::Comparison one = convert::compare_methods(*original, {gptq_folder.get(), nf4_folder.get(), lossless.get()}, o);
    o.threads = 2;
    const convert::Comparison two = convert::compare_methods(*original, {gptq_folder.get(), nf4_folder.get(), lossless.get()}, o);
    CHECK(one.tensors.size() == 7);  // the linear layers: the embeddings and the output are F16 in both folders
    REQUIRE(one.methods.size() == 5);
    for (size_t m = 0; m < 5; ++m) {
        CAPTURE(one.methods[m].name);
        CHECK(one.methods[m].total.sum_sq_error == two.methods[m].total.sum_sq_error);
        CHECK(one.methods[m].total.values == one.methods[0].total.values);
    }
    for (const auto& [pair, m] : {std::pair{&g, 0}, std::pair{&n, 1}}) {
        const Expected e = expected_of(*pair, pair->quantized / "model.safetensors");
        const convert::MethodStats& s = one.methods[static_cast<size_t>(m)].total;
        CAPTURE(one.methods[static_cast<size_t>(m)].kind);
        CHECK(s.values == e.values);
        CHECK(s.rmse() == doctest::Approx(std::sqrt(e.error / static_cast<double>(e.values))).epsilon(1e-12));
        CHECK(s.snr_db() == doctest::Approx(10 * std::log10(e.signal / e.error)).epsilon(1e-12));
        CHECK(s.bits_per_weight() == doctest::Approx(e.bits / static_cast<double>(e.values)).epsilon(1e-12));
        CHECK(std::isnan(s.weighted_rmse()));  // no imatrix
    }
    CHECK(one.methods[0].kind == "GPTQ 4-bit, groups of 128, symmetric (v1 zeros)");
    // The original as a GGUF file (converted to F32) gives the same figures as the folder.
    const auto original_gguf = convert::WeightSource::open(convert_folder(g.original, "f32"));
    o.types.clear();
    const convert::Comparison from_gguf = convert::compare_methods(*original_gguf, {gptq_folder.get()}, o);
    CHECK(from_gguf.tensors == one.tensors);
    CHECK(from_gguf.methods[0].total.sum_sq_error == one.methods[0].total.sum_sq_error);
    CHECK(from_gguf.methods[0].total.sum_sq_signal == one.methods[0].total.sum_sq_signal);
    // The lossless GGUF holds the GPTQ values: identical errors; its bits are Q4_0's.
    CHECK(one.methods[2].total.sum_sq_error == one.methods[0].total.sum_sq_error);
    CHECK(one.methods[2].total.bits_per_weight() == 4.5);
    // Q4_K applied here: each row rounded as quant::quantize does, measured the same way.
    double error = 0;
    uint64_t values = 0;
    for (const auto& [module, v] : g.linear) {
        const uint64_t K = module.ends_with("down_proj") ? kFf : kHidden, N = v.first.size() / K;
        std::vector<uint8_t> packed(quant::row_bytes(TypeId::Q4_K, static_cast<int64_t>(K)));
        std::vector<float> back(K);
        for (uint64_t r = 0; r < N; ++r) {
            const std::span<const float> row(v.first.data() + r * K, K);
            quant::quantize(TypeId::Q4_K, row, static_cast<int64_t>(K), {}, packed);
            quant::dequantize(TypeId::Q4_K, packed, back);
            for (uint64_t k = 0; k < K; ++k) error += (static_cast<double>(back[k]) - row[k]) * (static_cast<double>(back[k]) - row[k]);
            values += K;
        }
    }
    CHECK(one.methods[3].name == "q4_K");
    CHECK(one.methods[3].simulated);
    CHECK(one.methods[3].total.rmse() == doctest::Approx(std::sqrt(error / static_cast<double>(values))).epsilon(1e-12));
    CHECK(one.methods[3].total.bits_per_weight() == 4.5);
    CHECK(one.methods[4].total.bits_per_weight() == 4.25);
    // Per tensor: present for every method, summing to the total.
    for (const auto& m : one.methods) {
        double sum = 0;
        for (const auto& t : m.per_tensor) {
            REQUIRE(t.has_value());
            sum += t->sum_sq_error;
        }
        CHECK(sum == doctest::Approx(m.total.sum_sq_error).epsilon(1e-12));
    }
}

TEST_CASE("compare-methods on stacked experts weighs each expert's rows with its own importance") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "moe", gptq_config({4, 128, true}), gptq({4, 128, true}), 2);
    const auto original = convert::WeightSource::open(g.original), version = convert::WeightSource::open(g.quantized);
    quant::ImportanceMatrix imatrix;
    std::vector<float> sums(kHidden * 2);
    for (size_t i = 0; i < sums.size(); ++i) sums[i] = i < kHidden ? 1.0f + static_cast<float>(i % 5) : 100.0f * static_cast<float>(1 + i % 3);
    imatrix.set("blk.0.ffn_gate_exps.weight", {sums, {1.0f, 1.0f}});
    convert::CompareOptions o;
    o.imatrix = &imatrix;
    o.tensors.emplace("ffn_gate_exps");
    const convert::Comparison c = convert::compare_methods(*original, {version.get()}, o);
    REQUIRE(c.tensors.size() == 1);
    double num = 0, den = 0;
    for (int e = 0; e < 2; ++e) {
        const auto& [w, exact] = g.linear.at("model.layers.0.block_sparse_moe.experts." + std::to_string(e) + ".w1");
        for (size_t i = 0; i < w.size(); ++i) {
            const double weight = sums[static_cast<size_t>(e) * kHidden + i % kHidden], d = static_cast<double>(exact[i]) - w[i];
            num += weight * d * d, den += weight;
        }
    }
    CHECK(c.methods[0].total.weighted_rmse() == doctest::Approx(std::sqrt(num / den)).epsilon(1e-12));
    CHECK(c.methods[0].tensors == 1);
}

TEST_CASE("compare-methods: a type applied to no tensor is shown as unmeasured, not as exact") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "gptq", gptq_config({4, 128, true}), gptq({4, 128, true}));
    const auto original = convert::WeightSource::open(g.original), version = convert::WeightSource::open(g.quantized);
    convert::CompareOptions o;
    o.types = {TypeId::IQ2_XXS};  // needs importance weights; none given
    const convert::Comparison c = convert::compare_methods(*original, {version.get()}, o);
    CHECK(c.methods[1].tensors == 0);
    CHECK(c.methods[1].total.values == 0);
    CHECK(c.skipped.size() == 7);
    CHECK(c.skipped[0].second == "iq2_xxs needs importance weights (--imatrix)");
    const test::RunResult r = test::run_gguf("compare-methods " + g.original.string() + " " + g.quantized.string() + " --types iq2_xxs --json");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE(parser.parse(r.out).get(root) == simdjson::SUCCESS);
    CHECK(root["methods"].at(1)["total"]["rmse"].is_null());
    CHECK(root["methods"].at(1)["total"]["snr_db"].is_null());
    CHECK(uint64_t(root["methods"].at(1)["tensors"]) == 0);
    const test::RunResult text = test::run_gguf("compare-methods " + g.original.string() + " " + g.quantized.string() + " --types iq2_xxs");
    CHECK(text.out.find("(0 of 7 tensors)") != std::string::npos);
    CHECK(text.out.find("exact") == std::string::npos);
}

TEST_CASE("compare-methods: importance-weighted RMSE with an imatrix, and the types round with its weights") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "gptq", gptq_config({4, 128, true}), gptq({4, 128, true}));
    const auto original = convert::WeightSource::open(g.original), version = convert::WeightSource::open(g.quantized);
    quant::ImportanceMatrix imatrix;
    // Column weights 1 except the first column of each row weighted 1000 (one entry per matrix).
    for (const convert::WeightSource::Tensor& t : original->tensors()) {
        if (t.shape.size() < 2) continue;
        std::vector<float> sums(t.shape[0], 1.0f);
        sums[0] = 1000;
        imatrix.set(t.name, {sums, {1.0f}});
    }
    convert::CompareOptions o;
    o.imatrix = &imatrix;
    o.types = {TypeId::IQ4_XS};
    o.tensors.emplace("attn_v");
    const convert::Comparison c = convert::compare_methods(*original, {version.get()}, o);
    REQUIRE(c.tensors == std::vector<std::string>{"blk.0.attn_v.weight"});
    // By hand: sum over rows and columns of w (x - y)^2 / sum of w.
    const auto& [w, exact] = g.linear.at("model.layers.0.self_attn.v_proj");
    double num = 0, den = 0;
    for (size_t i = 0; i < w.size(); ++i) {
        const double weight = i % kHidden == 0 ? 1000 : 1, d = static_cast<double>(exact[i]) - w[i];
        num += weight * d * d, den += weight;
    }
    CHECK(c.methods[0].total.weighted_rmse() == doctest::Approx(std::sqrt(num / den)).epsilon(1e-12));
    CHECK(std::fabs(c.methods[0].total.weighted_rmse() - c.methods[0].total.rmse()) > 1e-3 * c.methods[0].total.rmse());
    CHECK(!std::isnan(c.methods[1].total.weighted_rmse()));
}

TEST_CASE("compare-methods refuses a version without a tensor, or with another shape, naming it") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "gptq", gptq_config({4, 128, true}), gptq({4, 128, true}));
    const auto original = convert::WeightSource::open(g.original);
    // GGUF files holding only blk.0.attn_q.weight, of the right shape and of another.
    const auto one_tensor = [&](const std::string& name, std::vector<uint64_t> shape) {
        const std::vector<uint8_t> zeros(shape[0] * shape[1] * 4, 0);
        gguf::Writer w;
        w.set("general.architecture", gguf::OwnedValue::string("llama"));
        w.add_tensor("blk.0.attn_q.weight", TypeId::F32, shape, zeros);
        w.write(dir / name);
        return convert::WeightSource::open(dir / name);
    };
    const auto right = one_tensor("right.gguf", {kHidden, kHidden}), wrong = one_tensor("wrong.gguf", {kHidden, kKv});
    convert::CompareOptions o;
    // By default: what every version has (F32 here, so not "quantized"): attn_q alone.
    const convert::Comparison c = convert::compare_methods(*original, {right.get()}, o);
    CHECK(c.tensors == std::vector<std::string>{"blk.0.attn_q.weight"});
    CHECK(c.selection == "every matrix all the versions have");
    CHECK(c.methods[0].total.sum_sq_error == doctest::Approx(c.methods[0].total.sum_sq_signal));  // zeros against the weights
    o.tensors.emplace("ffn_down");
    try {
        convert::compare_methods(*original, {right.get()}, o);
        FAIL("compared without the tensor");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == (dir / "right.gguf").string() + ": tensor blk.0.ffn_down.weight is missing (the original " + g.original.string() + " has it)");
    }
    o.tensors.emplace("attn_q");
    try {
        convert::compare_methods(*original, {wrong.get()}, o);
        FAIL("compared tensors of different shapes");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == (dir / "wrong.gguf").string() + ": tensor blk.0.attn_q.weight has shape [256, 128], the original's is [256, 256]");
    }
}

TEST_CASE("gguf compare-methods: the totals table, --per-tensor, --json") {
    test::TempDir dir;
    const Pair g = make_pair(dir / "gptq", gptq_config({4, 128, true}), gptq({4, 128, true}));
    test::RunResult r = test::run_gguf("compare-methods " + g.original.string() + " " + g.quantized.string() + " --types q4_K,iq4_xs --per-tensor");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out.find("compared: 7 tensors, the matrices every version stores in fewer than 16 bits per weight") != std::string::npos);
    CHECK(r.out.find("GPTQ 4-bit, groups of 128, symmetric (v1 zeros)") != std::string::npos);
    CHECK(r.out.find("iq4_xs applied here") != std::string::npos);
    CHECK(r.out.find("blk.0.ffn_down.weight") != std::string::npos);
    r = test::run_gguf("compare-methods " + g.original.string() + " " + g.quantized.string() + " --types q4_K --json");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE(parser.parse(r.out).get(root) == simdjson::SUCCESS);
    simdjson::dom::array methods;
    REQUIRE(root["methods"].get(methods) == simdjson::SUCCESS);
    CHECK(methods.size() == 2);
    double bpw = 0;
    CHECK(methods.at(1)["total"]["bits_per_weight"].get(bpw) == simdjson::SUCCESS);
    CHECK(bpw == 4.5);
    CHECK(methods.at(0)["per_tensor"].get_array().size() == 7);
    r = test::run_gguf("compare-methods " + g.original.string() + " --types q9_9");
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("'q9_9' is not a quantized type") != std::string::npos);
}

TEST_CASE("Malformed layers found by review: zero words that are not whole, act-order without g_idx, empty scales, absurd block sizes") {
    convert::QuantConfig gptq4;
    gptq4.method = convert::QuantMethod::Gptq, gptq4.bits = 4, gptq4.group_size = 16;
    const auto message = [](const std::function<void()>& f) {
        try {
            f();
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    {
        // 36 outputs of 4 bits: qzeros rows would end inside a word.
        auto o = open({words("m.qweight", {4, 36}, std::vector<uint32_t>(4 * 36)), words("m.qzeros", {2, 4}, std::vector<uint32_t>(8)),
                       hf::f16_tensor("m.scales", {2, 36}, std::vector<float>(72, 1.0f))});
        const std::string e = message([&] { o->find(gptq4, 36, 32); });
        CHECK_MESSAGE(e.find("tensor m.qzeros: 36 outputs of 4 bits are not whole 32-bit words") != std::string::npos, e);
    }
    {
        // desc_act with two groups and no g_idx.
        auto o = open({words("m.qweight", {4, 8}, std::vector<uint32_t>(32)), words("m.qzeros", {2, 1}, std::vector<uint32_t>(2)),
                       hf::f16_tensor("m.scales", {2, 8}, std::vector<float>(16, 1.0f))});
        convert::QuantConfig c = gptq4;
        c.desc_act = true;
        const std::string e = message([&] { o->find(c, 8, 32); });
        CHECK_MESSAGE(e.find("tensor m.qweight: desc_act (act-order) needs m.g_idx") != std::string::npos, e);
        // Without act-order it reads, and a zero field of all ones is reported.
        std::vector<uint32_t> zeros = {0x0000000Fu, 0};
        auto p = open({words("m.qweight", {4, 8}, std::vector<uint32_t>(32)), words("m.qzeros", {2, 1}, zeros),
                       hf::f16_tensor("m.scales", {2, 8}, std::vector<float>(16, 1.0f))});
        const auto t = p->find(gptq4, 8, 32);
        REQUIRE(t);
        REQUIRE(t->warnings().size() == 1);
        CHECK(t->warnings()[0].find("m.qzeros: 1 of 16 zero fields hold 15 (all ones)") != std::string::npos);
        std::vector<float> row(32);
        t->decode(0, 1, row.data());
        CHECK(row[0] == -16.0f);  // code 0, zero 15 + 1
    }
    {
        // A compressed-tensors scale of shape [N, 0].
        auto o = open({hf::StTensor{"m.weight", "I8", {2, 32}, std::vector<uint8_t>(64)}, hf::f32_tensor("m.weight_scale", {2, 0}, {})});
        convert::QuantConfig c;
        c.method = convert::QuantMethod::CompressedTensors;
        c.groups.push_back({{"Linear"}, "int-quantized", 8, "int", true, "channel", 0});
        const std::string e = message([&] { o->find(c, 2, 32); });
        CHECK_MESSAGE(e.find("tensor m.weight_scale: shape [2, 0] holds no scale") != std::string::npos, e);
    }
    {
        // bitsandbytes blocksize 2^64 - 1 (its block count would wrap to 0).
        const std::string state = R"({"quant_type": "nf4", "blocksize": 18446744073709551615, "shape": [1, 4]})";
        auto o = open({hf::StTensor{"m.weight", "U8", {2, 1}, {0, 0}}, hf::f32_tensor("m.weight.absmax", {0}, {}), hf::f32_tensor("m.weight.quant_map", {16}, std::vector<float>(16)),
                       hf::StTensor{"m.weight.quant_state.bitsandbytes__nf4", "U8", {state.size()}, std::vector<uint8_t>(state.begin(), state.end())}});
        convert::QuantConfig c;
        c.method = convert::QuantMethod::Bitsandbytes;
        const std::string e = message([&] { o->find(c, 1, 4); });
        CHECK_MESSAGE(e.find("tensor m.weight.quant_state.bitsandbytes__nf4: no blocksize between 1 and 2^20") != std::string::npos, e);
    }
    {
        // GPTQ with per-module overrides: the group size comes from the shapes (32 here, the config says 16).
        convert::QuantConfig c = gptq4;
        c.has_dynamic = true;
        std::vector<uint32_t> q(8 * 8, 0x11111111u);  // K = 64: codes 1
        auto o = open({words("m.qweight", {8, 8}, q), words("m.qzeros", {2, 1}, {0x77777777u, 0x77777777u}),
                       hf::f16_tensor("m.scales", {2, 8}, {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2})});
        const auto t = o->find(c, 8, 64);
        REQUIRE(t);
        std::vector<float> row(64);
        t->decode(0, 1, row.data());
        CHECK(row[31] == -7.0f);  // group 0: 1 x (1 - 8)
        CHECK(row[32] == -14.0f);  // group 1: 2 x (1 - 8)
    }
}

TEST_CASE("An FP8 NaN copied to F32 is no error: the report stays a number") {
    test::TempDir dir;
    const Pair p = make_pair(dir.path(), R"({"quant_method":"fp8","weight_block_size":[128,128]})", [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) {
        hf::Quantized q = hf::fp8_block(m, w, N, K, 128);
        q.tensors[0].bytes[5] = 0x7F;  // E4M3's NaN
        q.exact[5] = std::nanf("");
        return q;
    });
    std::vector<convert::ImportError> errors;
    check_same_tensors(convert_folder(p.quantized, "f32", &errors), convert_folder(p.dense, "f32"));
    REQUIRE(errors.size() == 7);
    for (const convert::ImportError& e : errors) {
        CAPTURE(e.name);
        CHECK(e.rmse == 0);
        CHECK(std::isfinite(e.rms));
    }
}

TEST_CASE("Reshaped, retyped and reconfigured quantized layers are refused or read, never read out of bounds") {
    struct Format {
        std::string config;
        Quantizer quantize;
        std::vector<std::string> other_configs;  // the same tensors under settings that do not fit them
    };
    const std::vector<Format> formats = {
        {gptq_config({4, 128, true}), gptq({4, 128, true}),
         {gptq_config({3, 128, true}), gptq_config({8, 128, true}), gptq_config({4, 32, true}), gptq_config({4, -1, true}), gptq_config({4, 128, true, false, true}),
          R"({"quant_method":"gptq","bits":4,"group_size":0})", R"({"quant_method":"gptq","bits":4,"group_size":128,"dynamic":{"-:x":{}}})",
          R"({"quant_method":"awq","bits":4,"group_size":128})", kBnb4}},
        {gptq_config({3, 64, false, true}), gptq({3, 64, false, true}), {gptq_config({2, 64, true}), gptq_config({3, 128, true})}},
        {awq_config(64, false), awq(64, false), {awq_config(64, true), awq_config(128, false), awq_config(-1, false), gptq_config({4, 64, true})}},
        {awq_config(32, true), awq(32, true), {awq_config(32, false), awq_config(128, true)}},
        {kBnb4, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, true); }, {kBnb8, gptq_config({4, 128, true})}},
        {kBnb8, [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb8(m, w, N, K); },
         {ct_config("int-quantized", "int", 8, true, "channel", 0)}},
        {R"({"quant_method":"fp8","weight_block_size":[128,128]})",
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128); },
         {R"({"quant_method":"fp8","weight_block_size":[64,64]})", R"({"quant_method":"fp8"})", ct_config("float-quantized", "float", 8, true, "group", 64)}},
        {ct_config("pack-quantized", "int", 4, false, "group", 64), ct_int({4, true, false, 64}),
         {ct_config("pack-quantized", "int", 8, false, "group", 64), ct_config("pack-quantized", "int", 4, true, "group", 128),
          ct_config("pack-quantized", "int", 4, false, "channel", 0)}},
        {ct_config("int-quantized", "int", 8, false, "channel", 0), ct_int({8, false, false, 0, false}), {ct_config("int-quantized", "int", 8, true, "group", 32)}},
        {ct_config("float-quantized", "float", 8, true, "channel", 0),
         [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::ct_fp8(m, w, N, K, true); },
         {ct_config("float-quantized", "float", 8, true, "group", 96), ct_config("float-quantized", "float", 8, true, "block", 0)}},
    };
    size_t read = 0, refused = 0;
    const auto attempt = [&](const std::filesystem::path& folder) {
        for (const char* outtype : {"f32", "lossless"}) {
            try {
                convert_folder(folder, outtype);
                ++read;
            } catch (const std::runtime_error& e) {
                // A lossless block that did not reproduce its values is a bug, not a refusal.
                CHECK_MESSAGE(std::string(e.what()).find("blocks written for") == std::string::npos, e.what());
                ++refused;
            } catch (const std::invalid_argument&) {
                ++refused;
            }
        }
    };
    for (const Format& f : formats) {
        CAPTURE(f.config);
        test::TempDir dir;
        const Pair p = make_pair(dir.path(), f.config, f.quantize);
        const convert::SafetensorsFile file = convert::SafetensorsFile::open(p.quantized / "model.safetensors");
        std::vector<hf::StTensor> tensors;
        for (const convert::SafeTensor& t : file.tensors())
            tensors.push_back({t.name, std::string(convert::dtype_name(t.dtype)), t.shape, std::vector<uint8_t>(t.data.begin(), t.data.end())});
        const std::string config = test::read_text(p.quantized / "config.json");
        // Each tensor of two layers given every other shape of its element count, and every dtype of its width.
        for (size_t i = 0; i < tensors.size(); ++i) {
            if (tensors[i].name.find("q_proj") == std::string::npos && tensors[i].name.find("down_proj") == std::string::npos) continue;
            uint64_t n = 1;
            for (uint64_t d : tensors[i].shape) n *= d;
            std::vector<std::vector<uint64_t>> shapes = {{n}, {1, n}, {n, 1}};
            if (tensors[i].shape.size() == 2) shapes.push_back({tensors[i].shape[1], tensors[i].shape[0]});
            if (n % 2 == 0) shapes.push_back({2, n / 2});
            std::vector<std::string> dtypes;
            for (const std::vector<std::string>& same : std::vector<std::vector<std::string>>{{"I32", "F32", "U32"}, {"F16", "BF16", "I16"}, {"U8", "I8", "F8_E4M3", "F8_E5M2"}})
                if (std::find(same.begin(), same.end(), tensors[i].dtype) != same.end()) dtypes = same;
            const auto run = [&](const hf::StTensor& replaced) {
                std::vector<hf::StTensor> changed = tensors;
                changed[i] = replaced;
                hf::write_safetensors(p.quantized / "model.safetensors", changed);
                attempt(p.quantized);
            };
            for (const auto& shape : shapes) {
                hf::StTensor t = tensors[i];
                t.shape = shape;
                run(t);
            }
            for (const std::string& dtype : dtypes) {
                hf::StTensor t = tensors[i];
                t.dtype = dtype;
                run(t);
            }
            // Codes, scales or zeros of all ones (NaN scales, largest codes and zeros).
            hf::StTensor ones = tensors[i];
            std::fill(ones.bytes.begin(), ones.bytes.end(), uint8_t{0xff});
            run(ones);
        }
        hf::write_safetensors(p.quantized / "model.safetensors", tensors);
        // The same tensors under settings that do not fit them.
        for (const std::string& other : f.other_configs) {
            CAPTURE(other);
            const size_t at = config.find("\"quantization_config\":");
            REQUIRE(at != std::string::npos);
            write_text(p.quantized / "config.json", config.substr(0, at) + "\"quantization_config\":" + other + "}");
            attempt(p.quantized);
        }
    }
    MESSAGE(fmt::format("{} conversions of damaged quantized folders: {} read, {} refused", read + refused, read, refused));
    CHECK(refused > read);  // most damage is caught by the checks, not merely survived
}
