// gguf inspect: what a GGUF file (or split set) holds, from its header alone.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace CLI { class App; }

namespace gguf::tools {

struct InspectOptions {
    std::string path;
    bool json = false;
    bool markdown = false;     // tables for a model card
    bool full = false;         // every array element, not the first few
    bool no_kv = false;
    bool no_tensors = false;
    std::optional<std::string> keys;     // regex a key must contain a match of
    std::optional<std::string> tensors;  // regex a tensor name must contain a match of
};

// Registers the subcommand; when it is chosen, `run` is set to what main() calls.
void add_inspect(CLI::App& app, std::function<int()>& run);

int inspect(const InspectOptions& o);

}  // namespace gguf::tools
