#include "check.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "gguf/check.h"
#include "gguf/model.h"
#include "json.h"
#include "options.h"
#include "kernels/check.h"
#include "quant/byteorder.h"
#include "quant/quant.h"

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

// One tensor's data, on several threads; the first problem located by row and column (or
// block, for quantized types).
void check_tensor(const Model& m, const Model::Tensor& t, int threads, std::vector<Finding>& out) {
    const TensorInfo& info = *t.info;
    if (!info.readable) return;  // its layout fault is reported
    kernels::DataCheck c;
    if (!m.parts()[t.part].big_endian()) {
        const std::span<const uint8_t> data = m.tensor_data(t);
        c = kernels::check_data(info.type, data, threads);
        m.release_pages(t, data);  // memory stays flat through the model (a .gguf.zst's or a URL's too)
    } else {
        // Big-endian data: its fields swapped to this machine's order a few MiB at a time.
        if (!quant::can_swap_byte_order(info.type)) {
            out.push_back({Severity::Warning, std::string(info.name),
                           fmt::format("big-endian {} data not checked (its block fields are not known here)", type_info(info.type).name)});
            return;
        }
        const std::span<const uint8_t> data = m.tensor_data(t);
        const TypeInfo& ti = type_info(info.type);
        const size_t step = std::max<size_t>(1, (size_t{16} << 20) / ti.type_size) * ti.type_size;
        std::vector<uint8_t> buffer;
        for (size_t at = 0; at < data.size(); at += step) {
            const auto piece = data.subspan(at, std::min(step, data.size() - at));
            buffer.assign(piece.begin(), piece.end());
            quant::swap_byte_order(info.type, buffer);
            kernels::DataCheck part = kernels::check_data(info.type, buffer, threads);
            // `first` counts blocks (quantized) or values (floats) from the piece's start.
            const auto blocks_before = static_cast<int64_t>(at / ti.type_size);
            if (part.first >= 0) part.first += part.per_block ? blocks_before : blocks_before * ti.block_size;
            c.merge(part);
        }
        m.release_pages(t, data);
    }
    if (c.bad == 0) return;
    const auto per_row = static_cast<int64_t>(info.shape[0] / (c.per_block ? type_info(info.type).block_size : 1));
    const char* s = c.bad == 1 ? "" : "s";
    const std::string what = c.per_block ? fmt::format("{} block{} with a non-finite scale", c.bad, s)
                                         : fmt::format("{} non-finite value{}", c.bad, s);
    out.push_back({Severity::Error, std::string(info.name), fmt::format("{}; first: row {}, {} {}: {}", what, c.first / per_row,
                                                                        c.per_block ? "block" : "column", c.first % per_row, c.first_problem)});
}

int run_check(const CheckOptions& o) {
    FaultLog faults;
    const Model m = Model::open(o.path, faults);  // what leaves nothing to read throws: exit 2
    std::vector<Finding> findings;
    for (const Fault& f : faults.kept()) {
        // One file: the offset says where. A split set: the part's file too.
        std::string at = !f.subject.empty() && (m.parts().size() > 1 || f.file != m.first().path()) ? f.file : "";
        if (f.file_offset) at += fmt::format("{}file offset {}", at.empty() ? "" : ", ", *f.file_offset);
        findings.push_back({Severity::Error, f.subject.empty() ? f.file : f.subject, at.empty() ? f.message : fmt::format("{} ({})", f.message, at)});
    }
    for (Finding& f : check_metadata(m)) findings.push_back(std::move(f));
    for (const File& f : m.parts())
        for (Finding& x : check_layout(f)) findings.push_back(std::move(x));
    if (!o.no_data) {
        const int threads = quant::thread_count(o.threads);
        for (const Model::Tensor& t : m.tensors()) {
            try {
                check_tensor(m, t, threads, findings);
            } catch (const Error& e) {  // a .gguf.zst frame that does not decompress: that tensor's finding, the rest go on
                const std::string prefix = fmt::format("tensor '{}': ", t.info->name);
                std::string message = e.message().starts_with(prefix) ? e.message().substr(prefix.size()) : e.message();
                if (e.offset()) message += fmt::format(" ({} offset {})", m.parts()[t.part].compressed() ? "container" : "file", *e.offset());
                findings.push_back({Severity::Error, std::string(t.info->name), message});
            }
        }
    }
    std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
    // Structural faults past the reader's FaultLog::kKeep are counted, not listed.
    const uint64_t unlisted = faults.total() - faults.kept().size();
    const uint64_t total = findings.size() + unlisted;
    const auto errors = unlisted + static_cast<uint64_t>(std::count_if(findings.begin(), findings.end(), [](const Finding& f) { return f.severity == Severity::Error; }));
    const uint64_t warnings = total - errors;
    const uint64_t shown = std::min<uint64_t>(findings.size(), o.max_findings);
    if (o.json) {
        Json j;
        j.begin_object().field("file", o.path).field("data_checked", !o.no_data).field("errors", errors).field("warnings", warnings);
        j.key("findings").begin_array();
        for (uint64_t i = 0; i < shown; ++i)
            j.begin_object().field("severity", findings[i].severity == Severity::Error ? "error" : "warning")
                .field("where", findings[i].where).field("message", findings[i].message).end_object();
        j.end_array().field("truncated", shown < total).end_object();
        std::string out = j.str() + "\n";
        std::fwrite(out.data(), 1, out.size(), stdout);
    } else {
        std::string out;
        for (uint64_t i = 0; i < shown; ++i)
            out += fmt::format("{}: {}: {}\n", findings[i].severity == Severity::Error ? "error" : "warning", findings[i].where, findings[i].message);
        if (shown < total) out += fmt::format("... {} more{}\n", total - shown, unlisted ? "" : " (--max-findings)");
        out += fmt::format("{}: {} error{}, {} warning{}{}\n", o.path, errors, errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s",
                           o.no_data ? " (tensor data not checked)" : "");
        std::fwrite(out.data(), 1, out.size(), stdout);
    }
    report_transfer(m);
    return errors ? 1 : 0;
}

}  // namespace

void add_check(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<CheckOptions>();
    CLI::App* c = app.add_subcommand("check", "Validate a GGUF file's structure and every byte of its tensor data (exit 1 on errors)");
    c->add_option("file", o->path, "GGUF file, or any part of a split set; a .gguf.zst or an http(s):// URL too")->required();
    c->add_flag("--json", o->json, "Print JSON (schema: spec/check-json.md)");
    c->add_flag("--no-data", o->no_data, "Check the structure only, not the tensor data");
    c->add_option("--max-findings", o->max_findings, "List at most N findings (counts stay exact)")->check(CLI::NonNegativeNumber);
    add_threads_option(c, o->threads);
    add_header_option(c);
    c->callback([o, &run] { run = [o] { return run_check(*o); }; });
}

}  // namespace gguf::tools
