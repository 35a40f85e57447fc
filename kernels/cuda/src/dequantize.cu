// Dequantization to f32 and f16.
//
// Quantized types: each thread decodes one part (16 or 32 values, quant/decode.h's
// decode_part) into registers; the warp then writes its 32 parts' values through shared
// memory, so that its global stores are consecutive (a 128-byte line per f32 store
// instruction) rather than one 64- or 128-byte run per thread. Float types: one thread per
// value (a copy where the formats agree).
#include <stdexcept>
#include <string>

#include "formats.cuh"

namespace kernels::cuda {

namespace detail {
namespace {

constexpr int kWarps = 8;  // per thread block
constexpr int kThreads = 32 * kWarps;

template <class Out> __device__ Out to_output(float v);
template <> __device__ float to_output<float>(float v) { return v; }
template <> __device__ uint16_t to_output<uint16_t>(float v) { return quant::float_to_half_bits(v); }

// n_parts parts of Block at src to dst. `paired` (f16 output at a 4-byte address): each lane
// stores two halves at once.
template <class Block, class Out>
__global__ void __launch_bounds__(kThreads)
    dequantize_parts(const uint8_t* __restrict__ src, Out* __restrict__ dst, int64_t n_parts, quant::IqGrids grids, bool paired) {
    constexpr int P = Format<Block>::kPart;
    // Row `lane` of the stage holds that lane's part, rotated by lane / kShare places: the
    // warp's stores into it, and its loads across rows below, fall in 32 different banks.
    constexpr int kShare = 32 / P;
    __shared__ float stage[kWarps][32 * P];
    const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
    const int64_t first = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * 32;
    if (first >= n_parts) return;  // the whole warp

    float v[P];
    if (first + lane < n_parts) Format<Block>::part(src, first + lane, grids, v);
    else
        for (int j = 0; j < P; ++j) v[j] = 0.0f;
    float* s = stage[warp];
#pragma unroll
    for (int j = 0; j < P; ++j) s[lane * P + (j + lane / kShare) % P] = v[j];
    __syncwarp();

    const int count = static_cast<int>(n_parts - first < 32 ? n_parts - first : 32) * P;
    Out* out = dst + first * P;
    const auto staged = [s](int i) {
        const int owner = i / P;
        return s[owner * P + (i % P + owner / kShare) % P];
    };
    if constexpr (sizeof(Out) == 2) {
        if (paired) {
            auto* out2 = reinterpret_cast<uint32_t*>(out);
            for (int i = 2 * lane; i < count; i += 64)
                out2[i / 2] = to_output<Out>(staged(i)) | static_cast<uint32_t>(to_output<Out>(staged(i + 1))) << 16;
            return;
        }
    }
    for (int i = lane; i < count; i += 32) out[i] = to_output<Out>(staged(i));
}

template <class Block, class Out> __global__ void convert_values(const uint8_t* __restrict__ src, Out* __restrict__ dst, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v;
    if constexpr (Block::kType == TypeId::F32) v = reinterpret_cast<const float*>(src)[i];
    else if constexpr (Block::kType == TypeId::F16) v = quant::half_bits_to_float(reinterpret_cast<const uint16_t*>(src)[i]);
    else v = bf16_bits_to_float(reinterpret_cast<const uint16_t*>(src)[i]);
    dst[i] = to_output<Out>(v);
}

unsigned grid_for(int64_t threads) { return static_cast<unsigned>((threads + kThreads - 1) / kThreads); }

template <class Block, class Out> void launch(const uint8_t* src, Out* dst, int64_t n_values, cudaStream_t stream) {
    if constexpr (is_float_type<Block>) {
        if (reinterpret_cast<uintptr_t>(src) % float_value_bytes(Block::kType) != 0)
            throw std::invalid_argument(std::string("src is not aligned to a ") + type_name(Block::kType) + " value");
        const bool same = (Block::kType == TypeId::F32 && sizeof(Out) == 4) || (Block::kType == TypeId::F16 && sizeof(Out) == 2);
        if (same) {
            check(cudaMemcpyAsync(dst, src, static_cast<size_t>(n_values) * sizeof(Out), cudaMemcpyDeviceToDevice, stream),
                  "cudaMemcpyAsync");
            return;
        }
        convert_values<Block, Out><<<grid_for(n_values), kThreads, 0, stream>>>(src, dst, n_values);
    } else {
        const int64_t n_parts = n_values / Format<Block>::kPart;
        const bool paired = sizeof(Out) == 2 && reinterpret_cast<uintptr_t>(dst) % 4 == 0;
        const quant::IqGrids grids = device_grids();
        dequantize_parts<Block, Out><<<grid_for(n_parts), kThreads, 0, stream>>>(src, dst, n_parts, grids, paired);
    }
    check_launch("dequantize", Block::kType);
}

template <class Out> void dequantize_to(TypeId type, const void* src, Out* dst, int64_t n_values, Stream stream, const char* what) {
    if (!can_dequantize(type)) throw std::invalid_argument(std::string(what) + ": type " + type_name(type) + " is not supported on CUDA");
    require_whole_blocks(type, n_values, what);
    if (n_values == 0) return;
    require_device_pointer(src, "src");
    require_device_pointer(dst, "dst");
    if (reinterpret_cast<uintptr_t>(dst) % sizeof(Out) != 0) throw std::invalid_argument(std::string(what) + ": dst is misaligned");
    visit_type(type, [&]<class Block>() { launch<Block, Out>(static_cast<const uint8_t*>(src), dst, n_values, stream); });
}

}  // namespace
}  // namespace detail

bool can_dequantize(TypeId type) {
    return static_cast<uint32_t>(type) < gguf::kTypeCount && detail::visit_type(type, [&]<class Block>() {});
}

void dequantize(TypeId type, const void* src, float* dst, int64_t n_values, Stream stream) {
    detail::dequantize_to(type, src, dst, n_values, stream, "dequantize");
}

void dequantize_f16(TypeId type, const void* src, uint16_t* dst, int64_t n_values, Stream stream) {
    detail::dequantize_to(type, src, dst, n_values, stream, "dequantize_f16");
}

}  // namespace kernels::cuda
