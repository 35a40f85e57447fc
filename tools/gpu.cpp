#include "gpu.h"

#include <stdexcept>
#include <vector>

#ifdef GGUFKIT_WITH_CUDA
#include "infer/cuda.h"
#endif

namespace gguf::tools {

void add_gpu_option(CLI::App* c, bool& gpu) {
    c->add_flag("--gpu", gpu,
                "Run the weight products on a CUDA GPU (weights copied to it once; activations and weights rounded to f16 there, "
                "f32 sums; the attention and a mixture of experts' router stay on the CPU); needs a build with CUDA. llama.cpp: -ngl 99");
}

std::unique_ptr<infer::MatmulBackend> gpu_backend(bool gpu, std::initializer_list<const infer::Model*> models) {
    if (!gpu) return nullptr;
#ifdef GGUFKIT_WITH_CUDA
    const std::vector<const infer::Model*> list(models);
    return infer::make_cuda_backend(list);
#else
    (void)models;
    throw std::runtime_error("--gpu: this gguf was built without CUDA (configure with -DGGUFKIT_CUDA=ON where the CUDA toolkit is)");
#endif
}

}  // namespace gguf::tools
