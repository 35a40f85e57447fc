// gguf convert: a Hugging Face checkpoint folder to GGUF (convert/). Arguments, progress and
// printing only.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_convert(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
