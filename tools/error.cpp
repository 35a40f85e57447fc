#include "error.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <regex>

#include "gguf/model.h"
#include "gguf/file_type.h"
#include "json.h"
#include "requant/error.h"
#include "options.h"
#include "kernels/error_stats.h"
#include "quant/quant.h"
#include "quant/imatrix.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct ErrorOptions {
    std::string path;
    std::string type;
    std::optional<std::string> tensors;
    std::optional<std::string> imatrix;
    bool json = false;
    int threads = 0;
};

using Row = requant::ErrorRow;
using Skipped = requant::ErrorSkip;

void print_text(const ErrorOptions& o, TypeId target, const std::vector<Row>& rows, const std::vector<Skipped>& skipped,
                const kernels::ErrorStats& total) {
    std::string out = fmt::format("{} -> {} ({:.2f} bits per weight){}\n\n", o.path, type_info(target).name, bits_per_weight(target),
                                  o.imatrix ? fmt::format(", importance from {}", *o.imatrix) : "");
    size_t width = 6;
    for (const Row& r : rows) width = std::max(width, std::min<size_t>(r.tensor->info->name.size(), 48));
    // The importance-weighted RMSE where the imatrix has the tensor (spec/check-json.md).
    const auto weighted = [](const kernels::ErrorStats& e) { return std::isnan(e.weighted_rmse()) ? std::string("-") : fmt::format("{:.4e}", e.weighted_rmse()); };
    out += fmt::format("  {:<{}}  {:<8} {:>14} {:>12} {:>12} {:>12} {:>8}\n", "tensor", width, "from", "elements", "rmse", "imatrix rmse", "max |err|", "snr dB");
    for (const Row& r : rows)
        out += fmt::format("  {:<{}}  {:<8} {:>14} {:>12.4e} {:>12} {:>12.4e} {:>8.2f}\n", r.tensor->info->name, width,
                           type_info(r.tensor->info->type).name, r.stats.values, r.stats.rmse(), weighted(r.stats), r.stats.max_abs_error,
                           r.stats.snr_db());
    out += fmt::format("  {:<{}}  {:<8} {:>14} {:>12.4e} {:>12} {:>12.4e} {:>8.2f}\n", "total", width, "", total.values, total.rmse(),
                       weighted(total), total.max_abs_error, total.snr_db());
    for (const Skipped& s : skipped) out += fmt::format("  skipped {}: {}\n", s.name, s.reason);
    std::fwrite(out.data(), 1, out.size(), stdout);
}

void stats_json(Json& j, const kernels::ErrorStats& s) {
    j.field("elements", s.values).field("rmse", s.rmse());
    j.key("weighted_rmse");
    std::isnan(s.weighted_rmse()) ? j.null() : j.value(s.weighted_rmse());
    j.field("max_abs_error", s.max_abs_error).field("snr_db", s.snr_db());
}

void print_json(const ErrorOptions& o, TypeId target, const std::vector<Row>& rows, const std::vector<Skipped>& skipped,
                const kernels::ErrorStats& total) {
    Json j;
    j.begin_object().field("file", o.path).field("type", type_info(target).name).field("bits_per_weight", bits_per_weight(target));
    j.key("imatrix");
    o.imatrix ? j.value(*o.imatrix) : j.null();
    j.key("tensors").begin_array();
    for (const Row& r : rows) {
        j.begin_object().field("name", r.tensor->info->name).field("source_type", type_info(r.tensor->info->type).name);
        j.key("shape").begin_array();
        for (uint64_t d : r.tensor->info->dims()) j.value(d);
        j.end_array();
        stats_json(j, r.stats);
        j.field("imatrix", r.weighted).end_object();
    }
    j.end_array();
    j.key("skipped").begin_array();
    for (const Skipped& s : skipped) j.begin_object().field("name", s.name).field("reason", s.reason).end_object();
    j.end_array();
    j.key("total").begin_object();
    stats_json(j, total);
    j.end_object().end_object();
    std::string out = j.str() + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

// For a mix's name (Q4_K_M), what to give instead: its base type.
std::string mix_hint(const std::string& name) {
    const std::optional<FileType> mix = file_type_from_name(name);
    if (!mix) return "";
    const TypeInfo& base = type_info(find_file_type(static_cast<uint32_t>(*mix))->base);
    return fmt::format(" ({} is one of llama.cpp's mixes of types; its base type is {})", name, base.name);
}

int run_error(const ErrorOptions& o) {
    const std::optional<TypeId> target = type_from_name(o.type);
    if (!target || !quant::can_quantize(*target)) {
        std::string valid;
        for (const TypeInfo& t : all_types())
            if (quant::can_quantize(t.id)) valid += (valid.empty() ? "" : ", ") + std::string(t.name);
        throw CLI::ValidationError("--type", fmt::format("'{}' is not a type ggufkit can quantize to; one of: {}{}", o.type, valid,
                                                         mix_hint(o.type)));
    }
    std::optional<std::regex> filter;
    if (o.tensors) {
        try {
            filter.emplace(*o.tensors);
        } catch (const std::regex_error& e) {
            throw CLI::ValidationError("--tensor", fmt::format("invalid regular expression '{}': {}", *o.tensors, e.what()));
        }
    }
    const Model model = Model::open(o.path);
    std::optional<quant::ImportanceMatrix> imatrix;
    if (o.imatrix) imatrix = quant::ImportanceMatrix::load(*o.imatrix);
    const bool progress = !o.json && ::isatty(STDERR_FILENO);
    // The tensor's name and how far into it the measurement is (a large one takes seconds).
    requant::ErrorProgress show;
    if (progress)
        show = [](size_t i, size_t n, const std::string& name, int64_t done, int64_t all) {
            fmt::print(stderr, "\r[{}/{}] {:<60} {:3}%", i + 1, n, name.substr(0, 60), all ? 100 * done / all : 100);
        };
    const requant::ErrorReport r = requant::measure_error(model, *target, imatrix ? &*imatrix : nullptr, filter, quant::thread_count(o.threads), show);
    const std::vector<Row>& rows = r.rows;
    const std::vector<Skipped>& skipped = r.skipped;
    const kernels::ErrorStats& total = r.total;
    if (progress) fmt::print(stderr, "\r{:<90}\r", "");
    if (o.json) print_json(o, *target, rows, skipped, total);
    else print_text(o, *target, rows, skipped, total);
    return 0;
}

}  // namespace

void add_error(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<ErrorOptions>();
    CLI::App* c = app.add_subcommand("error", "Re-quantize tensors to a type and measure the error (RMSE, max error, SNR)");
    c->add_option("file", o->path, "GGUF file, or any part of a split set")->required();
    c->add_option("--type,-t", o->type, "Target tensor type, e.g. q4_K, q8_0, iq4_xs")->required();
    c->add_option("--tensor", o->tensors, "Only tensors whose names match this regular expression");
    c->add_option("--imatrix", o->imatrix, "Importance matrix: llama.cpp's GGUF format (NAME.in_sum2, NAME.counts) or its legacy .dat");
    add_threads_option(c, o->threads);
    c->add_flag("--json", o->json, "Print JSON (schema: spec/check-json.md)");
    c->callback([o, &run] { run = [o] { return run_error(*o); }; });
}

}  // namespace gguf::tools
