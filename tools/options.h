// Options several subcommands share, spelled and checked the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace gguf::tools {

// --threads N, 0 (the default) meaning one per core; negative numbers are refused plainly.
// `names` as CLI11 takes them ("-t,--threads" where llama.cpp's tool has the short form).
CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& names = "--threads");

}  // namespace gguf::tools
