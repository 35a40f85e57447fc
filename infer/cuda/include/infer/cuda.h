// The forward pass's weight products on an NVIDIA GPU (kernels/cuda), for builds with CUDA:
// library ggufkit::infer_cuda. Plain C++ (no CUDA header).
#pragma once

#include <memory>
#include <span>
#include <string>

#include "infer/forward.h"

namespace infer {

// A backend holding every weight matrix of `models` (one, or BASE and MODEL of a KL
// divergence) in device memory (copied once, in its
// own type), running each product with kernels::cuda::matmul: the weights decoded by the
// shared block decoders to f16 tiles, the activations rounded to f16, cuBLAS with f32
// accumulation (its bound in kernels/cuda.h); one vector (generation) by the exact-weight
// matrix-vector kernel. Throws std::runtime_error naming the reason when no CUDA device can
// be used, and kernels::cuda::Error when the weights do not fit.
std::unique_ptr<MatmulBackend> make_cuda_backend(std::span<const Model* const> models);

}  // namespace infer
