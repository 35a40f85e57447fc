// Benchmark, not a test: GB/s of CUDA dequantization per type beside a device-to-device
// cudaMemcpy of the output's bytes measured in the same run (medians, cudaEvent timing).
// Usage: bench_cuda [values per call, default 2^26] [type,type,...]. Without a GPU: exits 77.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/types.h"
#include "kernels/cuda.h"

int main(int argc, char** argv) {
    namespace kc = kernels::cuda;
    std::string why;
    if (!kc::available(&why)) {
        std::printf("SKIPPED: %s\n", why.c_str());
        return 77;
    }
    const int64_t values = argc > 1 ? std::atoll(argv[1]) : int64_t{1} << 26;
    std::vector<gguf::TypeId> types;
    if (argc > 2) {
        std::string_view list = argv[2];
        while (!list.empty()) {
            const size_t comma = list.find(',');
            const std::string_view item = list.substr(0, comma);
            const auto t = gguf::type_from_name(item);
            if (!t || !kc::can_dequantize(*t)) return std::fprintf(stderr, "unknown or unsupported type '%.*s'\n", int(item.size()), item.data()), 2;
            types.push_back(*t);
            list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        }
    } else {
        for (const gguf::TypeInfo& t : gguf::all_types())
            if (kc::can_dequantize(t.id)) types.push_back(t.id);
    }
    try {
        const std::vector<kc::GpuBenchRecord> records = kc::bench_dequantize(types, values);
        std::printf("device: %s, %lld values a call; memcpy = device-to-device copy of the output's bytes;\n"
                    "of copy = (in + out bytes per second) / (2 x copied bytes per second): the target is >= 90%% on wide k-quants\n",
                    records.empty() ? "-" : records[0].device.c_str(), records.empty() ? 0LL : (long long)records[0].values);
        std::printf("%-8s %-12s %10s %10s %9s %12s %8s\n", "type", "op", "in GB/s", "out GB/s", "ns/value", "memcpy GB/s", "of copy");
        for (const kc::GpuBenchRecord& r : records)
            std::printf("%-8s %-12s %10.1f %10.1f %9.4f %12.1f %7.0f%%\n", gguf::type_info(r.type).name.data(), r.op.c_str(), r.gbps_in,
                        r.gbps_out, r.ns_per_value, r.memcpy_gbps, 100 * r.bandwidth_fraction);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda: %s\n", e.what());
        return 1;
    }
    return 0;
}
