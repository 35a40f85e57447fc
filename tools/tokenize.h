// gguf tokenize: the token ids a model's own vocabulary gives for a text, as llama-tokenize
// prints them.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_tokenize(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
