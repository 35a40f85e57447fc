// --gpu for the evaluating commands (perplexity, kld, imatrix compute, generate): the weight
// products on a CUDA device (infer/cuda.h) in builds with CUDA.
#pragma once

#include <initializer_list>
#include <memory>

#include <CLI/CLI.hpp>

#include "infer/forward.h"

namespace gguf::tools {

void add_gpu_option(CLI::App* c, bool& gpu);

// nullptr without --gpu; else one backend holding the weights of `models`. Throws
// std::runtime_error saying why when this build has no CUDA or no device can be used.
std::unique_ptr<infer::MatmulBackend> gpu_backend(bool gpu, std::initializer_list<const infer::Model*> models);

}  // namespace gguf::tools
