// Benchmark (prints, asserts nothing): gguf convert's speed on a generated BF16 checkpoint of
// TinyLlama's shape (2048 wide, 22 layers, 5632 FFN, 32000 tokens: 2.2 GB), to F16, Q8_0 and
// BF16, beside a memcpy of the same bytes from the page cache measured in the same run.
//   bench_convert [FOLDER [OUTDIR]]   (default /tmp/ggufkit-bench-hf, generated once; the
//   outputs beside it, or in OUTDIR: /dev/shm shows the converter without the disk)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "convert/convert.h"
#include "convert/safetensors.h"
#include "gguf/mapping.h"
#include "requant/plan.h"
#include "requant/run.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A llama checkpoint of random BF16 values, written tensor by tensor.
void generate(const std::filesystem::path& folder) {
    const uint64_t vocab = 32000, hidden = 2048, ff = 5632, layers = 22, kv = 256;
    std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes = {{"model.embed_tokens.weight", {vocab, hidden}}};
    for (uint64_t l = 0; l < layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        for (auto [name, shape] : std::vector<std::pair<std::string, std::vector<uint64_t>>>{
                 {"input_layernorm.weight", {hidden}}, {"self_attn.q_proj.weight", {hidden, hidden}}, {"self_attn.k_proj.weight", {kv, hidden}},
                 {"self_attn.v_proj.weight", {kv, hidden}}, {"self_attn.o_proj.weight", {hidden, hidden}},
                 {"post_attention_layernorm.weight", {hidden}}, {"mlp.gate_proj.weight", {ff, hidden}}, {"mlp.up_proj.weight", {ff, hidden}},
                 {"mlp.down_proj.weight", {hidden, ff}}})
            shapes.emplace_back(p + name, shape);
    }
    shapes.push_back({"model.norm.weight", {hidden}});
    shapes.push_back({"lm_head.weight", {vocab, hidden}});
    std::string header = "{";
    uint64_t offset = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
        uint64_t n = 1;
        std::string dims;
        for (uint64_t d : shapes[i].second) n *= d, dims += (dims.empty() ? "" : ",") + std::to_string(d);
        header += (i ? "," : "") + std::string("\"") + shapes[i].first + "\":{\"dtype\":\"BF16\",\"shape\":[" + dims + "],\"data_offsets\":[" +
                  std::to_string(offset) + "," + std::to_string(offset + 2 * n) + "]}";
        offset += 2 * n;
    }
    header += "}";
    header.resize((header.size() + 7) / 8 * 8, ' ');
    std::filesystem::create_directories(folder);
    std::ofstream out(folder / "model.safetensors", std::ios::binary);
    const uint64_t length = header.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    std::mt19937 rng(1);
    std::vector<uint16_t> block(1 << 20);
    for (uint64_t written = 0; written < offset; written += block.size() * 2) {
        for (uint16_t& v : block) v = static_cast<uint16_t>(0x3c00 + (rng() & 0x7ff) - 0x400);  // bf16 values near 1e-2 .. 1
        out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(std::min<uint64_t>(block.size() * 2, offset - written)));
    }
    std::ofstream(folder / "config.json") << "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":32000,\"hidden_size\":2048,"
                                             "\"intermediate_size\":5632,\"num_hidden_layers\":22,\"num_attention_heads\":32,"
                                             "\"num_key_value_heads\":4,\"max_position_embeddings\":2048,\"rms_norm_eps\":1e-5}";
}

}  // namespace

int main(int argc, char** argv) {
    const std::filesystem::path folder = argc > 1 ? argv[1] : "/tmp/ggufkit-bench-hf";
    const std::filesystem::path outdir = argc > 2 ? argv[2] : folder;
    if (!std::filesystem::exists(folder / "model.safetensors")) {
        std::printf("generating %s ...\n", folder.c_str());
        generate(folder);
    }
    const uint64_t bytes = std::filesystem::file_size(folder / "model.safetensors");
    // The yardstick: the checkpoint's bytes copied from the page cache (read once first).
    double memcpy_s = 1e9;
    {
        const gguf::Mapping m(folder / "model.safetensors");
        std::vector<uint8_t> buffer(64 << 20);
        for (int run = 0; run < 3; ++run) {
            const double t0 = now();
            for (uint64_t at = 0; at < bytes; at += buffer.size())
                std::memcpy(buffer.data(), m.bytes().data() + at, static_cast<size_t>(std::min<uint64_t>(buffer.size(), bytes - at)));
            memcpy_s = std::min(memcpy_s, now() - t0);
        }
    }
    // The other yardstick: writing that many bytes to a file beside it, with fsync at the end
    // as the converter's writer does (its output cannot go faster than this).
    double write_s = 0;
    {
        const std::filesystem::path scratch = outdir / "write-yardstick.tmp";
        std::vector<uint8_t> buffer(8 << 20, 1);
        const double t0 = now();
        FILE* f = std::fopen(scratch.c_str(), "wb");
        for (uint64_t at = 0; at < bytes; at += buffer.size()) std::fwrite(buffer.data(), 1, static_cast<size_t>(std::min<uint64_t>(buffer.size(), bytes - at)), f);
        std::fflush(f);
        fsync(fileno(f));
        std::fclose(f);
        write_s = now() - t0;
        std::filesystem::remove(scratch);
    }
    std::printf("checkpoint %.2f GB (BF16); memcpy from the page cache %.2f GB/s; writing %.2f GB to a file (fsync) %.2f GB/s\n",
                static_cast<double>(bytes) / 1e9, static_cast<double>(bytes) / 1e9 / memcpy_s, static_cast<double>(bytes) / 1e9,
                static_cast<double>(bytes) / 1e9 / write_s);
    double q4_convert_s = 0, requant_s = 0;
    for (const char* outtype : {"f16", "q8_0", "bf16", "Q4_K_M"}) {
        const std::filesystem::path out = outdir / (std::string("out-") + outtype + ".gguf");
        const double t0 = now();
        const convert::Checkpoint weights = convert::Checkpoint::open(folder);
        convert::ConvertOptions o;
        o.outtype = outtype;
        convert::write(convert::plan(folder, weights, o), out);
        const double s = now() - t0;
        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        const double out_bytes = static_cast<double>(std::filesystem::file_size(out));
        std::printf("to %-5s %6.2f s, %.2f GB/s of input, output %.2f GB at %.2f GB/s (%.0f%% of the file-writing yardstick); peak RSS so far "
                    "%.0f MiB (the mapped checkpoint included)\n",
                    outtype, s, static_cast<double>(bytes) / 1e9 / s, out_bytes / 1e9, out_bytes / 1e9 / s,
                    100 * (out_bytes / s) / (static_cast<double>(bytes) / write_s), static_cast<double>(usage.ru_maxrss) / 1024);
        if (std::string(outtype) == "Q4_K_M") q4_convert_s = s;
        if (std::string(outtype) == "f16") {
            // The two-step way: F16 first, then gguf requant to Q4_K_M (same threads).
            gguf::requant::RunOptions ro;
            ro.plan.target = gguf::requant::find_target("Q4_K_M");
            ro.threads = 0;
            const double r0 = now();
            gguf::requant::requantize(out, outdir / "out-requant.gguf", ro);
            requant_s = now() - r0;
            std::filesystem::remove(outdir / "out-requant.gguf");
        }
        std::filesystem::remove(out);
    }
    std::printf("Q4_K_M straight from the checkpoint %.2f s; gguf requant from the F16 file %.2f s (plus %s for that F16 file)\n", q4_convert_s,
                requant_s, "the f16 conversion above");
    return 0;
}
