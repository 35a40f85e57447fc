// gguf bench: how fast this machine dequantizes and multiplies each tensor type, per
// instruction-set path, beside memcpy measured in the same run.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_bench(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
