#include "compare.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <regex>

#include "convert/compare.h"
#include "json.h"
#include "options.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

namespace gguf::tools {

namespace {

struct CompareArgs {
    std::string original;
    std::vector<std::string> versions;
    std::string types = "q4_0,q4_K,iq4_xs,q8_0";
    std::optional<std::string> imatrix, tensors;
    bool json = false, per_tensor = false;
    int threads = 0;
};

// A figure for the table: "-" where there is none (nothing measured, no weights), "nan"
// where a non-finite value differed, "exact" for an infinite SNR.
std::string figure(double v, const char* format = "{:.4e}") {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "exact" : "-inf";
    return fmt::format(fmt::runtime(format), v);
}

void number_or_null(Json& j, std::string_view key, double v, bool present) {
    j.key(key);
    present ? j.value(v) : j.null();
}

void stats_json(Json& j, const convert::MethodStats& s) {
    const bool measured = s.values > 0;
    j.field("elements", s.values);
    number_or_null(j, "bits_per_weight", s.bits_per_weight(), measured);
    number_or_null(j, "rmse", s.rmse(), measured);
    number_or_null(j, "weighted_rmse", s.weighted_rmse(), measured && s.sum_weight > 0);
    number_or_null(j, "max_abs_error", s.max_abs_error, measured);
    number_or_null(j, "snr_db", s.snr_db(), measured);
}

int run_compare(const CompareArgs& a) {
    convert::CompareOptions o;
    if (a.types != "none" && !a.types.empty()) {
        for (size_t at = 0; at <= a.types.size();) {
            const size_t comma = std::min(a.types.find(',', at), a.types.size());
            const std::string name = a.types.substr(at, comma - at);
            const std::optional<TypeId> t = type_from_name(name);
            if (!t || !quant::can_quantize(*t) || type_info(*t).block_size == 1)
                throw CLI::ValidationError("--types", fmt::format("'{}' is not a quantized type ggufkit can quantize to (q4_K, iq4_xs, ...)", name));
            o.types.push_back(*t);
            at = comma + 1;
        }
    }
    std::optional<quant::ImportanceMatrix> imatrix;
    if (a.imatrix) {
        imatrix.emplace(quant::ImportanceMatrix::load(*a.imatrix));
        o.imatrix = &*imatrix;
    }
    if (a.tensors) {
        try {
            o.tensors.emplace(*a.tensors);
        } catch (const std::regex_error& e) {
            throw CLI::ValidationError("--tensor", fmt::format("invalid regular expression '{}': {}", *a.tensors, e.what()));
        }
    }
    o.threads = a.threads;
    const bool progress = !a.json && ::isatty(STDERR_FILENO);
    if (progress) o.progress = [](size_t done, size_t total) { fmt::print(stderr, "\rcompare-methods: {}/{} tensors", done, total); };
    const std::unique_ptr<convert::WeightSource> original = convert::WeightSource::open(a.original);
    std::vector<std::unique_ptr<convert::WeightSource>> versions;
    std::vector<const convert::WeightSource*> pointers;
    for (const std::string& v : a.versions) pointers.push_back((versions.emplace_back(convert::WeightSource::open(v))).get());
    for (const auto& v : versions)
        for (const std::string& w : v->warnings()) fmt::print(stderr, "compare-methods: warning: {}: {}\n", v->path(), w);
    const convert::Comparison c = convert::compare_methods(*original, pointers, o);
    if (progress) fmt::print(stderr, "\r{:<60}\r", "");

    if (a.json) {
        Json j;
        j.begin_object().field("original", original->path()).field("original_kind", original->description()).field("selection", c.selection);
        j.key("imatrix");
        a.imatrix ? j.value(*a.imatrix) : j.null();
        j.key("tensors").begin_array();
        for (const std::string& t : c.tensors) j.value(t);
        j.end_array().key("methods").begin_array();
        for (const convert::Comparison::Method& m : c.methods) {
            j.begin_object().field("name", m.name).field("kind", m.kind).field("simulated", m.simulated).field("tensors", uint64_t{m.tensors});
            j.key("total").begin_object();
            stats_json(j, m.total);
            j.end_object().key("per_tensor").begin_array();
            for (size_t i = 0; i < c.tensors.size(); ++i) {
                if (!m.per_tensor[i]) continue;
                j.begin_object().field("name", c.tensors[i]);
                stats_json(j, *m.per_tensor[i]);
                j.end_object();
            }
            j.end_array().end_object();
        }
        j.end_array().key("skipped").begin_array();
        for (const auto& [what, why] : c.skipped) j.begin_object().field("name", what).field("reason", why).end_object();
        j.end_array().end_object();
        fmt::print("{}\n", j.str());
        return 0;
    }
    // The totals, fewest bits first: the table the literature argues over.
    std::string out = fmt::format("original: {} ({})\ncompared: {} tensors, {}{}\n\n", original->path(), original->description(), c.tensors.size(), c.selection,
                                  a.imatrix ? fmt::format("; importance from {}", *a.imatrix) : "");
    std::vector<size_t> order(c.methods.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        const auto& first = c.methods[x].total;
        const auto& second = c.methods[y].total;
        if ((first.values == 0) != (second.values == 0)) return second.values == 0;  // nothing measured: last
        return first.bits_per_weight() < second.bits_per_weight();
    });
    size_t width = 6;
    for (const auto& m : c.methods) width = std::max(width, std::min<size_t>(m.name.size(), 50));
    const auto row = [&](const std::string& name, const convert::MethodStats& s, const std::string& tail) {
        if (s.values == 0) return fmt::format("  {:<{}}  {:>6}  {:>11}  {:>12}  {:>8}  {}\n", name, width, "-", "-", "-", "-", tail);
        return fmt::format("  {:<{}}  {:>6.3f}  {:>11}  {:>12}  {:>8}  {}\n", name, width, s.bits_per_weight(), figure(s.rmse()),
                           s.sum_weight > 0 ? figure(s.weighted_rmse()) : "-", figure(s.snr_db(), "{:.2f}"), tail);
    };
    out += fmt::format("  {:<{}}  {:>6}  {:>11}  {:>12}  {:>8}  {}\n", "method", width, "bpw", "rmse", "imatrix rmse", "snr dB", "what");
    for (size_t i : order) {
        const auto& m = c.methods[i];
        const std::string part = m.tensors == c.tensors.size() ? "" : fmt::format(" ({} of {} tensors)", m.tensors, c.tensors.size());
        out += row(m.name, m.total, m.kind + part);
    }
    if (a.per_tensor) {
        out += "\nper tensor:\n";
        for (size_t t = 0; t < c.tensors.size(); ++t)
            for (size_t i : order)
                if (const auto& s = c.methods[i].per_tensor[t]) out += row(c.tensors[t] + "  " + c.methods[i].name, *s, "");
    }
    for (const auto& [what, why] : c.skipped) out += fmt::format("  skipped {}: {}\n", what, why);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace

void add_compare_methods(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<CompareArgs>();
    CLI::App* c = app.add_subcommand("compare-methods",
                                     "Compare quantizations of one model against its original weights: GPTQ, AWQ, NF4, FP8, compressed-tensors folders, "
                                     "GGUF files, and GGUF types applied here (bits per weight, RMSE, importance-weighted RMSE, SNR)");
    c->add_option("original", a->original, "The original weights: a Hugging Face folder (F32/F16/BF16) or a GGUF file")->required();
    c->add_option("versions", a->versions, "Quantized versions of the same model: Hugging Face folders (GPTQ, AWQ, bitsandbytes, FP8, compressed-tensors) or GGUF files");
    c->add_option("--types", a->types, "GGUF types to apply to the original here, comma-separated, or 'none'")->capture_default_str();
    c->add_option("--imatrix", a->imatrix, "Importance matrix (either of llama.cpp's formats): the weighted RMSE, and the weights the types above round with")
        ->type_name("FILE");
    c->add_option("--tensor", a->tensors, "Only tensors whose names match this regular expression (default: what every version quantized)");
    c->add_flag("--per-tensor", a->per_tensor, "Print every tensor's figures after the totals");
    add_threads_option(c, a->threads, "-t,--threads");
    c->add_flag("--json", a->json, "Print JSON: every method's totals and per-tensor figures (schema: spec/compare-json.md)");
    c->footer("Every version is read in GGUF's names and row order, so a GGUF file compares with the folder it was converted from. Figures are summed in row "
              "order (the same for every thread count).");
    c->callback([a, &run] { run = [a] { return run_compare(*a); }; });
}

}  // namespace gguf::tools
