// GGUF_HD marks a function that runs on the host and on a CUDA device: __host__ __device__
// under nvcc, nothing otherwise. The block decoders (quant/decode.h) carry it, so the scalar
// reference, the SIMD kernels and the CUDA kernels call the same code.
#pragma once

#if defined(__CUDACC__)
#define GGUF_HD __host__ __device__
#else
#define GGUF_HD
#endif
