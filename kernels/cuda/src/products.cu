// Matrix-vector (a kernel: one warp per row) and matrix-matrix products (W tiles
// dequantized to f16, then cuBLAS) of quantized weights.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>

#include "formats.cuh"

namespace kernels::cuda {

namespace detail {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per thread block, one row each

// y[r] = row r . x. Lane l takes parts l, l + 32, ... of the row (decoded into registers)
// and sums value x activation with fmaf in that order; the lanes' sums then meet in a fixed
// butterfly, so every run gives the same bits.
template <class Block>
__global__ void __launch_bounds__(32 * kRowsPerBlock)
    matvec_rows(const uint8_t* __restrict__ w, int64_t row_stride, int64_t m, int64_t parts_per_row, const float* __restrict__ x,
                float* __restrict__ y, quant::IqGrids grids) {
    constexpr int P = Format<Block>::kPart;
    const int lane = static_cast<int>(threadIdx.x % 32);
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    if (row >= m) return;  // the whole warp
    const uint8_t* w_row = w + row * row_stride;
    float sum = 0.0f;
    for (int64_t part = lane; part < parts_per_row; part += 32) {
        float v[P];
        Format<Block>::part(w_row, part, grids, v);
        const float* xp = x + part * P;
#pragma unroll
        for (int j = 0; j < P; ++j) sum = fmaf(v[j], __ldg(xp + j), sum);
    }
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[row] = sum;
}

void check_product_arguments(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const char* what) {
    if (!can_dequantize(type)) throw std::invalid_argument(std::string(what) + ": type " + type_name(type) + " is not supported on CUDA");
    if (m < 0) throw std::invalid_argument(std::string(what) + ": negative row count");
    require_whole_blocks(type, k, what);
    const auto row_bytes = static_cast<int64_t>(gguf::tensor_bytes(type, static_cast<uint64_t>(k)));
    if (m > 1 && row_stride < row_bytes)
        throw std::invalid_argument(std::string(what) + ": row stride " + std::to_string(row_stride) + " is less than a row's " +
                                    std::to_string(row_bytes) + " bytes");
    if (!gguf::type_info(type).quantized) {
        const int size = float_value_bytes(type);
        if (reinterpret_cast<uintptr_t>(w) % size != 0 || row_stride % size != 0)
            throw std::invalid_argument(std::string(what) + ": " + type_name(type) + " rows must start at multiples of " +
                                        std::to_string(size) + " bytes");
    }
}

void launch_matvec(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const float* x, float* y, cudaStream_t stream) {
    const quant::IqGrids grids = device_grids();
    const unsigned blocks = static_cast<unsigned>((m + kRowsPerBlock - 1) / kRowsPerBlock);
    visit_type(type, [&]<class Block>() {
        const int64_t parts_per_row = k / Format<Block>::kPart;
        matvec_rows<Block><<<blocks, 32 * kRowsPerBlock, 0, stream>>>(static_cast<const uint8_t*>(w), row_stride, m, parts_per_row, x, y,
                                                                       grids);
    });
    check_launch("matvec", type);
}

// ---- cuBLAS ----

// cuBLAS is opened on first use, not linked: loading libcublasLt (which libcublas needs) costs
// a process about 210 MB of resident memory and 0.1-0.25 s before main, which every command
// paid whether it ran a product on a GPU or not. GGUFKIT_CUBLAS_PATH is the library CMake
// found, GGUFKIT_CUBLAS_SONAME its name for the loader's search.
struct Cublas {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasSetStream_v2) set_stream;
    // the exported function (the header adds an inline overload taking a cudaDataType compute type)
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*, const void*, cudaDataType,
                              int, const void*, cudaDataType, int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                              cublasGemmAlgo_t);
    decltype(&cublasGetStatusString) status_string;
};

const Cublas& cublas() {
    static std::mutex mutex;
    static const Cublas* loaded = nullptr;
    std::lock_guard lock(mutex);
    if (loaded) return *loaded;
    void* library = nullptr;
    std::string why;
    for (const char* name : {GGUFKIT_CUBLAS_PATH, GGUFKIT_CUBLAS_SONAME}) {
        if ((library = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
        const char* e = dlerror();
        why += std::string(why.empty() ? "" : "; ") + (e ? e : name);
    }
    if (!library) throw Error("cannot load cuBLAS for the matrix products: " + why);
    auto symbol = [&](const char* name) {
        void* p = dlsym(library, name);
        if (!p) throw Error(std::string("cuBLAS (") + GGUFKIT_CUBLAS_SONAME + ") has no " + name);
        return p;
    };
    static Cublas c;
    c.create = reinterpret_cast<decltype(c.create)>(symbol("cublasCreate_v2"));
    c.set_stream = reinterpret_cast<decltype(c.set_stream)>(symbol("cublasSetStream_v2"));
    c.gemm_ex = reinterpret_cast<decltype(c.gemm_ex)>(symbol("cublasGemmEx"));
    c.status_string = reinterpret_cast<decltype(c.status_string)>(symbol("cublasGetStatusString"));
    return *(loaded = &c);
}

void check_cublas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string(what) + ": " + cublas().status_string(s));
}

// One cuBLAS handle per thread and device, made on first use and kept (destroying it at exit
// could follow the CUDA runtime's own teardown).
cublasHandle_t cublas_handle() {
    constexpr int kMaxDevices = 64;
    thread_local cublasHandle_t handles[kMaxDevices] = {};
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    if (device < 0 || device >= kMaxDevices) throw Error("device " + std::to_string(device) + ": too many devices");
    cublasHandle_t& h = handles[device];
    if (!h) check_cublas(cublas().create(&h), "cublasCreate");
    return h;
}

// Stream-ordered temporary device memory, freed (in stream order) on destruction.
class StreamBuffer {
public:
    StreamBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
        check(cudaMallocAsync(&data_, bytes, stream), "cudaMallocAsync(" + std::to_string(bytes) + " bytes)");
    }
    ~StreamBuffer() { cudaFreeAsync(data_, stream_); }
    StreamBuffer(const StreamBuffer&) = delete;
    StreamBuffer& operator=(const StreamBuffer&) = delete;
    template <class T> T* as() const { return static_cast<T*>(data_); }

private:
    void* data_ = nullptr;
    cudaStream_t stream_;
};

constexpr int64_t kTileBytes = int64_t{64} << 20;  // the f16 W tile

void matmul_cublas(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n, float* y,
                   cudaStream_t stream) {
    // x to f16 once (k x n, column j = vector j), then W in tiles of rows: each tile row-major
    // (tile_rows x k halves) is a column-major k x tile_rows matrix, so y_tile = tile^T x.
    StreamBuffer x_half(static_cast<size_t>(k * n) * 2, stream);
    dequantize_f16(TypeId::F32, x, x_half.as<uint16_t>(), k * n, stream);
    const int64_t tile_rows = std::clamp<int64_t>(kTileBytes / (2 * k), 1, m);
    StreamBuffer tile(static_cast<size_t>(tile_rows * k) * 2, stream);
    const int64_t row_bytes = static_cast<int64_t>(gguf::tensor_bytes(type, static_cast<uint64_t>(k)));

    cublasHandle_t handle = cublas_handle();
    check_cublas(cublas().set_stream(handle, stream), "cublasSetStream");
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < m; r0 += tile_rows) {
        const int64_t rows = std::min(tile_rows, m - r0);
        if (row_stride == row_bytes || rows == 1) {
            dequantize_f16(type, w + r0 * row_stride, tile.as<uint16_t>(), rows * k, stream);
        } else {
            for (int64_t r = 0; r < rows; ++r)
                dequantize_f16(type, w + (r0 + r) * row_stride, tile.as<uint16_t>() + r * k, k, stream);
        }
        check_cublas(cublas().gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(n), static_cast<int>(k), &one,
                                  tile.as<uint16_t>(), CUDA_R_16F, static_cast<int>(k), x_half.as<uint16_t>(), CUDA_R_16F,
                                  static_cast<int>(k), &zero, y + r0, CUDA_R_32F, static_cast<int>(m), CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx");
    }
}

}  // namespace
}  // namespace detail

bool load_cublas(std::string* why) {
    try {
        detail::cublas();
        return true;
    } catch (const std::exception& e) {
        if (why) *why = e.what();
        return false;
    }
}

void matvec(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const float* x, float* y, Stream stream) {
    detail::check_product_arguments(type, w, row_stride, m, k, "matvec");
    if (m == 0) return;
    detail::require_device_pointer(w, "w");
    detail::require_device_pointer(x, "x");
    detail::require_device_pointer(y, "y");
    if (k == 0) {
        detail::check(cudaMemsetAsync(y, 0, static_cast<size_t>(m) * sizeof(float), stream), "cudaMemsetAsync");
        return;
    }
    detail::launch_matvec(type, w, row_stride, m, k, x, y, stream);
}

void matmul(TypeId type, const void* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n, float* y,
            MatmulMethod method, Stream stream) {
    detail::check_product_arguments(type, w, row_stride, m, k, "matmul");
    if (n < 0) throw std::invalid_argument("matmul: negative column count");
    constexpr int64_t kIntMax = 2147483647;
    if (m > kIntMax || n > kIntMax || k > kIntMax || k * n > (int64_t{1} << 40))
        throw std::invalid_argument("matmul: dimensions beyond cuBLAS's 32-bit sizes");
    if (m == 0 || n == 0) return;
    if (k == 0) {
        detail::require_device_pointer(y, "y");
        detail::check(cudaMemsetAsync(y, 0, static_cast<size_t>(m * n) * sizeof(float), stream), "cudaMemsetAsync");
        return;
    }
    detail::require_device_pointer(w, "w");
    detail::require_device_pointer(x, "x");
    detail::require_device_pointer(y, "y");
    if (method == MatmulMethod::Matvec) {
        for (int64_t j = 0; j < n; ++j) detail::launch_matvec(type, w, row_stride, m, k, x + j * k, y + j * m, stream);
        return;
    }
    detail::matmul_cublas(type, static_cast<const uint8_t*>(w), row_stride, m, k, x, n, y, stream);
}

}  // namespace kernels::cuda
