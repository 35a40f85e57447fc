#include "check.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gguf/check.h"
#include "gguf/model.h"
#include "json.h"
#include "quant/check.h"

namespace gguf::tools {

namespace {

struct CheckOptions {
    std::string path;
    bool json = false;
    bool no_data = false;
    uint64_t max_findings = 100;
    int threads = 0;
};

using Severity = Finding::Severity;

// Gaps between tensor regions and bytes after the last: harmless to readers, but not what
// a canonical writer produces (warnings).
void check_layout(const File& f, std::vector<Finding>& out) {
    std::vector<const TensorInfo*> order;
    for (const TensorInfo& t : f.tensors()) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    uint64_t expected = 0;
    for (const TensorInfo* t : order) {
        if (t->offset > expected)
            out.push_back({Severity::Warning, std::string(t->name),
                           fmt::format("{} unused bytes before its data (at data offset {})", t->offset - expected, expected)});
        expected = (t->offset + t->n_bytes + f.alignment() - 1) / f.alignment() * f.alignment();
    }
    if (!order.empty() && f.data_offset() + expected < f.size())
        out.push_back({Severity::Warning, f.path(), fmt::format("{} bytes after the last tensor's padded data", f.size() - f.data_offset() - expected)});
}

// One tensor's data, in row ranges on several threads.
void check_tensor(const Model& m, const Model::Tensor& t, int threads, std::vector<Finding>& out) {
    const TensorInfo& info = *t.info;
    const TypeInfo& type = type_info(info.type);
    const std::span<const uint8_t> data = m.tensor_data(t);
    const uint64_t rows = info.shape[0] ? info.n_elements / info.shape[0] : 0;
    const uint64_t row_bytes = rows ? info.n_bytes / rows : 0;
    std::vector<quant::DataCheck> parts(static_cast<size_t>(std::max(1, threads)));
    std::mutex m_parts;
    int64_t next = 0;
    quant::for_each_row_range(static_cast<int64_t>(rows), threads, [&](int64_t begin, int64_t end) {
        quant::DataCheck c = quant::check_data(info.type, data.subspan(static_cast<uint64_t>(begin) * row_bytes,
                                                                      static_cast<uint64_t>(end - begin) * row_bytes));
        if (c.first >= 0) c.first += c.per_block ? begin * static_cast<int64_t>(row_bytes / type.type_size)
                                                 : begin * static_cast<int64_t>(info.shape[0]);
        std::lock_guard lock(m_parts);
        parts[static_cast<size_t>(next++)] = c;  // ranges finish in any order: sort by start below
        (void)end;
    });
    std::sort(parts.begin(), parts.begin() + next, [](const quant::DataCheck& a, const quant::DataCheck& b) {
        return (a.first < 0 ? INT64_MAX : a.first) < (b.first < 0 ? INT64_MAX : b.first);
    });
    quant::DataCheck total;
    for (int64_t i = 0; i < next; ++i) total.merge(parts[static_cast<size_t>(i)]);
    if (total.bad == 0) return;
    const std::string name(info.name);
    if (total.per_block) {
        const uint64_t per_row = info.shape[0] / type.block_size;
        out.push_back({Severity::Error, name, fmt::format("{} block{} with a non-finite scale; first: row {}, block {}: {}", total.bad,
                                                          total.bad == 1 ? "" : "s", total.first / static_cast<int64_t>(per_row),
                                                          total.first % static_cast<int64_t>(per_row), total.first_problem)});
    } else {
        out.push_back({Severity::Error, name, fmt::format("{} non-finite value{}; first: row {}, column {}: {}", total.bad,
                                                          total.bad == 1 ? "" : "s", total.first / static_cast<int64_t>(info.shape[0]),
                                                          total.first % static_cast<int64_t>(info.shape[0]), total.first_problem)});
    }
}

int run_check(const CheckOptions& o) {
    const Model m = Model::open(o.path);  // structure the reader refuses: exit 2
    std::vector<Finding> findings = check_metadata(m);
    for (const File& f : m.parts()) check_layout(f, findings);
    if (!o.no_data) {
        const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        for (const Model::Tensor& t : m.tensors()) check_tensor(m, t, threads, findings);
    }
    std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
    const auto errors = static_cast<uint64_t>(std::count_if(findings.begin(), findings.end(), [](const Finding& f) { return f.severity == Severity::Error; }));
    const uint64_t warnings = findings.size() - errors;
    const uint64_t shown = std::min<uint64_t>(findings.size(), o.max_findings);
    if (o.json) {
        Json j;
        j.begin_object().field("file", o.path).field("data_checked", !o.no_data).field("errors", errors).field("warnings", warnings);
        j.key("findings").begin_array();
        for (uint64_t i = 0; i < shown; ++i)
            j.begin_object().field("severity", findings[i].severity == Severity::Error ? "error" : "warning")
                .field("where", findings[i].where).field("message", findings[i].message).end_object();
        j.end_array().field("truncated", shown < findings.size()).end_object();
        std::string out = j.str() + "\n";
        std::fwrite(out.data(), 1, out.size(), stdout);
    } else {
        std::string out;
        for (uint64_t i = 0; i < shown; ++i)
            out += fmt::format("{}: {}: {}\n", findings[i].severity == Severity::Error ? "error" : "warning", findings[i].where, findings[i].message);
        if (shown < findings.size()) out += fmt::format("... {} more (--max-findings)\n", findings.size() - shown);
        out += fmt::format("{}: {} error{}, {} warning{}{}\n", o.path, errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s",
                           o.no_data ? " (tensor data not checked)" : "");
        std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return errors ? 1 : 0;
}

}  // namespace

void add_check(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<CheckOptions>();
    CLI::App* c = app.add_subcommand("check", "Validate a GGUF file's structure and every byte of its tensor data (exit 1 on errors)");
    c->add_option("file", o->path, "GGUF file, or any part of a split set")->required();
    c->add_flag("--json", o->json, "Print JSON");
    c->add_flag("--no-data", o->no_data, "Check the structure only, not the tensor data");
    c->add_option("--max-findings", o->max_findings, "List at most N findings (counts stay exact)")->check(CLI::NonNegativeNumber);
    c->add_option("--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
    c->callback([o, &run] { run = [o] { return run_check(*o); }; });
}

}  // namespace gguf::tools
