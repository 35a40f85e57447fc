// gguf imatrix: show, convert and merge importance-matrix files (both of llama.cpp's formats).
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_imatrix(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
