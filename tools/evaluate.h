// gguf perplexity, gguf kld, gguf generate: a model evaluated on our own forward pass
// (infer/), as llama-perplexity and llama-cli do it. Arguments, progress and printing only;
// the computation is infer/'s.
#pragma once

#include <functional>

namespace CLI { class App; }

namespace gguf::tools {

void add_perplexity(CLI::App& app, std::function<int()>& run);
void add_kld(CLI::App& app, std::function<int()>& run);
void add_generate(CLI::App& app, std::function<int()>& run);

}  // namespace gguf::tools
