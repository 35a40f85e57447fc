// Benchmark: single-thread quantize and dequantize speed per type. Prints figures; asserts
// nothing. bench_quant [RUNS]
// Input: 32 rows x 4096 values (../shared/ref/quant/input_gauss.f32 when present, else a
// generated gaussian of the same size). Beside each figure, the reference's from rmse.tsv
// (taken on this kind of machine while it was busy: compare ratios, not absolute values),
// and memcpy of the same bytes as a yardstick measured in this run. Types that need
// importance weights are timed with them (importance.f32, else all ones).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "quant/quant.h"
#include "support.h"

namespace {

using test::median_ns;

struct RefTiming {
    double quant = NAN, dequant = NAN;
};

std::map<std::string, RefTiming> reference_timings() {
    std::map<std::string, RefTiming> m;
    std::ifstream in(test::ref_dir() / "quant" / "rmse.tsv");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string name, id, block, bytes, input, imx;
        double rmse, wrmse, q, dq;
        f >> name >> id >> block >> bytes >> input >> imx >> rmse >> wrmse >> q >> dq;
        // The plain figures, or the imatrix ones for types that have only those.
        if (input == "gauss" && (imx == "no" || !m.count(name))) m[name] = {q, dq};
    }
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 7;
    constexpr int64_t rows = 32, cols = 4096, n = rows * cols;
    std::vector<float> x(n);
    const auto input = test::ref_dir() / "quant" / "input_gauss.f32";
    if (std::filesystem::exists(input)) {
        std::vector<uint8_t> b = test::read_bytes(input);
        std::memcpy(x.data(), b.data(), n * 4);
    } else {
        uint64_t s = 42;
        for (float& v : x) {  // sum of uniforms: close enough to N(0, 0.02^2) for timing
            double u = 0;
            for (int k = 0; k < 4; ++k) u += static_cast<double>((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) * 0x1p-53;
            v = static_cast<float>((u - 2) * 0.0346);
        }
    }
    // Importance weights for the types that need them: the reference's, or all ones.
    std::vector<float> importance(cols, 1.0f);
    const auto importance_file = test::ref_dir() / "quant" / "importance.f32";
    if (std::filesystem::exists(importance_file)) {
        std::vector<uint8_t> b = test::read_bytes(importance_file);
        std::memcpy(importance.data(), b.data(), cols * 4);
    }
    const auto ref = reference_timings();
    std::vector<uint8_t> copy(n * 4);
    const double memcpy_ns = median_ns(runs * 3, [&] { std::memcpy(copy.data(), x.data(), copy.size()); }) / n;
    fmt::print("input: {} x {} values{}; median of {} runs, single thread\n", rows, cols,
               std::filesystem::exists(input) ? " (input_gauss.f32)" : " (generated)", runs);
    fmt::print("yardstick: memcpy of the f32 input {:.3f} ns/value\n\n", memcpy_ns);
    fmt::print("{:<8} {:>11} {:>11} {:>9} {:>11} {:>11} {:>9} {:>12}\n", "type", "quant ns/v", "ref", "ours/ref", "dequant", "ref",
               "ours/ref", "quant/memcpy");
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        if (!quant::can_quantize(t.id)) continue;
        const std::span<const float> w = quant::needs_importance(t.id) ? std::span<const float>(importance) : std::span<const float>();  // timed with weights
        std::vector<uint8_t> q(quant::row_bytes(t.id, cols) * rows);
        std::vector<float> y(n);
        const double qns = median_ns(runs, [&] { quant::quantize(t.id, std::span<const float>(x.data(), static_cast<size_t>(rows * cols)), cols, w, q); }) / n;
        const double dns = median_ns(runs, [&] { quant::dequantize(t.id, q, y); }) / n;
        auto it = ref.find(std::string(t.name));
        const RefTiming r = it == ref.end() ? RefTiming{} : it->second;
        fmt::print("{:<8} {:>11.3f} {:>11.3f} {:>9.2f} {:>11.3f} {:>11.3f} {:>9.2f} {:>12.1f}\n", t.name, qns, r.quant, qns / r.quant, dns,
                   r.dequant, dns / r.dequant, qns / memcpy_ns);
    }
    return 0;
}
