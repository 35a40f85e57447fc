// gguf: one command, many subcommands (like git). Exit codes: 0 success, 1 a check found
// problems, 2 bad usage or unreadable input.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "gguf/error.h"
#include "check.h"
#include "error.h"
#include "imatrix.h"
#include "inspect.h"
#include "requant.h"

int main(int argc, char** argv) {
    CLI::App app{"gguf: inspect, check, convert and re-quantize GGUF model files", "gguf"};
    app.set_version_flag("--version", "ggufkit 0.1.0");
    app.require_subcommand(1);
    std::function<int()> run;
    gguf::tools::add_inspect(app, run);
    gguf::tools::add_error(app, run);
    gguf::tools::add_check(app, run);
    gguf::tools::add_requant(app, run);
    gguf::tools::add_imatrix(app, run);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "error: %s\nRun 'gguf --help' for usage.\n", e.what());
        return 2;
    }
    try {
        return run();
    } catch (const CLI::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const gguf::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
