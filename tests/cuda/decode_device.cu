// The block decoders of quant/decode.h run on a CUDA device and give the host's bits.
// Built whenever nvcc is found (compiling it proves every decoder is device code); run, it
// needs a GPU: without one it says so and exits 77, which ctest reports as skipped.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gguf/types.h"
#include "quant/decode.h"
#include "quant/quant.h"

namespace {

constexpr int kBlocks = 64;

template <class Block> __global__ void decode_kernel(const uint8_t* src, quant::IqGrids grids, float* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= kBlocks) return;
    const Block& b = reinterpret_cast<const Block*>(src)[i];
    float* y = out + static_cast<size_t>(i) * quant::block_values<Block>;
    if constexpr (requires { quant::decode(b, y); }) quant::decode(b, y);
    else quant::decode(b, grids, y);
}

template <class T> T* to_device(const T* host, size_t n) {
    T* d = nullptr;
    if (cudaMalloc(&d, n * sizeof(T)) != cudaSuccess) return nullptr;
    cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

quant::IqGrids device_grids() {
    const quant::IqGrids& h = quant::host_grids();
    return {to_device(h.iq2xxs, quant::kIQ2XXSGridSize), to_device(h.iq2xs, quant::kIQ2XSGridSize),
            to_device(h.iq2s, quant::kIQ2SGridSize),     to_device(h.iq3xxs, quant::kIQ3XXSGridSize),
            to_device(h.iq3s, quant::kIQ3SGridSize),     to_device(h.iq1s, quant::kIQ1SGridSize)};
}

// Random block bytes decoded on the device and by quant::dequantize on the host: equal bits,
// or both NaN. Returns the number of values that differ.
template <class Block> int check(const quant::IqGrids& grids, std::mt19937& rng) {
    const size_t values = static_cast<size_t>(kBlocks) * quant::block_values<Block>;
    std::vector<uint8_t> bytes(sizeof(Block) * kBlocks);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    std::vector<float> host(values), device(values);
    quant::dequantize(Block::kType, bytes, host);
    uint8_t* src = to_device(bytes.data(), bytes.size());
    float* out = nullptr;
    cudaMalloc(&out, values * sizeof(float));
    decode_kernel<Block><<<1, kBlocks>>>(src, grids, out);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) {
        std::printf("%-8s launch failed: %s (this GPU may need -DCMAKE_CUDA_ARCHITECTURES=native)\n",
                    gguf::type_info(Block::kType).name.data(), cudaGetErrorString(e));
        return static_cast<int>(values);
    }
    cudaMemcpy(device.data(), out, values * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(src);
    cudaFree(out);
    int differ = 0;
    for (size_t i = 0; i < values; ++i) {
        uint32_t a, b;
        std::memcpy(&a, &host[i], 4);
        std::memcpy(&b, &device[i], 4);
        if (a != b && !(host[i] != host[i] && device[i] != device[i])) ++differ;
    }
    std::printf("%-8s %s\n", gguf::type_info(Block::kType).name.data(), differ ? "DIFFERS" : "same bits");
    return differ;
}

template <class... Blocks> int check_all(const quant::IqGrids& grids, std::mt19937& rng, quant::BlockList<Blocks...>) {
    return (check<Blocks>(grids, rng) + ...);
}

}  // namespace

int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("SKIPPED: no CUDA device; the decoders were compiled for the device, not run\n");
        return 77;
    }
    const quant::IqGrids grids = device_grids();
    std::mt19937 rng(7);
    const int differ = check_all(grids, rng, quant::AllBlocks{});
    if (cudaDeviceSynchronize() != cudaSuccess) return std::printf("CUDA error: %s\n", cudaGetErrorString(cudaGetLastError())), 1;
    return differ ? 1 : 0;
}
