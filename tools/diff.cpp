#include "diff.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <regex>

#include "gguf/diff.h"
#include "gguf/model.h"
#include "gguf/render.h"
#include "json.h"
#include "kernels/error_stats.h"
#include "kernels/kernels.h"
#include "options.h"
#include "quant/executor.h"
#include "quant/quant.h"

namespace gguf::tools {

namespace {

struct DiffArgs {
    std::vector<std::string> files;
    bool diffable = false, json = false, no_data = false;
    std::optional<std::string> tensors;
    int threads = 0;
};

constexpr uint64_t kShownElements = 16;  // --diffable: longer arrays as their count and fingerprint

// Equal bytes, compared in slices on the executor's threads.
bool same_bytes(std::span<const uint8_t> a, std::span<const uint8_t> b, int threads) {
    if (a.size() != b.size()) return false;
    constexpr int64_t kSlice = int64_t{8} << 20;
    const auto n = static_cast<int64_t>((a.size() + kSlice - 1) / kSlice);
    std::atomic<bool> differ{false};
    quant::RunOptions o;
    o.threads = quant::thread_count(threads);
    o.grain = 1;
    o.cancel = &differ;  // the first difference ends the run
    try {
        quant::default_executor().run(n, [&](int64_t begin, int64_t end) {
            for (int64_t s = begin; s < end && !differ.load(std::memory_order_relaxed); ++s) {
                const auto off = static_cast<size_t>(s * kSlice), len = std::min<size_t>(kSlice, a.size() - off);
                if (std::memcmp(a.data() + off, b.data() + off, len) != 0) differ.store(true);
            }
        }, o);
    } catch (const quant::Cancelled&) {
    }
    return !differ.load();
}

struct TensorResult {
    TensorPair pair;
    bool identical = false;                     // same type, shape and bytes
    std::optional<kernels::ErrorStats> numbers;  // same shape, bytes differ, both dequantizable
    std::string note;                           // why there are no numbers
};

std::string shape_of(const Model::Tensor* t) { return t ? shape_text(t->info->dims()) : "-"; }
std::string type_of(const Model::Tensor* t) { return t ? std::string(type_info(t->info->type).name) : "-"; }

int run_diffable(const DiffArgs& a) {
    const Model m = Model::open(a.files[0]);
    std::string out;
    for (const KeyValue& kv : m.kvs()) {
        // As gguf diff compares: the split keys left out (a set lists as its merge does), long
        // arrays by a fingerprint of their elements' values (whatever the byte order or version).
        if (kv.key == "split.no" || kv.key == "split.count" || kv.key == "split.tensors.count") continue;
        const bool long_array = kv.value.type() == ValueType::Array && kv.value.array().size() > kShownElements;
        std::string text;
        if (long_array) {
            std::string elements;
            for (Value v : kv.value.array()) elements += value_text(v) + '\n';
            text = fmt::format("fingerprint={:016x}", fingerprint(std::span(reinterpret_cast<const uint8_t*>(elements.data()), elements.size())));
        } else {
            text = value_text(kv.value);
        }
        out += fmt::format("kv {} {} {}\n", escaped(kv.key), value_type_label(kv.value), text);
    }
    for (const Model::Tensor& t : m.tensors())
        out += fmt::format("tensor {} {} {} bytes={} fingerprint={:016x}\n", escaped(t.info->name), type_info(t.info->type).name,
                           shape_text(t.info->dims()), t.info->n_bytes, fingerprint(m.tensor_data(t)));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

int run_diff(const DiffArgs& a) {
    if (a.diffable) {
        if (a.files.size() != 1) throw CLI::ValidationError("--diffable", "takes one model: diff <(gguf diff --diffable A) <(gguf diff --diffable B)");
        return run_diffable(a);
    }
    if (a.files.size() != 2) throw CLI::ValidationError("files", "gguf diff compares two models: A B (or --diffable A)");
    const Model ma = Model::open(a.files[0]), mb = Model::open(a.files[1]);
    std::optional<std::regex> filter;
    if (a.tensors) {
        try {
            filter.emplace(*a.tensors, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw CLI::ValidationError("--tensors", fmt::format("invalid regular expression '{}': {}", *a.tensors, e.what()));
        }
    }
    const std::vector<KeyDifference> keys = diff_metadata(ma, mb);
    std::vector<TensorResult> tensors;
    for (const TensorPair& p : pair_tensors(ma, mb)) {
        if (filter && !std::regex_search(p.name.begin(), p.name.end(), *filter)) continue;
        TensorResult r{p, false, std::nullopt, {}};
        if (p.a && p.b && p.same_shape()) {
            const auto da = ma.tensor_data(*p.a), db = mb.tensor_data(*p.b);
            r.identical = p.same_type() && same_bytes(da, db, a.threads);
            if (!r.identical && !a.no_data) {
                if (ma.parts()[p.a->part].big_endian() || mb.parts()[p.b->part].big_endian()) {
                    r.note = "big-endian data: compared as bytes only";
                } else if (!kernels::can_dequantize(p.a->info->type) || !kernels::can_dequantize(p.b->info->type)) {
                    r.note = "no numeric comparison for these types";
                } else {
                    const auto dims = p.a->info->dims();
                    const int64_t ne0 = dims.empty() ? 1 : static_cast<int64_t>(dims[0]);
                    r.numbers = kernels::compare_rows(p.a->info->type, da, p.b->info->type, db,
                                                      static_cast<int64_t>(p.a->info->n_elements) / std::max<int64_t>(1, ne0), ne0,
                                                      quant::thread_count(a.threads));
                }
            }
        }
        tensors.push_back(std::move(r));
    }
    size_t only_a = 0, only_b = 0, changed = 0, identical = 0, layout = 0;
    for (const TensorResult& r : tensors) {
        if (!r.pair.b) ++only_a;
        else if (!r.pair.a) ++only_b;
        else if (r.identical) ++identical;
        else {
            ++changed;
            layout += !r.pair.same_type() || !r.pair.same_shape();
        }
    }
    const bool same = keys.empty() && only_a == 0 && only_b == 0 && changed == 0;

    if (a.json) {
        Json j;
        j.begin_object().field("a", a.files[0]).field("b", a.files[1]).field("identical", same);
        j.key("metadata").begin_array();
        for (const KeyDifference& k : keys) {
            j.begin_object().field("key", k.key).field("change", k.kind == KeyDifference::Kind::OnlyA ? "only_a" : k.kind == KeyDifference::Kind::OnlyB ? "only_b" : "changed");
            if (k.a) j.field("a", value_text(k.a->value, kShownElements));
            if (k.b) j.field("b", value_text(k.b->value, kShownElements));
            if (!k.detail.empty()) j.field("detail", k.detail);
            j.end_object();
        }
        j.end_array();
        j.key("tensors").begin_array();
        for (const TensorResult& r : tensors) {
            const char* change = !r.pair.b ? "only_a" : !r.pair.a ? "only_b" : r.identical ? "identical" : "changed";
            j.begin_object().field("name", r.pair.name).field("change", change);
            j.field("type_a", type_of(r.pair.a)).field("type_b", type_of(r.pair.b)).field("shape_a", shape_of(r.pair.a)).field("shape_b", shape_of(r.pair.b));
            if (r.numbers) {
                j.field("rmse", r.numbers->rmse()).field("max_abs_diff", r.numbers->max_abs_error).field("cosine", r.numbers->cosine());
                j.field("snr_db", r.numbers->snr_db());
            }
            if (!r.note.empty()) j.field("note", r.note);
            j.end_object();
        }
        j.end_array();
        j.key("summary").begin_object().field("keys_changed", uint64_t{keys.size()}).field("tensors_only_a", uint64_t{only_a});
        j.field("tensors_only_b", uint64_t{only_b}).field("tensors_changed", uint64_t{changed}).field("tensors_identical", uint64_t{identical});
        j.end_object().end_object();
        std::printf("%s\n", j.str().c_str());
        return same ? 0 : 1;
    }

    std::string out = fmt::format("A: {}\nB: {}\n", a.files[0], a.files[1]);
    out += fmt::format("\nmetadata: {} difference{}\n", keys.size(), keys.size() == 1 ? "" : "s");
    for (const KeyDifference& k : keys) {
        if (k.kind == KeyDifference::Kind::OnlyA)
            out += fmt::format("  - {} = {}  (only in A)\n", escaped(k.key), value_text(k.a->value, 8));
        else if (k.kind == KeyDifference::Kind::OnlyB)
            out += fmt::format("  + {} = {}  (only in B)\n", escaped(k.key), value_text(k.b->value, 8));
        else
            out += fmt::format("  ~ {}: {}\n", escaped(k.key), k.detail);
    }
    out += fmt::format("\ntensors: {} in both ({} identical, {} changed{}), {} only in A, {} only in B\n", tensors.size() - only_a - only_b,
                       identical, changed, layout ? fmt::format(", {} of them in type or shape", layout) : "", only_a, only_b);
    if (changed || only_a || only_b) {
        out += fmt::format("  {:<32} {:<17} {:>12} {:>12} {:>10} {:>9}\n", "name", "type A -> B", "RMSE", "max |diff|", "cosine", "SNR dB");
        for (const TensorResult& r : tensors) {
            if (r.identical) continue;
            const std::string name = escaped(r.pair.name);
            if (!r.pair.b || !r.pair.a) {
                out += fmt::format("  {:<32} {}\n", name, !r.pair.b ? "only in A" : "only in B");
                continue;
            }
            const std::string types = fmt::format("{} -> {}", type_of(r.pair.a), type_of(r.pair.b));
            if (!r.pair.same_shape()) {
                out += fmt::format("  {:<32} {:<17} shape {} -> {}\n", name, types, shape_of(r.pair.a), shape_of(r.pair.b));
            } else if (r.numbers) {
                const double snr = r.numbers->snr_db();
                out += fmt::format("  {:<32} {:<17} {:>12.6g} {:>12.6g} {:>10.6f} {:>9}\n", name, types, r.numbers->rmse(), r.numbers->max_abs_error,
                                   r.numbers->cosine(), std::isinf(snr) ? std::string("exact") : fmt::format("{:.2f}", snr));
            } else {
                out += fmt::format("  {:<32} {:<17} bytes differ{}\n", name, types, r.note.empty() ? "" : " (" + r.note + ")");
            }
        }
    }
    out += same ? "\nidentical\n" : "\ndifferent\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return same ? 0 : 1;
}

}  // namespace

void add_diff(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<DiffArgs>();
    CLI::App* c = app.add_subcommand("diff", "What differs between two models: keys, tensors, and how much each differing tensor's values differ");
    c->add_option("files", a->files, "A B (each a file or any part of a split set); with --diffable, one model")->required()->expected(1, 2);
    c->add_flag("--diffable", a->diffable,
                "Print one model as one stable line per key and per tensor (long arrays and tensor data as fingerprints; the split keys "
                "left out, so a set lists as its merge), for "
                "diff <(gguf diff --diffable A) <(gguf diff --diffable B) or version control");
    c->add_flag("--json", a->json, "Print the differences as JSON: {a, b, identical, metadata: [...], tensors: [...], summary}");
    c->add_option("--tensors", a->tensors, "Compare only tensors whose name matches this regular expression")->type_name("REGEX");
    c->add_flag("--no-data", a->no_data, "Do not dequantize differing tensors (types, shapes and byte equality only)");
    add_threads_option(c, a->threads);
    c->footer("Differing tensors of the same shape are dequantized and compared value by value: RMSE and largest |A - B|, cosine "
              "similarity, SNR of A against A - B. The split keys (split.*) are left out: a split set and its merge are the same model. "
              "Exit 0 when identical, 1 when different, 2 on error.");
    c->callback([a, &run] { run = [a] { return run_diff(*a); }; });
}

}  // namespace gguf::tools
