// gguf mem: the memory llama.cpp sets aside to run a model on the CPU, buffer by buffer
// (gguf/memory.h; the formulas in spec/memory.md). Printing only.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_mem(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
