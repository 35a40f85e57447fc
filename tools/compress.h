// gguf compress / gguf decompress: .gguf.zst containers (gguf/zst.h, spec/gguf-zst.md).
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_compress(CLI::App& app, std::function<int()>& run);
void add_decompress(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
