// Figures (prints, asserts nothing): the import formats and GGUF types compared on weights
// that learned something, ../shared/ref/trained/trained-f16.gguf (4 layers, 256 wide). Its
// linear layers are written as Hugging Face folders in each format by the fixture writers
// (round to nearest in the format's own layout: NF4 as bitsandbytes rounds, FP8 with
// DeepSeek's absmax block scales, int8 per channel, and GPTQ's and AWQ's layouts filled by
// round to nearest, not by their calibrated solvers), then `compare_methods` measures every
// folder, llama.cpp's own quantizations of the model (its files in the same folder), and
// GGUF types applied here with the model's importance matrix.
//   bench_compare_methods [REF_DIR [WORK_DIR]]
#include <algorithm>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "convert/compare.h"
#include "gguf/model.h"
#include "hf_quant.h"
#include "kernels/kernels.h"
#include "quant/imatrix.h"

namespace {

namespace hf = gguf::fixtures::hf;
using gguf::TypeId;

// GGUF's name of a llama tensor -> Hugging Face's (the module; ".weight" added by the caller).
std::string hf_module(const std::string& gguf) {
    static const std::map<std::string, std::string> kTop = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    static const std::map<std::string, std::string> kLayer = {
        {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"}};
    const std::string base = gguf.substr(0, gguf.size() - 7);  // ".weight"
    if (kTop.count(base)) return kTop.at(base);
    const size_t dot = base.find('.', 4);
    return "model.layers." + base.substr(4, dot - 4) + "." + kLayer.at(base.substr(dot + 1));
}

}  // namespace

int main(int argc, char** argv) {
    const std::filesystem::path ref = argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::path(GGUFKIT_SHARED_DIR) / "ref" / "trained";
    const std::filesystem::path work = argc > 2 ? std::filesystem::path(argv[2]) : std::filesystem::temp_directory_path() / "ggufkit-bench-methods";
    if (!std::filesystem::exists(ref / "trained-f16.gguf")) {
        std::printf("bench_compare_methods: %s/trained-f16.gguf is not here (../shared/ref is not beside the checkout); nothing measured\n", ref.c_str());
        return 0;
    }
    try {
        const gguf::Model model = gguf::Model::open(ref / "trained-f16.gguf");
        const uint32_t heads = 4, kv_heads = 2;
        struct Method {
            std::string name, config;
            std::function<hf::Quantized(const std::string&, const std::vector<float>&, uint64_t, uint64_t)> quantize;
        };
        const std::vector<Method> methods = {
            {"nf4", R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"nf4","bnb_4bit_use_double_quant":true})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, true, 64, true); }},
            {"fp4", R"({"quant_method":"bitsandbytes","load_in_4bit":true,"bnb_4bit_quant_type":"fp4"})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::bnb4(m, w, N, K, false, 64, false); }},
            {"gptq-rtn-4bit-g128-sym", R"({"quant_method":"gptq","bits":4,"group_size":128,"sym":true})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::gptq(m, w, N, K, {4, 128, true}); }},
            {"awq-rtn-4bit-g128", R"({"quant_method":"awq","bits":4,"group_size":128,"zero_point":true,"version":"gemm"})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::awq(m, w, N, K, 128, false); }},
            {"gptq-rtn-3bit-g128-asym", R"({"quant_method":"gptq","bits":3,"group_size":128,"sym":false,"checkpoint_format":"gptq_v2"})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::gptq(m, w, N, K, {3, 128, false, true}); }},
            {"fp8-e4m3-block128", R"({"quant_method":"fp8","weight_block_size":[128,128]})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::fp8_block(m, w, N, K, 128); }},
            {"int8-channel", R"({"quant_method":"compressed-tensors","format":"int-quantized","config_groups":{"g":{"targets":["Linear"],"weights":{"num_bits":8,"type":"int","symmetric":true,"strategy":"channel"}}}})",
             [](const std::string& m, const std::vector<float>& w, uint64_t N, uint64_t K) { return hf::ct_int(m, w, N, K, {8, false, true, 0, true}); }},
        };
        std::vector<std::unique_ptr<convert::WeightSource>> sources;
        std::vector<const convert::WeightSource*> versions;
        for (const Method& m : methods) {
            const std::filesystem::path folder = work / m.name;
            std::filesystem::create_directories(folder);
            std::vector<hf::StTensor> tensors;
            for (const gguf::Model::Tensor& t : model.tensors()) {
                const std::string name(t.info->name);
                const std::span<const uint64_t> dims = t.info->dims();
                std::vector<float> values(static_cast<size_t>(t.info->n_elements));
                kernels::dequantize(t.info->type, model.tensor_data(t), values);
                const std::string module = hf_module(name);
                if (dims.size() == 1) {
                    tensors.push_back(hf::f32_tensor(module + ".weight", {dims[0]}, values));
                    continue;
                }
                const uint64_t K = dims[0], N = dims[1];
                // Q and K back in Hugging Face's rotate-half row order, which convert permutes again.
                const bool q = name.find("attn_q.") != std::string::npos, k = name.find("attn_k.") != std::string::npos;
                if (q || k) {
                    const uint64_t h = q ? heads : kv_heads, d = N / h;
                    std::vector<float> hf_rows(values.size());
                    for (uint64_t r = 0; r < N; ++r) {
                        const uint64_t head = r / d, i = r % d, from = head * d + (i % 2) * (d / 2) + i / 2;
                        std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(r * K), K, hf_rows.begin() + static_cast<std::ptrdiff_t>(from * K));
                    }
                    values.swap(hf_rows);
                }
                if (name == "token_embd.weight" || name == "output.weight") {
                    tensors.push_back(hf::f16_tensor(module + ".weight", {N, K}, values));  // left dense, as the formats leave them
                    continue;
                }
                hf::Quantized made = m.quantize(module, values, N, K);
                for (hf::StTensor& x : made.tensors) tensors.push_back(std::move(x));
            }
            hf::write_safetensors(folder / "model.safetensors", tensors);
            std::ofstream(folder / "config.json") << fmt::format(
                "{{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":1024,\"hidden_size\":256,\"intermediate_size\":768,\"num_hidden_layers\":4,"
                "\"num_attention_heads\":{},\"num_key_value_heads\":{},\"max_position_embeddings\":256,\"quantization_config\":{}}}",
                heads, kv_heads, m.config);
            versions.push_back(sources.emplace_back(convert::WeightSource::open(folder)).get());
        }
        // llama.cpp's own quantizations of the model (with its importance matrix).
        for (const char* mix : {"Q4_0", "Q4_K_M", "IQ4_XS", "Q3_K_M", "Q8_0"}) {
            const std::filesystem::path f = ref / fmt::format("trained-{}.imatrix.gguf", mix);
            if (std::filesystem::exists(f)) versions.push_back(sources.emplace_back(convert::WeightSource::open(f)).get());
        }
        const auto original = convert::WeightSource::open(ref / "trained-f16.gguf");
        const quant::ImportanceMatrix imatrix = quant::ImportanceMatrix::load(ref / "trained.imatrix.gguf");
        convert::CompareOptions o;
        o.types = {TypeId::Q3_K, TypeId::Q4_0, TypeId::Q4_K, TypeId::IQ4_NL, TypeId::IQ4_XS, TypeId::Q5_K, TypeId::Q8_0};
        o.imatrix = &imatrix;
        o.tensors.emplace("^blk\\.");  // the layers every method quantizes
        const convert::Comparison c = convert::compare_methods(*original, versions, o);
        std::printf("trained-f16.gguf, %zu layer matrices; importance from trained.imatrix.gguf (weighted RMSE, and the types applied here)\n", c.tensors.size());
        std::printf("  %-44s %6s  %11s  %11s  %7s\n", "method", "bpw", "rmse", "imat rmse", "snr dB");
        std::vector<const convert::Comparison::Method*> sorted;
        for (const auto& m : c.methods) sorted.push_back(&m);
        std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->total.bits_per_weight() < b->total.bits_per_weight(); });
        for (const auto* m : sorted)
            std::printf("  %-44s %6.3f  %11.4e  %11.4e  %7.2f\n", (m->simulated ? m->name + " (applied here)" : std::filesystem::path(m->name).filename().string()).c_str(),
                        m->total.bits_per_weight(), m->total.rmse(), m->total.weighted_rmse(), m->total.snr_db());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
