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
#include "kernels/check_model.h"

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

int run_check(const CheckOptions& o) {
    FaultLog faults;
    const Model m = Model::open(o.path, faults);  // what leaves nothing to read throws: exit 2
    const kernels::ModelCheck c = kernels::check_model(m, faults, !o.no_data, o.threads);
    const std::vector<Finding>& findings = c.findings;
    const uint64_t unlisted = c.unlisted, errors = c.errors, warnings = c.warnings, total = errors + warnings;
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
