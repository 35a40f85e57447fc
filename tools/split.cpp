#include "split.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "gguf/error.h"
#include "gguf/model.h"
#include "gguf/render.h"
#include "gguf/split.h"
#include "gguf/writer.h"
#include "json.h"
#include "options.h"

namespace gguf::tools {

namespace {

struct SplitArgs {
    std::string input, output;
    std::string max_size;
    uint32_t max_tensors = 0;
    bool no_tensor_first_split = false, dry_run = false, json = false;
};

std::vector<std::filesystem::path> input_paths(const Model& m) {
    std::vector<std::filesystem::path> out;
    for (const File& f : m.parts()) out.emplace_back(f.path());
    return out;
}

int run_split(const SplitArgs& a) {
    SplitLimits limits;
    limits.no_tensor_first_split = a.no_tensor_first_split;
    if (!a.max_size.empty())
        limits.max_bytes = parse_size(a.max_size, "--split-max-size");
    else
        limits.max_tensors = a.max_tensors ? a.max_tensors : 128;  // llama-gguf-split's default
    const Model model = Model::open(a.input);
    std::vector<uint64_t> sizes;
    for (const Model::Tensor& t : model.tensors()) sizes.push_back(t.info->n_bytes);
    const std::vector<uint32_t> plan = plan_split(sizes, limits);
    const std::vector<uint64_t> bytes = part_bytes(sizes, plan);
    std::string prefix = a.output;
    if (prefix.ends_with(".gguf")) prefix.resize(prefix.size() - 5);
    const SplitName names{prefix, 0, static_cast<uint32_t>(plan.size())};

    auto plan_json = [&] {
        Json j;
        j.begin_object().field("input", a.input).field("tensors", uint64_t{model.tensors().size()}).field("dry_run", a.dry_run);
        j.key("parts").begin_array();
        for (size_t i = 0; i < plan.size(); ++i)
            j.begin_object().field("path", names.path_of(static_cast<uint32_t>(i + 1)).string()).field("tensors", plan[i]).field("tensor_bytes", bytes[i]).end_object();
        return j.end_array().end_object().str();
    };
    if (a.json) {
        if (!a.dry_run) {
            std::vector<Writer> parts = split_writers(model, plan);
            write_split_set(parts, a.output, input_paths(model));
        }
        std::printf("%s\n", plan_json().c_str());
        return 0;
    }
    std::printf("%s: %zu tensors in %zu parts (%s)\n", a.input.c_str(), model.tensors().size(), plan.size(),
                limits.max_bytes ? fmt::format("at most {} bytes of tensor data each", limits.max_bytes).c_str()
                                 : fmt::format("at most {} tensors each", limits.max_tensors).c_str());
    for (size_t i = 0; i < plan.size(); ++i)
        std::printf("  %s  %u tensors  %s\n", names.path_of(static_cast<uint32_t>(i + 1)).string().c_str(), plan[i], human_bytes(bytes[i]).c_str());
    if (a.dry_run) return 0;
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    std::vector<Writer> parts = split_writers(model, plan);
    const auto written = write_split_set(parts, a.output, input_paths(model));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t total = 0;
    for (const auto& p : written) total += std::filesystem::file_size(p);
    std::printf("wrote %zu parts, %s in %.2f s (%.0f MB/s)\n", written.size(), human_bytes(total).c_str(), s, s > 0 ? static_cast<double>(total) / s / 1e6 : 0.0);
    return 0;
}

struct MergeArgs {
    std::string input, output;
    bool dry_run = false;
};

int run_merge(const MergeArgs& a) {
    const Model model = Model::open(a.input);  // every part, checked against each other
    Writer w = merged_writer(model);
    for (const File& f : model.parts()) refuse_overwrite(a.output, f.path());
    uint64_t data = 0;
    for (const Model::Tensor& t : model.tensors()) data += t.info->n_bytes;
    std::printf("%s: %zu parts, %zu tensors, %s of tensor data -> %s\n", model.first().path().c_str(), model.parts().size(),
                model.tensors().size(), human_bytes(data).c_str(), a.output.c_str());
    if (a.dry_run) return 0;
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    w.write(a.output);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const uint64_t size = std::filesystem::file_size(a.output);
    std::printf("wrote %s, %s in %.2f s (%.0f MB/s)\n", a.output.c_str(), human_bytes(size).c_str(), s, s > 0 ? static_cast<double>(size) / s / 1e6 : 0.0);
    return 0;
}

}  // namespace

void add_split(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<SplitArgs>();
    CLI::App* c = app.add_subcommand("split", "Split a model into a set of parts, as llama-gguf-split does (the same part names, keys and partition)");
    c->add_option("input", a->input, "The model (one file, or any part of a split set)")->required();
    c->add_option("output", a->output, "Prefix of the parts: PREFIX-00001-of-0000N.gguf (a trailing .gguf is dropped)")->required();
    auto* size = c->add_option("--split-max-size", a->max_size, "At most SIZE of tensor data per part (500M, 2G: powers of 1000, as llama-gguf-split); "
                                                                "a tensor larger than SIZE gets a part of its own")
                     ->type_name("SIZE");
    auto* tensors = c->add_option("--split-max-tensors", a->max_tensors, "At most N tensors per part (default 128)")->type_name("N")->check(CLI::PositiveNumber);
    size->excludes(tensors);
    c->add_flag("--no-tensor-first-split", a->no_tensor_first_split, "The first part holds the metadata only (small, read first)");
    c->add_flag("--dry-run", a->dry_run, "Print the parts; write nothing");
    c->add_flag("--json", a->json, "Print the parts as JSON: {input, tensors, dry_run, parts: [{path, tensors, tensor_bytes}]}");
    c->footer("The parts are complete before they appear, all of them or none; the input is never replaced. gguf merge joins them again.");
    c->callback([a, &run] { run = [a] { return run_split(*a); }; });
}

void add_merge(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<MergeArgs>();
    CLI::App* c = app.add_subcommand("merge", "Join a split set into one file, as llama-gguf-split --merge does");
    c->add_option("input", a->input, "Any part of the set (PREFIX-0000K-of-0000N.gguf); every part is opened and checked")->required();
    c->add_option("output", a->output, "The merged file")->required();
    c->add_flag("--dry-run", a->dry_run, "Open and check the parts, print what would be written; write nothing");
    c->footer("The merged file has the first part's keys with split.count 0 (as llama-gguf-split writes it) and every tensor in part order; "
              "it is written to a temporary file renamed into place. A missing part, a part of another set, or a file that is not a set "
              "is refused with the file named.");
    c->callback([a, &run] { run = [a] { return run_merge(*a); }; });
}

}  // namespace gguf::tools
