#include "imatrix.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>

#include "gguf/error.h"
#include "gguf/model.h"
#include "infer/imatrix.h"
#include "infer/model.h"
#include "infer/tokenizer.h"
#include "gpu.h"
#include "json.h"
#include "options.h"
#include "quant/imatrix.h"
#include "text.h"

namespace gguf::tools {

namespace {

using quant::ImatrixFormat;
using quant::ImportanceMatrix;

struct ShowOptions {
    std::string path;
    std::string sort = "name";
    int top = 10;
    uint32_t chunk_size = ImportanceMatrix::kLegacyChunkSize;
    bool json = false;
};

// One line of `show`: an entry and its statistics.
struct Row {
    const std::string* name;
    const quant::ImatrixEntry* entry;
    quant::ImatrixStats stats;
};

const char* format_name(ImatrixFormat f) { return f == ImatrixFormat::Gguf ? "gguf" : "legacy (.dat)"; }

int run_show(const ShowOptions& o) {
    const ImportanceMatrix m = ImportanceMatrix::load(o.path, o.chunk_size);
    std::vector<Row> rows;
    const auto top = static_cast<size_t>(std::max(o.top, 0));
    for (const auto& [name, e] : m.entries()) rows.push_back({&name, &e, quant::stats(e, *m.find(name), m.chunk_size, top)});
    auto by = [&](auto key) { std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) { return key(a) > key(b); }); };
    if (o.sort == "mean") by([](const Row& r) { return r.stats.mean; });
    else if (o.sort == "max") by([](const Row& r) { return r.stats.max; });
    else if (o.sort == "chunks") by([](const Row& r) { return r.stats.chunks; });
    else if (o.sort == "entries") by([](const Row& r) { return static_cast<double>(r.entry->sums.size()); });

    auto column = [](const Row& r, size_t i) { return r.entry->experts() > 1 ? fmt::format("{}:{}", i / r.entry->columns(), i % r.entry->columns()) : fmt::format("{}", i); };
    if (o.json) {
        Json j;
        j.begin_object().field("file", o.path).field("format", m.format == ImatrixFormat::Gguf ? "gguf" : "legacy");
        j.key("datasets").begin_array();
        for (const std::string& d : m.datasets) j.value(d);
        j.end_array().field("chunk_count", m.chunk_count).field("chunk_size", m.chunk_size).field("entries", static_cast<uint64_t>(m.size()));
        j.key("tensors").begin_array();
        for (const Row& r : rows) {
            const std::vector<float>& w = *m.find(*r.name);
            j.begin_object().field("name", *r.name).field("values", static_cast<uint64_t>(r.entry->sums.size()))
                .field("columns", static_cast<uint64_t>(r.entry->columns())).field("experts", static_cast<uint64_t>(r.entry->experts()))
                .field("chunks", r.stats.chunks).field("mean", r.stats.mean).field("max", r.stats.max);
            j.key("top").begin_array();
            for (size_t i : r.stats.top) {
                j.begin_object().field("column", static_cast<uint64_t>(i % r.entry->columns()));
                if (r.entry->experts() > 1) j.field("expert", static_cast<uint64_t>(i / r.entry->columns()));
                j.field("importance", w[i]).end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().end_object();
        std::printf("%s\n", j.str().c_str());
        return 0;
    }
    std::string out = fmt::format("{}: {} importance matrix, {} entries, {} chunks of {} tokens{}\n", o.path, format_name(m.format), m.size(),
                                  m.chunk_count, m.chunk_size, m.format == ImatrixFormat::Legacy ? " (chunk size assumed)" : "");
    for (const std::string& d : m.datasets) out += fmt::format("dataset: {}\n", d);
    size_t width = 6;
    for (const Row& r : rows) width = std::max(width, r.name->size());
    out += fmt::format("\n{:<{}} {:>8} {:>7} {:>8} {:>11} {:>11}  most important columns{}\n", "tensor", width, "values", "experts", "chunks", "mean",
                       "max", rows.empty() || std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.entry->experts() == 1; }) ? "" : " (expert:column)");
    for (const Row& r : rows) {
        std::string columns;
        for (size_t i : r.stats.top) columns += (columns.empty() ? "" : " ") + column(r, i);
        out += fmt::format("{:<{}} {:>8} {:>7} {:>8.1f} {:>11.4g} {:>11.4g}  {}\n", *r.name, width, r.entry->sums.size(), r.entry->experts(),
                           r.stats.chunks, r.stats.mean, r.stats.max, columns);
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

// The format a path asks for: .gguf, else legacy (llama.cpp's importance tool decides the same way).
ImatrixFormat format_for(const std::string& path, const std::string& asked) {
    if (asked == "gguf") return ImatrixFormat::Gguf;
    if (asked == "dat" || asked == "legacy") return ImatrixFormat::Legacy;
    return path.ends_with(".gguf") ? ImatrixFormat::Gguf : ImatrixFormat::Legacy;
}

struct ConvertOptions {
    std::string in, out, format;
    std::vector<std::string> inputs;
    uint32_t chunk_size = ImportanceMatrix::kLegacyChunkSize;
};

int run_convert(const ConvertOptions& o) {
    refuse_overwrite(o.out, o.in);
    const ImportanceMatrix m = ImportanceMatrix::load(o.in, o.chunk_size);
    const ImatrixFormat to = format_for(o.out, o.format);
    m.save(o.out, to);
    std::fprintf(stderr, "%s: %zu entries, %s -> %s\n", o.out.c_str(), m.size(), format_name(m.format), format_name(to));
    return 0;
}

int run_merge(const ConvertOptions& o) {
    for (const std::string& in : o.inputs) refuse_overwrite(o.out, in);
    ImportanceMatrix merged;
    for (const std::string& in : o.inputs) {
        const ImportanceMatrix m = ImportanceMatrix::load(in, o.chunk_size);
        if (merged.chunk_size && m.chunk_size && m.chunk_size != merged.chunk_size)
            std::fprintf(stderr, "warning: %s was computed with chunks of %u tokens, the first input with %u; the merged chunk count uses %u\n",
                         in.c_str(), m.chunk_size, merged.chunk_size, merged.chunk_size);
        try {
            merged.merge(m);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(fmt::format("{}: {}", in, e.what()));
        }
    }
    const ImatrixFormat to = format_for(o.out, o.format);
    merged.save(o.out, to);
    std::fprintf(stderr, "%s: %zu entries from %zu files, %u chunks\n", o.out.c_str(), merged.size(), o.inputs.size(), merged.chunk_count);
    return 0;
}

struct ComputeOptions {
    std::string model, text, out = "imatrix.gguf", activations = "ggml";
    uint32_t n_ctx = 512;
    uint32_t chunks = 0;
    bool process_output = false, gpu = false;
    int threads = 0;
};

// llama-imatrix's output format choice: legacy for a .dat name, GGUF otherwise.
ImatrixFormat compute_format(const std::string& path) { return path.ends_with(".dat") ? ImatrixFormat::Legacy : ImatrixFormat::Gguf; }

int run_compute(const ComputeOptions& o) {
    refuse_overwrite(o.out, o.model);
    refuse_overwrite(o.out, o.text);
    const std::string text = read_text_file(o.text);
    const Model file = Model::open(o.model);
    const infer::Model model(file);
    const infer::Tokenizer tok = infer::Tokenizer::from_gguf(file);
    const std::vector<infer::TokenId> ids = tok.encode(text, true, false);
    if (!o.gpu) model.map_in();  // the weights' page faults taken here, not in the first chunk (not when they go to a GPU)
    infer::ImatrixOptions io;
    io.n_ctx = o.n_ctx;
    io.max_chunks = o.chunks;
    io.process_output = o.process_output;
    io.eval.threads = o.threads;
    io.eval.arithmetic = o.activations == "f32" ? infer::Arithmetic::F32 : infer::Arithmetic::Ggml;
    const auto backend = gpu_backend(o.gpu, {&model});
    io.eval.backend = backend.get();
    io.datasets = {o.text};
    const ImatrixFormat to = compute_format(o.out);
    std::fprintf(stderr, "%s: %zu tokens of %s, chunks of %u, %s activations%s%s\n", o.model.c_str(), ids.size(), o.text.c_str(), o.n_ctx,
                 std::string(infer::arithmetic_name(io.eval.arithmetic)).c_str(), o.process_output ? ", output.weight included" : "",
                 backend ? (", weight products on " + std::string(backend->name())).c_str() : "");
    const auto start = std::chrono::steady_clock::now();
    const auto progress = [&](uint32_t done, uint32_t total, double ppl) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "[%u/%u] %.4f  %.1f s, %.0f tokens/s\n", done, total, ppl, s, static_cast<double>(done) * o.n_ctx / std::max(s, 1e-9));
    };
    infer::ImatrixResult r;
    try {
        r = infer::compute_imatrix(model, ids, io, progress);
    } catch (const std::invalid_argument& e) {  // the text too short for its chunks, and the like: say which text
        throw std::runtime_error(o.text + ": " + e.what());
    }
    r.matrix.save(o.out, to);
    std::fprintf(stderr, "%s: %zu entries, %u chunks of %u tokens (%s), final PPL %.4f +/- %.5f\n", o.out.c_str(), r.matrix.size(), r.chunks,
                 o.n_ctx, format_name(to), r.nll.ppl(), r.nll.ppl_uncertainty());
    return 0;
}

}  // namespace

void add_imatrix(CLI::App& app, std::function<int()>& run) {
    CLI::App* c = app.add_subcommand("imatrix", "Compute, show, convert and merge importance-matrix files (llama.cpp's GGUF and legacy .dat formats)");
    c->require_subcommand(1);
    const std::string chunk_help = fmt::format("Chunk size (tokens) a legacy .dat file was computed with; it does not record it (default {})",
                                               ImportanceMatrix::kLegacyChunkSize);

    auto show = std::make_shared<ShowOptions>();
    CLI::App* s = c->add_subcommand("show", "Per tensor: values, experts, chunks, mean and max importance, the most important columns");
    s->add_option("file", show->path, "Importance matrix (.gguf or legacy .dat)")->required();
    s->add_option("--sort", show->sort, "Order: name, mean, max, chunks or entries (largest first)")
        ->check(CLI::IsMember({"name", "mean", "max", "chunks", "entries"}));
    s->add_option("--top", show->top, "How many of the most important columns to list (default 10)")->check(CLI::NonNegativeNumber);
    s->add_option("--chunk-size", show->chunk_size, chunk_help)->check(CLI::PositiveNumber);
    s->add_flag("--json", show->json, "Print JSON (schema: spec/check-json.md, imatrix show)");
    s->callback([show, &run] { run = [show] { return run_show(*show); }; });

    auto conv = std::make_shared<ConvertOptions>();
    CLI::App* v = c->add_subcommand("convert", "Convert between the GGUF and legacy formats (by OUT's extension: .gguf or else legacy)");
    v->add_option("in", conv->in, "Input importance matrix")->required();
    v->add_option("out", conv->out, "Output file")->required();
    v->add_option("--format", conv->format, "Output format regardless of the extension: gguf or dat")->check(CLI::IsMember({"gguf", "dat", "legacy"}));
    v->add_option("--chunk-size", conv->chunk_size, chunk_help)->check(CLI::PositiveNumber);
    v->callback([conv, &run] { run = [conv] { return run_convert(*conv); }; });

    auto merge = std::make_shared<ConvertOptions>();
    CLI::App* g = c->add_subcommand("merge", "Combine importance matrices, weighting each by how much data it saw (as llama.cpp does)");
    g->add_option("out", merge->out, "Output file (.gguf, or else legacy)")->required();
    g->add_option("inputs", merge->inputs, "Importance matrices to combine")->required()->expected(1, -1);
    g->add_option("--format", merge->format, "Output format regardless of the extension: gguf or dat")->check(CLI::IsMember({"gguf", "dat", "legacy"}));
    g->add_option("--chunk-size", merge->chunk_size, chunk_help)->check(CLI::PositiveNumber);
    g->callback([merge, &run] { run = [merge] { return run_merge(*merge); }; });

    auto comp = std::make_shared<ComputeOptions>();
    CLI::App* p = c->add_subcommand("compute", "Compute an importance matrix by evaluating a text, as llama-imatrix does");
    p->add_option("model", comp->model, "Model (.gguf)")->required();
    p->add_option("-f,--file", comp->text, "Calibration text")->required();
    p->add_option("-o,--output", comp->out, "Output file: legacy format when it ends in .dat, GGUF otherwise (default imatrix.gguf)");
    p->add_option("-c,--ctx-size", comp->n_ctx, "Tokens per chunk (default 512)")->check(CLI::Range(16u, 1u << 20));
    p->add_option("--chunks", comp->chunks, "Evaluate at most this many chunks (default: every whole chunk)");
    p->add_flag("--process-output", comp->process_output, "Collect output.weight too");
    p->add_option("--activations", comp->activations, "f32, or ggml: round activations as llama.cpp's CPU kernels do (default ggml)")
        ->check(CLI::IsMember({"f32", "ggml"}));
    add_threads_option(p, comp->threads);
    add_gpu_option(p, comp->gpu);
    p->callback([comp, &run] { run = [comp] { return run_compute(*comp); }; });
}

}  // namespace gguf::tools
