// Benchmark (prints, asserts nothing): gguf convert importing a GPTQ checkpoint. A generated
// GPTQ 4-bit (groups of 128, symmetric, v1 zeros) llama folder of TinyLlama's width (2048,
// 5632 FFN, 32000 tokens, F16 embeddings and output) with 32 layers, about 1 GB, converted to
// Q4_K_M, to F16 and losslessly (Q4_0 blocks from the codes), each in a child process whose
// peak RSS is read with wait4; beside a memcpy of the folder's bytes from the page cache in
// the same run. Medians of RUNS runs.
//   bench_convert_quant [FOLDER [LAYERS [RUNS]]]   (default /tmp/ggufkit-bench-gptq, 32, 3;
//   the folder is generated once and kept)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "convert/convert.h"
#include "gguf/mapping.h"
#include "hf_quant.h"

namespace {

namespace hf = gguf::fixtures::hf;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

uint64_t folder_bytes(const std::filesystem::path& folder) {
    uint64_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(folder)) n += e.file_size();
    return n;
}

// One safetensors shard per layer (and one for the embeddings and the output), an index.
void generate(const std::filesystem::path& folder, uint64_t layers) {
    const uint64_t vocab = 32000, hidden = 2048, ff = 5632, kv = 256;
    std::filesystem::create_directories(folder);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0, 0.02f);
    const auto random = [&](uint64_t n) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng);
        return v;
    };
    const hf::Gptq o{4, 128, true};
    std::string index = "{\"metadata\":{},\"weight_map\":{";
    bool first = true;
    const auto shard = [&](const std::string& file, const std::vector<hf::StTensor>& tensors) {
        hf::write_safetensors(folder / file, tensors);
        for (const hf::StTensor& t : tensors) index += fmt::format("{}\"{}\":\"{}\"", first ? "" : ",", t.name, file), first = false;
    };
    const std::vector<float> ones(hidden, 1.0f);
    shard("embed.safetensors", {hf::f16_tensor("model.embed_tokens.weight", {vocab, hidden}, random(vocab * hidden)),
                                hf::f16_tensor("lm_head.weight", {vocab, hidden}, random(vocab * hidden)), hf::f16_tensor("model.norm.weight", {hidden}, ones)});
    for (uint64_t l = 0; l < layers; ++l) {
        const std::string p = fmt::format("model.layers.{}.", l);
        std::vector<hf::StTensor> t = {hf::f16_tensor(p + "input_layernorm.weight", {hidden}, ones), hf::f16_tensor(p + "post_attention_layernorm.weight", {hidden}, ones)};
        for (const auto& [name, N, K] : {std::tuple{"self_attn.q_proj", hidden, hidden}, {"self_attn.k_proj", kv, hidden}, {"self_attn.v_proj", kv, hidden},
                                         {"self_attn.o_proj", hidden, hidden}, {"mlp.gate_proj", ff, hidden}, {"mlp.up_proj", ff, hidden}, {"mlp.down_proj", hidden, ff}}) {
            hf::Quantized q = hf::gptq(p + name, random(N * K), N, K, o);
            for (hf::StTensor& x : q.tensors) t.push_back(std::move(x));
        }
        shard(fmt::format("layer-{:03}.safetensors", l), t);
        std::fprintf(stderr, "\rgenerating: layer %llu/%llu", static_cast<unsigned long long>(l + 1), static_cast<unsigned long long>(layers));
    }
    std::fprintf(stderr, "\n");
    std::ofstream(folder / "model.safetensors.index.json") << index << "}}";
    std::ofstream(folder / "config.json") << fmt::format(
        "{{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":{},\"hidden_size\":{},\"intermediate_size\":{},\"num_hidden_layers\":{},"
        "\"num_attention_heads\":32,\"num_key_value_heads\":4,\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,"
        "\"quantization_config\":{{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":128,\"sym\":true,\"desc_act\":false}}}}",
        vocab, hidden, ff, layers);
}

struct Run {
    double seconds;
    long peak_kib;
    uint64_t out_bytes;
};

// The child's work: bench_convert_quant --convert FOLDER OUTTYPE OUT.
int convert_here(const std::filesystem::path& folder, const std::string& outtype, const std::filesystem::path& out) {
    try {
        const convert::Checkpoint weights = convert::Checkpoint::open(folder);
        convert::ConvertOptions o;
        o.outtype = outtype;
        convert::write(convert::plan(folder, weights, o), out);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}

// Converts in a fresh process (this program run again, so that none of this one's memory
// counts): its wall time, peak RSS and output size.
Run convert_in_child(const std::filesystem::path& folder, const std::string& outtype, const std::filesystem::path& out) {
    const double t0 = now();
    const pid_t pid = fork();
    if (pid == 0) {
        const std::string self = std::filesystem::read_symlink("/proc/self/exe").string(), f = folder.string(), o = out.string();
        execl(self.c_str(), self.c_str(), "--convert", f.c_str(), outtype.c_str(), o.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    rusage usage{};
    wait4(pid, &status, 0, &usage);
    const double seconds = now() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("the conversion failed");
    return {seconds, usage.ru_maxrss, std::filesystem::file_size(out)};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 5 && std::string_view(argv[1]) == "--convert") return convert_here(argv[2], argv[3], argv[4]);
    const std::filesystem::path folder = argc > 1 ? argv[1] : "/tmp/ggufkit-bench-gptq";
    const uint64_t layers = argc > 2 ? std::stoull(argv[2]) : 32;
    const int runs = argc > 3 ? std::stoi(argv[3]) : 3;
    try {
        if (!std::filesystem::exists(folder / "config.json")) generate(folder, layers);
        const double in = static_cast<double>(folder_bytes(folder));
        // Yardstick: the folder's bytes copied from the page cache (read once to warm it).
        std::vector<double> copy;
        {
            std::vector<uint8_t> sink(64 << 20);
            for (int r = 0; r < runs + 1; ++r) {
                const double t0 = now();
                for (const auto& e : std::filesystem::directory_iterator(folder)) {
                    const gguf::Mapping m(e.path());
                    for (size_t at = 0; at < m.bytes().size(); at += sink.size())
                        std::memcpy(sink.data(), m.bytes().data() + at, std::min(sink.size(), m.bytes().size() - at));
                }
                if (r) copy.push_back(now() - t0);
            }
        }
        std::sort(copy.begin(), copy.end());
        const double copy_s = copy[copy.size() / 2];
        std::printf("GPTQ 4-bit g128 folder: %.2f GB (%llu layers), %u threads; memcpy of its bytes from the page cache: %.2f GB/s\n", in / 1e9,
                    static_cast<unsigned long long>(layers), std::thread::hardware_concurrency(), in / 1e9 / copy_s);
        const std::filesystem::path out = folder.parent_path() / (folder.filename().string() + "-out.gguf");
        for (const std::string outtype : {"Q4_K_M", "f16", "lossless"}) {
            std::vector<Run> r;
            for (int i = 0; i < runs; ++i) r.push_back(convert_in_child(folder, outtype, out));
            std::sort(r.begin(), r.end(), [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
            const Run& m = r[r.size() / 2];
            long peak = 0;
            for (const Run& x : r) peak = std::max(peak, x.peak_kib);
            std::printf("  -> %-8s %7.2f s  %.3f GB/s of the folder (%.1f%% of memcpy's)  out %.2f GB  peak RSS %.0f MiB\n", outtype.c_str(), m.seconds,
                        in / 1e9 / m.seconds, 100 * copy_s / m.seconds, static_cast<double>(m.out_bytes) / 1e9, static_cast<double>(peak) / 1024.0);
            std::filesystem::remove(out);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
