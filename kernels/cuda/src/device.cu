// Devices, device memory, errors and the grid tables on the device.
#include <array>
#include <mutex>
#include <stdexcept>
#include <string>

#include "common.cuh"

namespace kernels::cuda {

namespace detail {

void check(cudaError_t e, const std::string& what) {
    if (e != cudaSuccess) throw Error(what + ": " + cudaGetErrorString(e));
}

void check_launch(const char* kernel, TypeId type) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        throw Error(std::string(kernel) + " kernel for " + type_name(type) + ": " + cudaGetErrorString(e) +
                    (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction
                         ? " (rebuild with -DCMAKE_CUDA_ARCHITECTURES=native for this GPU)"
                         : ""));
}

void require_device_pointer(const void* p, const char* name) {
    if (p == nullptr) throw std::invalid_argument(std::string(name) + " is null");
    cudaPointerAttributes attributes{};
    const cudaError_t e = cudaPointerGetAttributes(&attributes, p);
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear it: it is an answer, not a failure of later calls
        throw std::invalid_argument(std::string(name) + " is not device memory (" + cudaGetErrorString(e) + ")");
    }
    if (attributes.devicePointer == nullptr)
        throw std::invalid_argument(std::string(name) + " is host memory; pass device memory (cudaMalloc, DeviceBuffer)");
}

void require_whole_blocks(TypeId type, int64_t n_values, const char* what) {
    const auto block = static_cast<int64_t>(gguf::type_info(type).block_size);
    if (n_values < 0 || block == 0 || n_values % block != 0)
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(n_values) + " values of " + type_name(type) +
                                    " are not a whole number of blocks of " + std::to_string(block));
}

namespace {

template <class T> const T* upload_table(const T* host, int entries) {
    void* p = nullptr;
    check(cudaMalloc(&p, sizeof(T) * static_cast<size_t>(entries)), "cudaMalloc (grid table)");
    check(cudaMemcpy(p, host, sizeof(T) * static_cast<size_t>(entries), cudaMemcpyHostToDevice), "cudaMemcpy (grid table)");
    return static_cast<const T*>(p);
}

}  // namespace

quant::IqGrids device_grids() {
    constexpr int kMaxDevices = 64;
    static std::mutex mutex;
    static std::array<quant::IqGrids, kMaxDevices> grids{};
    int device = 0;
    check(cudaGetDevice(&device), "cudaGetDevice");
    if (device < 0 || device >= kMaxDevices) throw Error("device " + std::to_string(device) + ": too many devices");
    const std::lock_guard lock(mutex);
    quant::IqGrids& g = grids[static_cast<size_t>(device)];
    if (g.iq1s == nullptr) {
        const quant::IqGrids& h = quant::host_grids();
        g.iq2xxs = upload_table(h.iq2xxs, quant::kIQ2XXSGridSize);
        g.iq2xs = upload_table(h.iq2xs, quant::kIQ2XSGridSize);
        g.iq2s = upload_table(h.iq2s, quant::kIQ2SGridSize);
        g.iq3xxs = upload_table(h.iq3xxs, quant::kIQ3XXSGridSize);
        g.iq3s = upload_table(h.iq3s, quant::kIQ3SGridSize);
        g.iq1s = upload_table(h.iq1s, quant::kIQ1SGridSize);  // last: it marks the set complete
    }
    return g;
}

}  // namespace detail

bool available(std::string* why) {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        if (why) *why = std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return false;
    }
    return true;
}

DeviceInfo device_info() {
    DeviceInfo info;
    detail::check(cudaGetDevice(&info.index), "cudaGetDevice");
    cudaDeviceProp p{};
    detail::check(cudaGetDeviceProperties(&p, info.index), "cudaGetDeviceProperties");
    info.name = p.name;
    info.compute_major = p.major;
    info.compute_minor = p.minor;
    info.multiprocessors = p.multiProcessorCount;
    size_t free_bytes = 0, total_bytes = 0;
    detail::check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    info.total_memory = total_bytes;
    info.free_memory = free_bytes;
    return info;
}

void synchronize(Stream stream) { detail::check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"); }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) detail::check(cudaMalloc(&data_, bytes), "cudaMalloc(" + std::to_string(bytes) + " bytes)");
}

DeviceBuffer::~DeviceBuffer() {
    if (data_) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
    other.data_ = nullptr;
    other.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
        if (data_) cudaFree(data_);
        data_ = other.data_;
        bytes_ = other.bytes_;
        other.data_ = nullptr;
        other.bytes_ = 0;
    }
    return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
    if (offset > bytes_ || bytes > bytes_ - offset) throw std::invalid_argument("DeviceBuffer::upload past the end");
    if (bytes)
        detail::check(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice),
                      "cudaMemcpy (host to device)");
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
    if (offset > bytes_ || bytes > bytes_ - offset) throw std::invalid_argument("DeviceBuffer::download past the end");
    if (bytes)
        detail::check(cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost),
                      "cudaMemcpy (device to host)");
}

}  // namespace kernels::cuda
