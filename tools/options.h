// Options several subcommands share, spelled and checked the same way everywhere.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>

#include "gguf/model.h"
#include "gguf/value.h"
#include "quant/quant.h"

namespace gguf::tools {

// -H/--header "Name: value", repeatable (curl's spelling), for a command that reads a model
// from a URL: sent with every request (gguf/http.h; HF_TOKEN is used for huggingface.co).
void add_header_option(CLI::App* command);

// One line on stderr with what reading `m` over HTTP transferred; nothing for local files.
void report_transfer(const Model& m);

// --threads N, 0 (the default) meaning one per core; negative numbers are refused plainly.
// `names` as CLI11 takes them ("-t,--threads" where llama.cpp's tool has the short form).
CLI::Option* add_threads_option(CLI::App* command, int& threads, const std::string& names = "--threads");

// KEY=TYPE:VALUE, TYPE one of int, float, bool, str (llama.cpp's --override-kv), for
// `option` (named in errors). llama.cpp writes int as u32; a negative int is refused rather
// than silently made positive. Throws CLI::ValidationError.
std::pair<std::string, OwnedValue> parse_key_value(const std::string& s, const std::string& option);

// llama-gguf-split's --split-max-size: a number of bytes, with M or G for 10^6 or 10^9 ("500M",
// "2G"; decimals taken exactly: "1.5G" is 1.5e9 bytes where llama-gguf-split reads 1G).
// Throws CLI::ValidationError naming `option`.
uint64_t parse_size(const std::string& s, const std::string& option);

// --effort fast|default|best (gguf requant, gguf convert). Throws CLI::ValidationError.
quant::Effort parse_effort(const std::string& s);

}  // namespace gguf::tools
