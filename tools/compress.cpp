#include "compress.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "gguf/zst.h"
#include "options.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct CompressArgs {
    std::string input, output, frame_size = "16M";
    int level = 3, threads = 0;
    bool plain = false, quiet = false;
};

int hardware_threads(int requested) {
    return requested > 0 ? requested : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// One line on a terminal, at most ten times a second.
std::function<void(const zst::Progress&)> progress_line(bool show, const char* verb) {
    if (!show) return {};
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    return [last, verb](const zst::Progress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (p.done < p.total && now - *last < std::chrono::milliseconds(100)) return;
        *last = now;
        fmt::print(stderr, "\r{} {} / {} ({:.0f}%)   ", verb, human_bytes(p.done), human_bytes(p.total),
                   p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0);
        if (p.done == p.total) fmt::print(stderr, "\r{:<60}\r", "");
    };
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run_compress(const CompressArgs& a) {
    zst::CompressOptions o;
    o.level = a.level;
    o.threads = hardware_threads(a.threads);
    o.frame_bytes = parse_size(a.frame_size, "--frame-size");
    o.group_bytes = !a.plain;
    const std::string out = a.output.empty() ? a.input + ".zst" : a.output;
    const auto start = std::chrono::steady_clock::now();
    zst::Report r;
    try {
        r = zst::compress(a.input, out, o, progress_line(!a.quiet && ::isatty(STDERR_FILENO), "compressing"));
    } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("--level/--frame-size", e.what());
    }
    const double s = seconds_since(start);
    if (!a.quiet)
        fmt::print("{}: {} -> {} ({:.1f}% of the input), {} frames ({} byte-grouped, {} stored), {:.1f} s, {}/s\n", out, human_bytes(r.bytes_in),
                   human_bytes(r.bytes_out), 100.0 * static_cast<double>(r.bytes_out) / static_cast<double>(std::max<uint64_t>(1, r.bytes_in)),
                   r.frames, r.grouped_frames, r.stored_frames, s, human_bytes(static_cast<uint64_t>(static_cast<double>(r.bytes_in) / std::max(s, 1e-9))));
    return 0;
}

struct DecompressArgs {
    std::string input, output;
    int threads = 0;
    bool quiet = false;
};

int run_decompress(const DecompressArgs& a) {
    std::string out = a.output;
    if (out.empty()) {
        if (!a.input.ends_with(".zst")) throw CLI::ValidationError("output", "required when the input's name does not end in .zst");
        out = a.input.substr(0, a.input.size() - 4);
    }
    const auto start = std::chrono::steady_clock::now();
    const zst::Report r = zst::decompress(a.input, out, hardware_threads(a.threads), progress_line(!a.quiet && ::isatty(STDERR_FILENO), "decompressing"));
    const double s = seconds_since(start);
    if (!a.quiet)
        fmt::print("{}: {} from {} frames, every checksum verified, {:.1f} s, {}/s\n", out, human_bytes(r.bytes_out), r.frames, s,
                   human_bytes(static_cast<uint64_t>(static_cast<double>(r.bytes_out) / std::max(s, 1e-9))));
    return 0;
}

}  // namespace

void add_compress(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<CompressArgs>();
    CLI::App* c = app.add_subcommand("compress", "Compress a GGUF file into a seekable .gguf.zst (spec/gguf-zst.md)\n"
                                                 "  gguf compress IN [OUT.gguf.zst] [--level N] [--threads N] [--plain]");
    c->add_option("input", a->input, "GGUF file")->required();
    c->add_option("output", a->output, "Where to write (default: IN.zst; a temporary file is renamed into place when complete)");
    c->add_option("--level,-l", a->level, "zstd level (default 3; 1 to 19, negative for faster)");
    add_threads_option(c, a->threads, "-t,--threads");
    c->add_option("--frame-size", a->frame_size, "Most original bytes in one frame, the unit a reader decompresses: bytes, or with M or G (default 16M)");
    c->add_flag("--plain", a->plain, "No byte grouping of float tensors: larger, but `zstd -d` restores the file exactly");
    c->add_flag("--quiet,-q", a->quiet, "No progress line and no summary");
    c->callback([a, &run] { run = [a] { return run_compress(*a); }; });
}

void add_decompress(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<DecompressArgs>();
    CLI::App* c = app.add_subcommand("decompress", "Restore the GGUF file from a .gguf.zst, every frame's checksum verified\n"
                                                   "  gguf decompress IN.gguf.zst [OUT.gguf] [--threads N]");
    c->add_option("input", a->input, ".gguf.zst file")->required();
    c->add_option("output", a->output, "Where to write (default: IN without .zst)");
    add_threads_option(c, a->threads, "-t,--threads");
    c->add_flag("--quiet,-q", a->quiet, "No progress line and no summary");
    c->callback([a, &run] { run = [a] { return run_decompress(*a); }; });
}

}  // namespace gguf::tools
