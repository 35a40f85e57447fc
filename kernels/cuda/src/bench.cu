// Dequantization speed per type against a device-to-device copy of the output's bytes,
// timed with CUDA events in the same run (for `gguf bench --gpu` and tests/bench_cuda).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"

namespace kernels::cuda {

namespace {

// Random bytes (a hash of the position): blocks with any scales, NaN and Inf included; the
// kernels' speed does not depend on the values.
__global__ void fill_random(uint8_t* p, int64_t n, uint32_t seed) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = static_cast<uint32_t>(i) * 0x9e3779b1u ^ static_cast<uint32_t>(i >> 32) ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    p[i] = static_cast<uint8_t>(h);
}

class Events {
public:
    Events() {
        detail::check(cudaEventCreate(&start_), "cudaEventCreate");
        detail::check(cudaEventCreate(&stop_), "cudaEventCreate");
    }
    ~Events() {
        cudaEventDestroy(start_);
        cudaEventDestroy(stop_);
    }
    Events(const Events&) = delete;
    Events& operator=(const Events&) = delete;

    // Seconds that fn's queued work takes on the default stream.
    template <class Fn> double seconds(Fn&& fn) {
        detail::check(cudaEventRecord(start_), "cudaEventRecord");
        fn();
        detail::check(cudaEventRecord(stop_), "cudaEventRecord");
        detail::check(cudaEventSynchronize(stop_), "cudaEventSynchronize");
        float ms = 0;
        detail::check(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
        return ms * 1e-3;
    }

private:
    cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

template <class Fn> double median_seconds(Events& events, int runs, Fn&& fn) {
    events.seconds(fn);  // warm-up: first launches, lazy loading of the module
    std::vector<double> times;
    for (int r = 0; r < runs; ++r) times.push_back(events.seconds(fn));
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace

std::vector<GpuBenchRecord> bench_dequantize(std::span<const TypeId> types, int64_t values, int runs, bool with_f16) {
    for (TypeId t : types)
        if (!can_dequantize(t)) throw std::invalid_argument(std::string("bench_dequantize: ") + detail::type_name(t) + " is not supported on CUDA");
    std::string why;
    if (!available(&why)) throw Error(why);
    values = std::max<int64_t>(256, values / 256 * 256);  // a whole number of blocks of every type
    runs = std::max(1, runs);
    const std::string device = device_info().name;

    int64_t max_in = 0;
    for (TypeId t : types) max_in = std::max<int64_t>(max_in, static_cast<int64_t>(gguf::tensor_bytes(t, static_cast<uint64_t>(values))));
    DeviceBuffer in(static_cast<size_t>(max_in)), out(static_cast<size_t>(values) * 4), copy(static_cast<size_t>(values) * 4);
    fill_random<<<static_cast<unsigned>((max_in + 255) / 256), 256>>>(in.as<uint8_t>(), max_in, 0x5eedu);
    detail::check(cudaGetLastError(), "fill_random");
    detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    Events events;

    std::vector<GpuBenchRecord> records;
    for (TypeId t : types) {
        const double in_bytes = static_cast<double>(gguf::tensor_bytes(t, static_cast<uint64_t>(values)));
        for (int f16 = 0; f16 <= (with_f16 ? 1 : 0); ++f16) {
            const size_t out_bytes = static_cast<size_t>(values) * (f16 ? 2 : 4);
            const double seconds = median_seconds(events, runs, [&] {
                if (f16) dequantize_f16(t, in.data(), out.as<uint16_t>(), values);
                else dequantize(t, in.data(), out.as<float>(), values);
            });
            const double copy_seconds = median_seconds(events, runs, [&] {
                detail::check(cudaMemcpyAsync(copy.data(), out.data(), out_bytes, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
            });
            GpuBenchRecord r{t, f16 ? "dequant_f16" : "dequant", device};
            r.values = values;
            r.gbps_in = in_bytes / seconds * 1e-9;
            r.gbps_out = static_cast<double>(out_bytes) / seconds * 1e-9;
            r.ns_per_value = seconds * 1e9 / static_cast<double>(values);
            r.memcpy_gbps = static_cast<double>(out_bytes) / copy_seconds * 1e-9;
            r.bandwidth_fraction = ((in_bytes + static_cast<double>(out_bytes)) / seconds) / (2.0 * static_cast<double>(out_bytes) / copy_seconds);
            records.push_back(std::move(r));
        }
    }
    return records;
}

}  // namespace kernels::cuda
