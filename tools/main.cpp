// gguf: one command, many subcommands (like git). Exit codes: 0 success, 1 a check found
// problems, 2 bad usage or unreadable input.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/mapping.h"
#include "check.h"
#include "compare.h"
#include "convert.h"
#include "diff.h"
#include "edit.h"
#include "mem.h"
#include "compress.h"
#include "bench.h"
#include "error.h"
#include "evaluate.h"
#include "imatrix.h"
#include "inspect.h"
#include "requant.h"
#include "split.h"
#include "tokenize.h"

namespace {

// Edits (insert, delete, replace, swap two neighbours) from a to b.
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// "gguf imatrix" for the imatrix subcommand: what the user types to reach `app`.
std::string command_path(const CLI::App* app) {
    std::string path;
    for (; app; app = app->get_parent()) path = app->get_name() + (path.empty() ? "" : " " + path);
    return path;
}

// The deepest subcommand the arguments selected (the app itself when none).
const CLI::App* selected(const CLI::App* app) {
    for (const CLI::App* sub : app->get_subcommands())
        if (sub->parsed()) return selected(sub);
    return app;
}

// Walks argv the way the subcommands nest. A word where a subcommand must come that names
// none is refused, with the closest name when one is close. Returns the message, or "".
std::string unknown_subcommand(CLI::App& app, int argc, char** argv) {
    CLI::App* at = &app;
    for (int i = 1; i < argc; ++i) {
        const std::string_view word = argv[i];
        if (word.starts_with('-')) return "";
        const auto subs = at->get_subcommands([](CLI::App*) { return true; });
        if (subs.empty()) return "";
        CLI::App* next = nullptr;
        for (CLI::App* s : subs)
            if (s->get_name() == word) next = s;
        if (next) {
            at = next;
            continue;
        }
        if (at->get_require_subcommand_min() == 0) return "";
        std::string best;
        size_t best_distance = 3;  // suggest only names within two edits
        std::string names;
        for (CLI::App* s : subs) {
            names += (names.empty() ? "" : ", ") + s->get_name();
            const size_t dist = edit_distance(word, s->get_name());
            if (dist < best_distance || (word.size() >= 3 && s->get_name().starts_with(word) && best.empty())) {
                best_distance = std::min(dist, best_distance);
                best = s->get_name();
            }
        }
        std::string message = "'" + std::string(word) + "' is not a '" + command_path(at) + "' command.";
        if (!best.empty()) message += " Did you mean '" + best + "'?";
        message += "\nThe commands are: " + names + ". Run '" + command_path(at) + " --help' for what each does.";
        return message;
    }
    return "";
}

}  // namespace

int main(int argc, char** argv) {
    gguf::raise_open_file_limit();  // every part of a split set stays open (mapped, and for copy_file_range)
    CLI::App app{"gguf: inspect, check, convert and re-quantize GGUF model files", "gguf"};
    app.set_version_flag("--version", "ggufkit 0.1.0");
    app.require_subcommand(1);
    app.footer("Run 'gguf COMMAND --help' (or 'gguf help COMMAND') for a command's options.");
    std::function<int()> run;
    gguf::tools::add_inspect(app, run);
    gguf::tools::add_error(app, run);
    gguf::tools::add_check(app, run);
    gguf::tools::add_requant(app, run);
    gguf::tools::add_convert(app, run);
    gguf::tools::add_compare_methods(app, run);
    gguf::tools::add_split(app, run);
    gguf::tools::add_merge(app, run);
    gguf::tools::add_diff(app, run);
    gguf::tools::add_edit(app, run);
    gguf::tools::add_mem(app, run);
    gguf::tools::add_compress(app, run);
    gguf::tools::add_decompress(app, run);
    gguf::tools::add_imatrix(app, run);
    gguf::tools::add_bench(app, run);
    gguf::tools::add_tokenize(app, run);
    gguf::tools::add_perplexity(app, run);
    gguf::tools::add_kld(app, run);
    gguf::tools::add_generate(app, run);

    // gguf help [COMMAND [SUBCOMMAND]]: the same as --help on that command.
    std::vector<char*> args(argv, argv + argc);
    static char help_flag[] = "--help";
    if (argc >= 2 && std::string_view(argv[1]) == "help") {
        args.erase(args.begin() + 1);
        args.push_back(help_flag);
    }
    // llama.cpp's multi-letter short options, which CLI11 cannot name, for the command that
    // takes them: spelled out before parsing.
    if (args.size() >= 2 && std::string_view(args[1]) == "mem") {
        static const std::pair<std::string_view, const char*> kLlamaShort[] = {
            {"-ub", "--ubatch-size"}, {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}, {"-np", "--parallel"},
            {"-kvu", "--kv-unified"}, {"-fa", "--flash-attn"}, {"-nr", "--no-repack"}};
        for (size_t i = 2; i < args.size(); ++i)
            for (const auto& [from, to] : kLlamaShort)
                if (from == args[i]) args[i] = const_cast<char*>(to);
    }
    const std::string unknown = unknown_subcommand(app, static_cast<int>(args.size()), args.data());
    if (!unknown.empty()) {
        std::fprintf(stderr, "error: %s\n", unknown.c_str());
        return 2;
    }
    try {
        app.parse(static_cast<int>(args.size()), args.data());
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "error: %s\nRun '%s --help' for usage.\n", e.what(), command_path(selected(&app)).c_str());
        return 2;
    }
    try {
        return run();
    } catch (const CLI::Error& e) {
        std::fprintf(stderr, "error: %s\nRun '%s --help' for usage.\n", e.what(), command_path(selected(&app)).c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
