// Benchmark: gguf requant's wall time, throughput and peak memory. Prints figures; asserts
// nothing.
//   bench_requant [SHAPE] [RUNS] [MIXES]
//   SHAPE 984M (default): llama, 8 layers, 2048 wide, 5632 FFN, 32,000 tokens, f16 (the
//         shape of the llama.cpp figures: 15.1 s for Q4_K_M and 4.1 s for Q8_0 on
//         2 threads, 1.49 GB peak RSS, measured by the author on this machine type)
//   SHAPE 4G: the same with 44 layers (about 4.3 GB)
// Generates the model in a temporary folder (removed at the end), then for Q8_0 and Q4_K_M
// on 1 and 2 threads runs requantize in a child process RUNS times (default 3; median):
// wall time, input GB/s, the child's peak RSS, and its peak anonymous RSS (sampled every
// 5 ms: memory that is not file pages the kernel can drop). The yardstick is reading the
// input's mapped bytes once, in the same run. BENCH_MODEL=FILE keeps (or reuses) the model.
// MIXES (a comma-separated list of `--type` names, "all" for every target of `--list` but
// COPY and the aliases, or "all+imatrix" for each of them with the importance matrix): those
// mixes instead, on 2 threads. A name ending in "+imatrix"
// uses a generated importance matrix (log-normal column weights per weight tensor), and so
// does a mix that needs one. Beside each, llama-quantize's time where issue 18 recorded it
// (2 threads, this machine type, another day: compare through the yardstick) and how many
// times faster we are.
// BENCH_BASELINE="COMMAND": with MIXES, also runs `COMMAND [--imatrix FILE] IN OUT MIX 2`
// (llama-quantize's command line, which gguf requant also takes; COMMAND is split at spaces)
// after each of our runs, in the same run: its median wall time and how many times faster we
// are; and the same with an fsync of its output added ("+fsync s": ours ends with one, which
// counts in our time). BENCH_BASELINE=/path/to/llama-quantize is the comparison measured here; where
// there is no such binary, BENCH_BASELINE=scripts/libllama-quantize (with LLAMA_LIB set: see
// that script) runs llama.cpp's quantizer through a prebuilt libllama;
// BENCH_BASELINE="/path/to/older/gguf requant" measures a change.
#include <fmt/format.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"
#include "gguf/file.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
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
Run run_child(const std::filesystem::path& in, const std::filesystem::path& out, std::string_view mix, int threads,
              const std::filesystem::path& imatrix = {}) {
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
        if (!imatrix.empty()) o.imatrix = imatrix;
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
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {-1, 0, 0};  // the child said why
    return {s, static_cast<uint64_t>(ru.ru_maxrss), anon};
}

// PROGRAM [--imatrix FILE] IN OUT MIX 2, its output thrown away: wall seconds (-1 when it
// failed), and the seconds an fsync of its output then takes. Ours fsyncs its output before
// renaming it into place (the time counts in ours); llama-quantize leaves it in the page
// cache (on the F16 copy, 2026-12-05: 0.23 s of fsync after libllama's 1.59).
struct BaselineRun {
    double seconds, fsync_seconds;
};
BaselineRun run_baseline(const std::string& command, const std::filesystem::path& in, const std::filesystem::path& out, std::string_view mix,
                         const std::filesystem::path& imatrix) {
    const double s = test::run_quantize_command(command, in, out, std::string(mix), imatrix, 2);
    double f = 0;
    if (s >= 0) {
        const auto start = std::chrono::steady_clock::now();
        const int fd = ::open(out.c_str(), O_RDONLY);
        if (fd < 0 || ::fsync(fd) != 0) f = -1;
        if (fd >= 0) ::close(fd);
        if (f == 0) f = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::filesystem::remove(out);
    return {s, f};
}

// llama-quantize on the 984M shape, 2 threads, as issue 18 recorded it (seconds; the
// i-quants with an importance matrix).
double llama_cpp_seconds(std::string_view mix) {
    static const std::pair<std::string_view, double> figures[] = {
        {"Q4_K_M", 14.86}, {"Q8_0", 2.68}, {"IQ4_XS", 44.0}, {"Q6_K", 9.09}, {"Q2_K", 11.71},
        {"Q4_0", 3.31},    {"IQ3_XXS+imatrix", 75.0}, {"IQ2_XS+imatrix", 100.0},
    };
    for (const auto& [name, seconds] : figures)
        if (name == mix) return seconds;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string shape = argc > 1 ? argv[1] : "984M";
    const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
    if (shape != "984M" && shape != "4G") {
        std::fprintf(stderr, "usage: bench_requant [984M|4G] [RUNS] [MIXES|all|all+imatrix]\n");
        return 2;
    }
    const gguf::fixtures::DemoOptions d = test::llama_bench_shape(shape);
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
        std::fflush(stdout);
    }
    if (argc > 3) {
        std::vector<std::string> mixes;
        if (std::string_view(argv[3]) == "all" || std::string_view(argv[3]) == "all+imatrix") {
            const std::string suffix = std::string_view(argv[3]) == "all" ? "" : "+imatrix";
            for (const auto& t : gguf::requant::targets())
                if (!t.copy && !t.note.starts_with("alias")) mixes.push_back(std::string(t.name) + suffix);
        } else {
            std::string list = argv[3];
            for (size_t at = 0; at <= list.size();) {
                const size_t comma = std::min(list.find(',', at), list.size());
                if (comma > at) mixes.push_back(list.substr(at, comma - at));
                at = comma + 1;
            }
        }
        const auto imatrix = dir / "imatrix.gguf";
        test::write_generated_imatrix(in, imatrix);
        const char* baseline = std::getenv("BENCH_BASELINE");
        if (baseline) fmt::print("baseline: {} (run after each of ours)\n", baseline);
        fmt::print("{:<18} {:>9} {:>10} {:>14} {:>14} {:>12}{}\n", "mix (2 threads)", "wall s", "input GB/s", "peak RSS MiB",
                   "llama.cpp s", "faster", baseline ? fmt::format(" {:>12} {:>12} {:>12} {:>12}", "baseline s", "faster", "+fsync s", "faster") : "");
        for (const std::string& name : mixes) {
            std::string mix = name;
            bool with_imatrix = false;
            if (mix.size() > 8 && mix.ends_with("+imatrix")) {
                mix.resize(mix.size() - 8);
                with_imatrix = true;
            }
            const auto* target = gguf::requant::find_target(mix);
            if (!target) {
                fmt::print(stderr, "unknown mix {}\n", mix);
                return 2;
            }
            if (quant::needs_importance(target->base)) with_imatrix = true;
            std::vector<Run> r;
            std::vector<double> base, base_synced;
            for (int i = 0; i < runs; ++i) {
                r.push_back(run_child(in, dir / "out.gguf", target->name, 2, with_imatrix ? imatrix : std::filesystem::path()));
                if (r.back().seconds < 0 && !with_imatrix) {  // a mix whose rules need one for some tensors (Q2_K_S)
                    with_imatrix = true;
                    r.back() = run_child(in, dir / "out.gguf", target->name, 2, imatrix);
                }
                if (r.back().seconds < 0) return 1;
                if (baseline) {
                    const BaselineRun b = run_baseline(baseline, in, dir / "baseline.gguf", target->name, with_imatrix ? imatrix : std::filesystem::path());
                    base.push_back(b.seconds);
                    base_synced.push_back(b.seconds < 0 || b.fsync_seconds < 0 ? -1 : b.seconds + b.fsync_seconds);
                }
            }
            std::sort(base.begin(), base.end());
            std::sort(base_synced.begin(), base_synced.end());
            const double base_s = base.empty() ? 0 : base[base.size() / 2];
            const double synced_s = base_synced.empty() ? 0 : base_synced[base_synced.size() / 2];
            const std::string label = with_imatrix ? std::string(target->name) + "+imatrix" : std::string(target->name);
            std::sort(r.begin(), r.end(), [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
            const Run& m = r[r.size() / 2];
            const double theirs = llama_cpp_seconds(label);
            const bool base_ok = !base.empty() && base.front() >= 0;
            const bool synced_ok = base_ok && base_synced.front() >= 0;
            fmt::print("{:<18} {:>9.2f} {:>10.3f} {:>14.0f} {:>14} {:>12}{}\n", label, m.seconds, size / m.seconds / 1e9,
                       static_cast<double>(m.peak_rss_kb) / 1024.0, theirs > 0 ? fmt::format("{:.2f}", theirs) : "-",
                       theirs > 0 ? fmt::format("{:.2f}x", theirs / m.seconds) : "-",
                       !baseline ? ""
                       : base_ok ? fmt::format(" {:>12.2f} {:>11.2f}x {:>12} {:>12}", base_s, base_s / m.seconds,
                                               synced_ok ? fmt::format("{:.2f}", synced_s) : "failed",
                                               synced_ok ? fmt::format("{:.2f}x", synced_s / m.seconds) : "-")
                                 : fmt::format(" {:>12} {:>12} {:>12} {:>12}", "failed", "-", "-", "-"));
            std::fflush(stdout);
        }
        return 0;
    }
    fmt::print("{:<8} {:>7} {:>9} {:>10} {:>14} {:>16}\n", "mix", "threads", "wall s", "input GB/s", "peak RSS MiB", "peak anon MiB");
    for (const char* mix : {"Q8_0", "Q4_K_M"})
        for (int threads : {1, 2}) {
            std::vector<Run> r;
            for (int i = 0; i < runs; ++i) {
                r.push_back(run_child(in, dir / "out.gguf", mix, threads));
                if (r.back().seconds < 0) return 1;
            }
            std::sort(r.begin(), r.end(), [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
            const Run& m = r[r.size() / 2];
            fmt::print("{:<8} {:>7} {:>9.2f} {:>10.3f} {:>14.0f} {:>16.0f}\n", mix, threads, m.seconds, size / m.seconds / 1e9,
                       static_cast<double>(m.peak_rss_kb) / 1024.0, static_cast<double>(m.peak_anon_kb) / 1024.0);
        }
    fmt::print("llama.cpp (the issue's figures for the 984M shape, 2 threads): Q4_K_M 15.1 s, Q8_0 4.1 s, 1.49 GB peak RSS\n");
    return 0;
}
