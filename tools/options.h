// Options several subcommands share, spelled and checked the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>

#include "gguf/value.h"

namespace gguf::tools {

// --threads N, 0 (the default) meaning one per core; negative numbers are refused plainly.
// `names` as CLI11 takes them ("-t,--threads" where llama.cpp's tool has the short form).
CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& names = "--threads");

// KEY=TYPE:VALUE, TYPE one of int, float, bool, str (llama.cpp's --override-kv), for
// `option` (named in errors). llama.cpp writes int as u32; a negative int is refused rather
// than silently made positive. Throws CLI::ValidationError.
std::pair<std::string, OwnedValue> parse_key_value(const std::string& s, const std::string& option);

}  // namespace gguf::tools
