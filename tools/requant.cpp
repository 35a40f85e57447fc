#include "requant.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>

#include "gguf/model.h"
#include "gguf/render.h"
#include "json.h"
#include "options.h"
#include "quant/quant.h"
#include "requant/run.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct RequantOptions {
    std::string input, output, type;
    std::string positional_type;            // llama-quantize's form: IN OUT TYPE [NTHREADS]
    std::optional<int> positional_threads;
    std::optional<std::string> imatrix, output_type, token_embd_type;
    std::vector<std::string> include, exclude, tensor_types, overrides;
    std::string prune_layers;
    std::string effort = "default";
    bool list = false, pure = false, leave_output = false, allow_requantize = false, keep_split = false;
    bool dry_run = false, quiet = false, json = false;
    bool unbiased_scales = false;
    bool least_squares_scales = false;
    bool no_direct_io = false;
    int threads = 0;
};

std::atomic<bool> g_cancel{false};
extern "C" void on_signal(int) { g_cancel.store(true); }

TypeId parse_type(const std::string& option, const std::string& name) {
    const std::optional<TypeId> t = type_from_name(name);
    if (!t) throw CLI::ValidationError(option, fmt::format("'{}' is not a tensor type", name));
    return *t;
}

std::regex parse_regex(const std::string& option, const std::string& text) {
    try {
        return std::regex(text);
    } catch (const std::regex_error& e) {
        throw CLI::ValidationError(option, fmt::format("invalid regular expression '{}': {}", text, e.what()));
    }
}

// --prune-layers 0,5,7: block numbers, sorted and without repeats.
std::vector<uint32_t> parse_layer_list(const std::string& text) {
    std::vector<uint32_t> out;
    size_t at = 0;
    while (at <= text.size()) {
        const size_t comma = std::min(text.find(',', at), text.size());
        const std::string item = text.substr(at, comma - at);
        uint32_t n = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size())
            throw CLI::ValidationError("--prune-layers", fmt::format("'{}' is not a block number (expected a list such as 0,5,7)", item));
        out.push_back(n);
        at = comma + 1;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

int list_targets() {
    std::string out = fmt::format("Targets for --type (or TYPE after OUT), case-insensitive; llama.cpp's file type id works too:\n"
                                  "  {:<10} {:>5}  {:<8} {:>5}  {}\n", "name", "ftype", "base", "bpw", "what it holds");
    for (const requant::Target& t : requant::targets()) {
        if (t.copy) {
            out += fmt::format("  {:<10} {:>5}  {:<8} {:>5}  {}\n", t.name, "input", "-", "-", t.note);
            continue;
        }
        const TypeInfo& base = type_info(t.base);
        out += fmt::format("  {:<10} {:>5}  {:<8} {:>5.2f}  {}\n", t.name, t.file_type, base.name, bits_per_weight(base.id), t.note);
    }
    out += "bpw: bits per weight of the base type; a mix gives some tensors more (--dry-run shows the total).\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}


void print_plan(const requant::Prepared& p, const RequantOptions& o) {
    if (o.json) {
        Json j;
        j.begin_object().field("input", o.input).field("type", std::string(o.type)).key("tensors").begin_array();
        for (const requant::TensorPlan& t : p.plan) {
            const TensorInfo& i = *t.tensor->info;
            j.begin_object().field("name", t.name).field("from", type_info(t.from).name).field("to", type_info(t.to).name)
                .field("bytes_in", i.n_bytes).field("bytes_out", tensor_bytes(t.to, i.n_elements));
            if (!t.fallback.empty()) j.field("fallback", t.fallback);
            j.end_object();
        }
        j.end_array().key("warnings").begin_array();
        for (const std::string& w : p.report.warnings) j.value(w);
        j.end_array().field("bytes_in", p.report.bytes_in).field("bytes_out", p.report.bytes_out)
            .field("bits_per_weight_in", p.report.bits_per_weight_in()).field("bits_per_weight_out", p.report.bits_per_weight_out()).end_object();
        const std::string s = j.str() + "\n";
        std::fwrite(s.data(), 1, s.size(), stdout);
        return;
    }
    std::string out = fmt::format("{:<40} {:<22} {:>7}    {:<7} {:>10}    {:>10}\n", "tensor", "shape", "from", "to", "bytes", "after");
    for (const requant::TensorPlan& t : p.plan) {
        const TensorInfo& i = *t.tensor->info;
        const uint64_t after = tensor_bytes(t.to, i.n_elements);
        out += fmt::format("{:<40} {:<22} {:>7} -> {:<7} {:>10} -> {:>10}{}\n", t.name, shape_text(i.dims()), type_info(t.from).name,
                           type_info(t.to).name, human_bytes(i.n_bytes), human_bytes(after), t.fallback.empty() ? "" : "  (" + t.fallback + ")");
    }
    out += fmt::format("{} tensors, {} converted{}: {} -> {} ({:.2f} -> {:.2f} bits per weight)\n", p.report.tensors, p.report.converted,
                       p.report.fallbacks ? fmt::format(", {} by fallback", p.report.fallbacks) : "", human_bytes(p.report.bytes_in),
                       human_bytes(p.report.bytes_out), p.report.bits_per_weight_in(), p.report.bits_per_weight_out());
    std::fwrite(out.data(), 1, out.size(), stdout);
    for (const std::string& w : p.report.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
}

// One line on a terminal, redrawn at most ten times a second: tensor i/n, bytes, speed, ETA.
class ProgressLine {
public:
    void operator()(const requant::Progress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (p.done_bytes < p.total_bytes && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double s = std::chrono::duration<double>(now - start_).count();
        const double rate = s > 0 ? static_cast<double>(p.done_bytes) / s : 0;
        const double eta = rate > 0 ? static_cast<double>(p.total_bytes - p.done_bytes) / rate : 0;
        fmt::print(stderr, "\r[{:>4}/{:<4}] {:<36.36} {:>10} / {:<10} {:>9}/s  ETA {}:{:02}  ", p.index, p.count, p.tensor,
                   human_bytes(p.done_bytes), human_bytes(p.total_bytes), human_bytes(static_cast<uint64_t>(rate)),
                   static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    }
    void finish() { fmt::print(stderr, "\r{:<110}\r", ""); }

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

int run_requant(const RequantOptions& o) {
    if (o.list) return list_targets();
    if (o.input.empty()) throw CLI::ValidationError("input", "an input file is required");
    std::string type = o.type;
    if (!o.positional_type.empty()) {
        if (!type.empty() && type != o.positional_type)
            throw CLI::ValidationError("--type", fmt::format("given twice: --type {} and {} after the files", type, o.positional_type));
        type = o.positional_type;
    }
    if (type.empty()) throw CLI::ValidationError("--type", "required (gguf requant --list shows the choices)");
    requant::RunOptions r;
    r.plan.target = requant::find_target(type);
    if (!r.plan.target) throw CLI::ValidationError("--type", fmt::format("'{}' is not a type or mix (gguf requant --list)", type));
    r.plan.pure = o.pure;
    r.plan.leave_output = o.leave_output;
    if (o.output_type) r.plan.output_type = parse_type("--output-tensor-type", *o.output_type);
    if (o.token_embd_type) r.plan.token_embd_type = parse_type("--token-embedding-type", *o.token_embd_type);
    for (const std::string& s : o.tensor_types) {
        const size_t eq = s.rfind('=');
        if (eq == std::string::npos || eq == 0) throw CLI::ValidationError("--tensor-type", fmt::format("'{}' is not REGEX=TYPE", s));
        r.plan.tensor_types.emplace_back(parse_regex("--tensor-type", s.substr(0, eq)), parse_type("--tensor-type", s.substr(eq + 1)));
        r.plan.tensor_type_patterns.push_back(s.substr(0, eq));
    }
    if (!o.prune_layers.empty()) r.plan.prune_layers = parse_layer_list(o.prune_layers);
    if (o.imatrix) r.imatrix = *o.imatrix;
    for (const std::string& s : o.include) r.include_weights.push_back(parse_regex("--include-weights", s));
    for (const std::string& s : o.exclude) r.exclude_weights.push_back(parse_regex("--exclude-weights", s));
    for (const std::string& s : o.overrides) r.overrides.push_back(parse_key_value(s, "--override-kv"));
    r.allow_requantize = o.allow_requantize;
    r.effort = parse_effort(o.effort);
    r.scale_fit = o.unbiased_scales ? quant::ScaleFit::Unbiased : o.least_squares_scales ? quant::ScaleFit::LeastSquares : quant::ScaleFit::Default;
    r.direct_io = !o.no_direct_io;
    if (o.positional_threads && o.threads && *o.positional_threads != o.threads)
        throw CLI::ValidationError("--threads", fmt::format("given twice: --threads {} and {} after the type", o.threads, *o.positional_threads));
    r.threads = quant::thread_count(o.positional_threads ? *o.positional_threads : o.threads);
    r.keep_split = o.keep_split;

    if (o.dry_run) {
        const Model m = Model::open(o.input);
        print_plan(requant::prepare(m, r), o);
        return 0;
    }
    if (o.output.empty()) throw CLI::ValidationError("output", "an output file is required (or --dry-run)");
    r.cancel = &g_cancel;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const bool show = !o.quiet && ::isatty(STDERR_FILENO);
    ProgressLine line;
    const auto start = std::chrono::steady_clock::now();
    requant::Report s;
    try {
        s = requant::requantize(o.input, o.output, r, show ? std::function<void(const requant::Progress&)>(std::ref(line)) : nullptr);
    } catch (const std::exception& e) {
        if (show) line.finish();
        if (g_cancel.load()) {
            std::fprintf(stderr, "interrupted: nothing was written to %s\n", o.output.c_str());
            return 130;
        }
        throw std::runtime_error(fmt::format("{} (nothing was written to {})", e.what(), o.output));
    }
    if (show) line.finish();
    for (const std::string& w : s.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!o.quiet)
        fmt::print("{}: {} tensors, {} converted: {} -> {} ({:.2f} -> {:.2f} bits per weight) in {:.1f} s\n",
                   s.outputs.size() > 1 ? fmt::format("{} .. {} ({} parts)", s.outputs.front().string(), s.outputs.back().string(), s.outputs.size())
                                        : o.output, s.tensors,
                   s.converted, human_bytes(s.bytes_in), human_bytes(s.bytes_out), s.bits_per_weight_in(), s.bits_per_weight_out(), secs);
    return 0;
}

}  // namespace

void add_requant(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<RequantOptions>();
    CLI::App* c = app.add_subcommand("requant", "Re-quantize a model to a tensor type or one of llama.cpp's mixes (Q4_K_M, ...)\n"
                                               "  gguf requant IN OUT --type TYPE [OPTIONS]\n"
                                               "  gguf requant [OPTIONS] IN OUT TYPE [NTHREADS]   (llama-quantize's order)\n"
                                               "  gguf requant IN --type TYPE --dry-run [--json]\n"
                                               "  gguf requant --list");
    c->add_option("input", o->input, "GGUF model, or any part of a split set");
    c->add_option("output", o->output, "Where to write the result (a temporary file is renamed into place when complete)");
    c->add_option("TYPE", o->positional_type, "The target, as llama-quantize takes it after the files (same as --type)");
    c->add_option("NTHREADS", o->positional_threads, "Threads, as llama-quantize takes them after TYPE (same as --threads)")
        ->check(CLI::Range(0, 4096));
    c->add_option("--type,-t", o->type, "REQUIRED (here or as TYPE): a mix such as Q4_K_M or IQ4_XS, a type, F16, BF16, F32, "
                                        "COPY, or llama.cpp's file type id (--list)");
    c->add_flag("--list", o->list, "List the targets with their bits per weight");
    c->add_option("--imatrix", o->imatrix, "Importance matrix: llama.cpp's GGUF format, or its legacy .dat (chunk size 512 assumed)");
    c->add_option("--include-weights", o->include, "Use the importance matrix only for tensors matching REGEX (repeatable)");
    c->add_option("--exclude-weights", o->exclude, "Do not use the importance matrix for tensors matching REGEX (repeatable)");
    c->add_option("--tensor-type", o->tensor_types, "REGEX=TYPE: tensors matching REGEX get TYPE (repeatable; first match wins)");
    c->add_option("--output-tensor-type", o->output_type, "Type for output.weight");
    c->add_option("--token-embedding-type", o->token_embd_type, "Type for token_embd.weight");
    c->add_flag("--pure", o->pure, "The target's base type for every quantizable tensor, no per-tensor rules");
    c->add_flag("--leave-output-tensor", o->leave_output, "Keep output.weight as it is");
    c->add_flag("--allow-requantize", o->allow_requantize, "Allow converting tensors that are already quantized");
    c->add_option("--effort", o->effort,
                  "How hard the quantizers search: default (lower error than llama.cpp's quantizers), fast (Q4_0, Q4_1, Q5_0, Q5_1 without an "
                  "importance matrix: only the scales llama.cpp's rounding takes, never more error than it; the fit 4-5x faster on Q4_0 and Q5_0, "
                  "1.6x on Q4_1 and Q5_1; Q8_0: "
                  "without one, llama.cpp's rounding (its bytes, about half the default's time), with one, llama.cpp's scale and its "
                  "weighted refit, about 1.3x faster than the default), best (a wider search: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; Q4_K, Q5_K: more starting scales and two rounds of the super-block refit (their default with an importance matrix), Q2_K: the two "
                  "rounds and a wider re-pick of each sub-block's scale and minimum codes, 1.6-2.6x the mix's time; the grid i-quants IQ1_S to IQ3_S run both their searches, narrow (IQ1: ternary) and wide, "
                  "and keep the better fit of each block, 2.5-3x the time, IQ1 about 8x); other types quantize alike at every effort")
        ->capture_default_str();
    auto* unbiased = c->add_flag("--unbiased-scales", o->unbiased_scales,
                "After each block's fit, multiply its f16 scales by sum x x / sum x y so its dequantized values y keep the source's "
                "projection, which a least-squares fit shrinks: more RMSE, less KL divergence on trained models at 2-3 bits (README: "
                "Unbiased scales). The legacy, k-quant and i-quant types (--effort fast then loses its promise of never more "
                "error than llama.cpp's rounding). By default IQ1_S, IQ1_M, IQ2_XXS and IQ2_XS go halfway (times the square root), "
                "IQ2_S a quarter of the way (times the fourth root)");
    c->add_flag("--least-squares-scales", o->least_squares_scales,
                "Keep every block's least-squares scales, IQ1_S's, IQ1_M's and IQ2_XXS/XS/S's too (by default their scales go part of "
                "the way to keeping the source's projection, see --unbiased-scales)")
        ->excludes(unbiased);
    c->add_option("--override-kv", o->overrides, "KEY=TYPE:VALUE metadata to set, TYPE int, float, bool or str (repeatable)");
    c->add_option("--prune-layers", o->prune_layers, "LIST: leave out these blocks (comma-separated numbers) and renumber the rest, "
                                                     "as llama-quantize does; block_count and per-layer arrays follow");
    c->add_flag("--no-direct-io", o->no_direct_io,
                "Write the output through the page cache. By default it is written with O_DIRECT where the file system allows it "
                "(the same bytes; the kernel neither copies them into the cache nor writes them back at the end)");
    c->add_flag("--keep-split", o->keep_split, "A split input becomes a split set with the same parts: OUT-00001-of-0000N.gguf, ...");
    add_threads_option(c, o->threads);
    c->add_flag("--dry-run", o->dry_run, "Print the plan (per tensor: old type, new type, bytes) and totals; write nothing");
    c->add_flag("--json", o->json, "With --dry-run: print the plan as JSON");
    c->add_flag("--quiet,-q", o->quiet, "No progress line and no summary");
    c->callback([o, &run] { run = [o] { return run_requant(*o); }; });
}

}  // namespace gguf::tools
