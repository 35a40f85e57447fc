// gguf edit: change a model's metadata and tensor names, into a new file or in place.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_edit(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
