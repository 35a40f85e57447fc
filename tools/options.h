// Options several subcommands share, spelled and checked the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>

namespace gguf::tools {

// --threads N, 0 (the default) meaning one per core; negative numbers are refused plainly.
CLI::Option* add_threads_option(CLI::App* command, int& threads);

}  // namespace gguf::tools
