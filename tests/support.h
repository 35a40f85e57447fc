// Helpers shared by the test suites.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fixtures.h"
#include "gguf/writer.h"

namespace test {

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::vector<uint8_t> read_bytes(const std::filesystem::path& p);
// A whole file as a string (fails the running test when it cannot be read).
std::string read_text(const std::filesystem::path& p);
// Token ids as llama-tokenize --ids prints them: "[1, 795, ...]".
std::vector<int32_t> read_token_ids(const std::filesystem::path& p);
void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes);
// A file of little-endian f32 values.
std::vector<float> read_floats(const std::filesystem::path& p);

// The number of values of `got` that differ from `want` (same length): equal means identical
// bits, or both NaN. `first` describes the first difference.
size_t bit_mismatches(std::span<const float> got, std::span<const float> want, std::string& first);

// ../shared/ref as configured by CMake.
std::filesystem::path ref_dir();

// This process's resident set (/proc/self/statm's second field), in bytes.
int64_t resident_bytes();

// Every *.gguf under dir, sorted.
std::vector<std::filesystem::path> gguf_files(const std::filesystem::path& dir);

struct RunResult {
    int exit_code;
    std::string out;
    std::string err;
};
// Runs the gguf binary with `args` (already shell-quoted as needed).
RunResult run_gguf(const std::string& args);

// The median wall time of `runs` calls of f, in nanoseconds (benchmarks).
template <class F> double median_ns(int runs, F f) {
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
        const auto a = std::chrono::steady_clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}
std::string shell_quote(const std::string& s);

// A llama model whose weights look like a trained one's: normal values (every 97th from a
// heavier-tailed t distribution) of a spread that varies by layer, in `type` (BF16 or F16),
// norms near 1 in F32; token_embd has 512 rows, each block attn_q (width x width) and
// ffn_up (width x 2 width). The tensors' bytes live in `keep`.
gguf::Writer realistic_model(gguf::TypeId type, uint64_t width, uint32_t layers, std::vector<std::vector<uint8_t>>& keep);

// The generated llama shapes of bench_requant and bench_kld_mixes (f16, 2048 wide, 5632 FFN,
// 32 heads, 4 KV heads, 32,000 tokens): "984M" (8 layers) or "4G" (44 layers).
gguf::fixtures::DemoOptions llama_bench_shape(const std::string& shape);

// An importance matrix for every 2-D weight of `model` but token_embd: log-normal column
// weights from a fixed seed, as if from one chunk of 512 tokens (bench_requant's, for timing).
void write_generated_imatrix(const std::filesystem::path& model, const std::filesystem::path& out);

// Runs `COMMAND [--imatrix IMATRIX] IN OUT MIX THREADS` (llama-quantize's argument order,
// which `gguf requant` takes too; COMMAND split at spaces), its console output thrown away:
// wall seconds, or -1 when it failed. OUT is left for the caller.
double run_quantize_command(const std::string& command, const std::filesystem::path& in, const std::filesystem::path& out,
                            const std::string& mix, const std::filesystem::path& imatrix, int threads);

}  // namespace test
