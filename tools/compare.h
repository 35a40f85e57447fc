// gguf compare-methods: quantization methods (GPTQ, AWQ, NF4, FP8 folders, GGUF files, GGUF
// types applied here) measured against the same original weights.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_compare_methods(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
