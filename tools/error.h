// gguf error: what re-quantizing a model's tensors to a type would cost, tensor by tensor.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_error(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
