// gguf requant: re-quantize a model to a type or one of llama.cpp's mixes.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_requant(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
