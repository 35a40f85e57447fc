// CUDA kernels for GGUF tensors: dequantization of every type to f32 and f16, the
// matrix-vector and matrix-matrix products of quantized weights, and the figures
// `gguf bench --gpu` prints.
//
// Plain C++: this header includes no CUDA header, so any translation unit may include it;
// the library (ggufkit::kernels_cuda) exists only in builds configured with CUDA
// (GGUFKIT_CUDA=AUTO where nvcc is found, or ON).
//
// Pointers named `device` below are device memory (cudaMalloc, cudaMallocManaged, or mapped
// host memory); a plain host pointer is refused with std::invalid_argument. The work is
// queued on `stream` (a cudaStream_t; nullptr is the legacy default stream) and the call
// returns without waiting, as cudaMemcpyAsync does. Block decoding is quant/decode.h's,
// the same code the CPU runs, built without fused multiply-adds: dequantization gives the
// CPU's bits (quant::dequantize, and quant::f32_to_f16 of it for f16), except that a NaN a
// block computes (from a NaN or infinite scale) is the GPU's canonical NaN, where x86 keeps
// the operand's payload and sign.
//
// Errors: std::invalid_argument for arguments (sizes, types, host pointers), kernels::cuda::
// Error for what CUDA or cuBLAS report (its message names the call and cudaGetErrorString's
// text). An error of an earlier asynchronous launch may surface in a later call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"

struct CUstream_st;  // what cudaStream_t points to

namespace kernels::cuda {

using gguf::TypeId;
using Stream = CUstream_st*;  // a cudaStream_t

// What CUDA or cuBLAS reported: "cudaMalloc(1073741824 bytes): out of memory".
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// ---- Devices ---------------------------------------------------------------------------

// True when a CUDA device can be used (a GPU and a working driver). Never throws; with
// `why`, says why not ("no CUDA device: CUDA driver version is insufficient ...").
bool available(std::string* why = nullptr);

// Opens cuBLAS and finds the functions MatmulMethod::Cublas calls (done on that method's first
// use; never at start, as loading it costs a process about 210 MB). False, with the reason in
// `why`, when it cannot. Needs no GPU; never throws.
bool load_cublas(std::string* why = nullptr);

struct DeviceInfo {
    int index = 0;
    std::string name;              // "NVIDIA H200"
    int compute_major = 0, compute_minor = 0;
    int multiprocessors = 0;
    uint64_t total_memory = 0;     // bytes
    uint64_t free_memory = 0;      // bytes, when asked
};
// The current device (cudaGetDevice); throws Error without one.
DeviceInfo device_info();

// Device memory, freed on destruction. Copies are synchronous (cudaMemcpy).
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& other) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* data() const { return data_; }
    template <class T> T* as() const { return static_cast<T*>(data_); }
    size_t size() const { return bytes_; }
    // Host to device at byte `offset`, and back; throws std::invalid_argument past the end.
    void upload(const void* host, size_t bytes, size_t offset = 0);
    void download(void* host, size_t bytes, size_t offset = 0) const;

private:
    void* data_ = nullptr;
    size_t bytes_ = 0;
};

// Waits for the work queued on `stream` and throws Error for what it reports.
void synchronize(Stream stream = nullptr);

// ---- Dequantization --------------------------------------------------------------------

// The 27 quantized types (quant::AllBlocks), F16, BF16 and F32.
bool can_dequantize(TypeId type);

// `n_values` values of `type` at `src` (a whole number of blocks; quantized blocks at any
// byte address, F16 / BF16 / F32 values at a multiple of their size) to
// floats at `dst` (4-byte aligned), or to IEEE half bits (round to nearest even, as
// quant::f32_to_f16: too large becomes infinity, NaN stays NaN). Throws
// std::invalid_argument when n_values is not a whole number of blocks, an address is
// misaligned, or the type is not one of can_dequantize's.
void dequantize(TypeId type, const void* src, float* dst, int64_t n_values, Stream stream = nullptr);
void dequantize_f16(TypeId type, const void* src, uint16_t* dst, int64_t n_values, Stream stream = nullptr);

// ---- Products --------------------------------------------------------------------------

// y = W x: W has m rows of k values of `type` (any type can_dequantize accepts), row r at
// w + r x row_stride bytes; x holds k floats and y receives m. One warp per row decodes the
// row's blocks with quant/'s decoders (the exact values w) and accumulates in f32 with fused
// multiply-adds, lanes in a fixed order then a fixed butterfly, so a result is the same on
// every run. Bound: |y_r - sum_i w_ri x_i| <= (k / 32 + 40) x 2^-24 x sum_i |w_ri x_i|.
// Throws std::invalid_argument when k is not a whole number of blocks, or for F16 / BF16 /
// F32 rows whose address or stride is not a multiple of the value's size.
void matvec(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const float* x, float* y,
            Stream stream = nullptr);

enum class MatmulMethod : uint8_t {
    Auto,     // Cublas
    Cublas,   // dequantize a tile of W rows to f16, round x to f16, cublasGemmEx with f32 accumulation
    Matvec,   // matvec() for each column of x: exact weights, f32 activations, slower for large n
};

// y = W x for n vectors: x holds n vectors of k floats (vector j at x + j x k), y receives n
// vectors of m floats (y[j x m + r] = row r . vector j), the layout of kernels::matmul.
// Bound of Cublas, for |w| and |x| below 65504 (f16's largest) where the sum is taken in f32:
//   |y - sum w x| <= (2^-10 + k x 2^-23) x sum |w x| + 2^-25 x sum (|w| + |x|)
// (each factor rounded to f16, relative 2^-11 or absolute 2^-25 below f16's normal range;
// then f32 accumulation in cuBLAS's order). Matvec: matvec's bound. Auto uses Cublas.
// Cublas needs temporary device memory (up to 64 MiB for the W tile plus k x n halves),
// taken with cudaMallocAsync on `stream`.
void matmul(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n, float* y,
            MatmulMethod method = MatmulMethod::Auto, Stream stream = nullptr);

// ---- Benchmark -------------------------------------------------------------------------

// One type's dequantization speed on the current device, for `gguf bench --gpu`.
struct GpuBenchRecord {
    TypeId type;
    std::string op;            // "dequant" (to f32) or "dequant_f16"
    std::string device;        // DeviceInfo::name
    int64_t values = 0;        // per call
    double gbps_in = 0;        // bytes of `type` read per second / 1e9 (median of the runs)
    double gbps_out = 0;       // bytes written (f32 or f16) per second / 1e9
    double ns_per_value = 0;
    // cudaMemcpy device to device of as many bytes as the output, in the same run: bytes
    // copied per second / 1e9 (a copy reads and writes them).
    double memcpy_gbps = 0;
    // Memory traffic against the copy's: ((in + out bytes) / time) / (2 x copied bytes / copy
    // time). Issue 11's target is >= 0.9 for the wide k-quants.
    double bandwidth_fraction = 0;
};

// For each type (can_dequantize's; others are refused with std::invalid_argument), times
// `runs` calls (after one warm-up) of dequantize (and dequantize_f16 when with_f16) over
// `values` values of random blocks, and `runs` copies, with cudaEvents; reports medians.
// `values` is rounded down to a whole number of 256 values (at least 256). Throws Error
// without a device or when memory runs out.
std::vector<GpuBenchRecord> bench_dequantize(std::span<const TypeId> types, int64_t values = int64_t{1} << 26,
                                             int runs = 9, bool with_f16 = true);

}  // namespace kernels::cuda
