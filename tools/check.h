// gguf check: is this file sound? Structure beyond what opening it checks, and every byte
// of tensor data.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_check(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
