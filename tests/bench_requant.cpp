// Benchmark: gguf requant's wall time, throughput and peak memory. Prints figures; asserts
// nothing.
//   bench_requant [SHAPE] [RUNS]
//   SHAPE 984M (default): llama, 8 layers, 2048 wide, 5632 FFN, 32,000 tokens, f16 (the
//         shape of the llama.cpp figures: 15.1 s for Q4_K_M and 4.1 s for Q8_0 on
//         2 threads, 1.49 GB peak RSS, measured by the author on this machine type)
//   SHAPE 4G: the same with 44 layers (about 4.3 GB)
// Generates the model in a temporary folder (removed at the end), then for Q8_0 and Q4_K_M
// on 1 and 2 threads runs requantize in a child process RUNS times (default 3; median):
// wall time, input GB/s, the child's peak RSS, and its peak anonymous RSS (sampled every
// 5 ms: memory that is not file pages the kernel can drop). The yardstick is reading the
// input's mapped bytes once, in the same run. BENCH_MODEL=FILE keeps (or reuses) the model.
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "fixtures.h"
#include "gguf/file.h"
#include "requant/run.h"
#include "support.h"

namespace {

// kB figure of a /proc/self/status line.
uint64_t status_kb(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(field);
    while (std::getline(in, line))
        if (line.compare(0, n, field) == 0) return std::strtoull(line.c_str() + n + 1, nullptr, 10);
    return 0;
}

struct Run {
    double seconds;
    uint64_t peak_rss_kb, peak_anon_kb;
};

// One requantize in a child process, so its memory figures are its own.
Run run_child(const std::filesystem::path& in, const std::filesystem::path& out, const char* mix, int threads) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) std::abort();
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipefd[0]);
        std::atomic<bool> done{false};
        std::atomic<uint64_t> anon{0};
        std::thread sampler([&] {
            while (!done) {
                anon = std::max<uint64_t>(anon, status_kb("RssAnon:"));
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        });
        gguf::requant::RunOptions o;
        o.plan.target = gguf::requant::find_target(mix);
        o.threads = threads;
        int status = 0;
        try {
            gguf::requant::requantize(in, out, o);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "requantize failed: %s\n", e.what());
            status = 1;
        }
        done = true;
        sampler.join();
        const uint64_t a = anon;
        if (::write(pipefd[1], &a, sizeof a) != sizeof a) status = 1;
        ::_exit(status);
    }
    ::close(pipefd[1]);
    uint64_t anon = 0;
    if (::read(pipefd[0], &anon, sizeof anon) != sizeof anon) anon = 0;
    ::close(pipefd[0]);
    int status = 0;
    rusage ru{};
    ::wait4(pid, &status, 0, &ru);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::abort();
    return {s, static_cast<uint64_t>(ru.ru_maxrss), anon};
}

}  // namespace

int main(int argc, char** argv) {
    const std::string shape = argc > 1 ? argv[1] : "984M";
    const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
    gguf::fixtures::DemoOptions d;
    d.n_vocab = 32000;
    d.n_embd = 2048;
    d.n_ff = 5632;
    d.n_head = 32;
    d.n_head_kv = 4;
    d.n_layer = shape == "4G" ? 44 : 8;
    d.context = 2048;
    test::TempDir dir;
    // BENCH_MODEL=FILE keeps the generated model there (and reuses it when it exists), for
    // profiling runs.
    const char* keep = std::getenv("BENCH_MODEL");
    const auto in = keep ? std::filesystem::path(keep) : dir / "model-f16.gguf";
    auto t0 = std::chrono::steady_clock::now();
    if (!keep || !std::filesystem::exists(in)) gguf::fixtures::demo_model(d).write(in);
    const auto size = static_cast<double>(std::filesystem::file_size(in));
    fmt::print("model: {} layers, 2048 wide, 5632 FFN, 32000 tokens, f16: {:.3f} GB (generated in {:.1f} s)\n", d.n_layer, size / 1e9,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    {
        const gguf::File f = gguf::File::open(in);
        const double ns = test::median_ns(3, [&] {
            uint64_t sum = 0;
            const auto b = f.bytes();
            for (size_t i = 0; i + 8 <= b.size(); i += 8) {
                uint64_t v;
                std::memcpy(&v, b.data() + i, 8);
                sum += v;
            }
            if (sum == 42) std::abort();
        });
        fmt::print("yardstick: reading the mapped input once: {:.2f} s ({:.2f} GB/s)\n", ns / 1e9, size / ns);
    }
    fmt::print("{:<8} {:>7} {:>9} {:>10} {:>14} {:>16}\n", "mix", "threads", "wall s", "input GB/s", "peak RSS MiB", "peak anon MiB");
    for (const char* mix : {"Q8_0", "Q4_K_M"})
        for (int threads : {1, 2}) {
            std::vector<Run> r;
            for (int i = 0; i < runs; ++i) r.push_back(run_child(in, dir / "out.gguf", mix, threads));
            std::sort(r.begin(), r.end(), [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
            const Run& m = r[r.size() / 2];
            fmt::print("{:<8} {:>7} {:>9.2f} {:>10.3f} {:>14.0f} {:>16.0f}\n", mix, threads, m.seconds, size / m.seconds / 1e9,
                       static_cast<double>(m.peak_rss_kb) / 1024.0, static_cast<double>(m.peak_anon_kb) / 1024.0);
        }
    fmt::print("llama.cpp (the issue's figures for the 984M shape, 2 threads): Q4_K_M 15.1 s, Q8_0 4.1 s, 1.49 GB peak RSS\n");
    return 0;
}
