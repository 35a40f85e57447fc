// gguf split and gguf merge: a model to a split set and back, interoperable with
// llama.cpp's llama-gguf-split (gguf/split.h). Arguments and printing only.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_split(CLI::App& app, std::function<int()>& run);
void add_merge(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
