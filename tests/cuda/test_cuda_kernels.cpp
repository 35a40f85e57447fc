// kernels/cuda against the CPU: every type's dequantization (to f32 and f16) gives quant/'s
// bits, on random blocks (NaN and Inf scales included), at odd sizes and offsets (a NaN
// equals any NaN: a GPU's arithmetic returns its one canonical NaN, x86 the operand's); matvec and
// matmul stay within the bounds kernels/cuda.h states of a double-precision sum; arguments
// are checked. Plain C++ over the public header. Without a GPU: says why, exits 77 (ctest:
// skipped).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "kernels/cuda.h"
#include "quant/quant.h"

namespace {

namespace kc = kernels::cuda;
using gguf::TypeId;

int g_failures = 0;

void fail(const std::string& what) {
    ++g_failures;
    std::printf("FAIL %s\n", what.c_str());
}

const char* name(TypeId t) { return gguf::type_info(t).name.data(); }

std::vector<TypeId> cuda_types() {
    std::vector<TypeId> types;
    for (const gguf::TypeInfo& t : gguf::all_types())
        if (kc::can_dequantize(t.id)) types.push_back(t.id);
    return types;
}

// Random bytes for n_blocks blocks; the first block all 0xff (NaN scales), the second f16
// infinities (bytes 00 7c repeated) where a type has them.
std::vector<uint8_t> random_blocks(TypeId t, int64_t n_blocks, std::mt19937& rng) {
    std::vector<uint8_t> bytes(gguf::type_info(t).type_size * static_cast<size_t>(n_blocks));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    const size_t block = gguf::type_info(t).type_size;
    if (n_blocks >= 2 && block >= 2) {
        std::memset(bytes.data(), 0xff, block);
        for (size_t i = 0; i < block; ++i) bytes[block + i] = i % 2 ? 0x7c : 0x00;
    }
    return bytes;
}

// Blocks whose values are all finite and at most `limit` in magnitude (random bytes, redrawn
// until so), for the products. Float types: values in [-1, 1].
std::vector<uint8_t> finite_blocks(TypeId t, int64_t n_blocks, float limit, std::mt19937& rng) {
    const gguf::TypeInfo& info = gguf::type_info(t);
    std::vector<uint8_t> bytes(info.type_size * static_cast<size_t>(n_blocks));
    std::vector<float> values(info.block_size);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (int64_t b = 0; b < n_blocks; ++b) {
        uint8_t* p = bytes.data() + info.type_size * static_cast<size_t>(b);
        if (!info.quantized) {
            const float v = unit(rng);
            const uint16_t h = t == TypeId::F16 ? quant::f32_to_f16(v) : quant::f32_to_bf16(v);
            if (t == TypeId::F32) std::memcpy(p, &v, 4);
            else std::memcpy(p, &h, 2);
            continue;
        }
        for (;;) {
            for (size_t i = 0; i < info.type_size; ++i) p[i] = static_cast<uint8_t>(rng());
            quant::dequantize(t, {p, info.type_size}, values);
            bool ok = true;
            for (float v : values) ok = ok && std::isfinite(v) && std::fabs(v) <= limit;
            if (ok) break;
        }
    }
    return bytes;
}

bool same_bits(float a, float b) {
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y || (std::isnan(a) && std::isnan(b));
}

bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }
bool same_half(uint16_t a, uint16_t b) { return a == b || (half_is_nan(a) && half_is_nan(b)); }

// Dequantization of n_blocks random blocks at byte offset `src_offset`, into f32 and into f16
// at element offset `dst_offset` (an odd offset makes the f16 stores unpaired).
void check_dequantize(TypeId t, int64_t n_blocks, size_t src_offset, size_t dst_offset, std::mt19937& rng) {
    const gguf::TypeInfo& info = gguf::type_info(t);
    if (!info.quantized) src_offset = 0;  // float values must be aligned
    const int64_t n = n_blocks * info.block_size;
    const std::vector<uint8_t> bytes = random_blocks(t, n_blocks, rng);
    std::vector<float> host(static_cast<size_t>(n));
    quant::dequantize(t, bytes, host);

    kc::DeviceBuffer src(bytes.size() + src_offset), f32((static_cast<size_t>(n) + dst_offset) * 4),
        f16((static_cast<size_t>(n) + dst_offset) * 2);
    src.upload(bytes.data(), bytes.size(), src_offset);
    kc::dequantize(t, src.as<uint8_t>() + src_offset, f32.as<float>() + dst_offset, n);
    kc::dequantize_f16(t, src.as<uint8_t>() + src_offset, f16.as<uint16_t>() + dst_offset, n);
    kc::synchronize();
    std::vector<float> device(static_cast<size_t>(n));
    std::vector<uint16_t> device_half(static_cast<size_t>(n));
    f32.download(device.data(), device.size() * 4, dst_offset * 4);
    f16.download(device_half.data(), device_half.size() * 2, dst_offset * 2);

    int64_t differ = 0, differ_half = 0, first = -1;
    for (size_t i = 0; i < host.size(); ++i) {
        if (!same_bits(host[i], device[i])) differ++, first = first < 0 ? static_cast<int64_t>(i) : first;
        if (!same_half(quant::f32_to_f16(host[i]), device_half[i])) differ_half++, first = first < 0 ? static_cast<int64_t>(i) : first;
    }
    const std::string what = std::string(name(t)) + " dequantize, " + std::to_string(n_blocks) + " blocks, src +" +
                             std::to_string(src_offset) + " bytes, dst +" + std::to_string(dst_offset);
    if (differ || differ_half) {
        char detail[160];
        std::snprintf(detail, sizeof detail, ": %lld f32 and %lld f16 values differ; first at %lld: host %a, device %a / %04x", (long long)differ,
                      (long long)differ_half, (long long)first, host[first], device[first], device_half[first]);
        fail(what + detail);
    }
}

double dot_double(const float* w, const float* x, int64_t k, double* magnitude) {
    double sum = 0, abs_sum = 0;
    for (int64_t i = 0; i < k; ++i) {
        sum += static_cast<double>(w[i]) * x[i];
        abs_sum += std::fabs(static_cast<double>(w[i]) * x[i]);
    }
    *magnitude = abs_sum;
    return sum;
}

// matvec and both matmul methods on an m x k matrix with padded rows, n vectors.
void check_products(TypeId t, std::mt19937& rng) {
    const gguf::TypeInfo& info = gguf::type_info(t);
    constexpr int64_t m = 77, k = 2048, n = 5;
    const auto row_bytes = static_cast<int64_t>(gguf::tensor_bytes(t, k));
    const int64_t stride = row_bytes + 16;
    const std::vector<uint8_t> rows = finite_blocks(t, m * k / info.block_size, 1000.0f, rng);
    std::vector<uint8_t> padded(static_cast<size_t>(m * stride), 0xee);
    std::vector<float> w(static_cast<size_t>(m * k));
    for (int64_t r = 0; r < m; ++r) {
        std::memcpy(padded.data() + r * stride, rows.data() + r * row_bytes, static_cast<size_t>(row_bytes));
        quant::dequantize(t, {rows.data() + r * row_bytes, static_cast<size_t>(row_bytes)}, {w.data() + r * k, static_cast<size_t>(k)});
    }
    std::vector<float> x(static_cast<size_t>(k * n));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : x) v = normal(rng);

    kc::DeviceBuffer w_dev(padded.size()), x_dev(x.size() * 4), y_dev(static_cast<size_t>(m * n) * 4);
    w_dev.upload(padded.data(), padded.size());
    x_dev.upload(x.data(), x.size() * 4);
    std::vector<float> y(static_cast<size_t>(m * n)), again(static_cast<size_t>(m * n));

    const auto bound_matvec = [&](double magnitude) { return (k / 32.0 + 40) * 0x1p-24 * magnitude; };
    const auto bound_cublas = [&](int64_t r, int64_t j, double magnitude) {
        double sizes = 0;
        for (int64_t i = 0; i < k; ++i) sizes += std::fabs(w[r * k + i]) + std::fabs(x[j * k + i]);
        return (0x1p-10 + k * 0x1p-23) * magnitude + 0x1p-25 * sizes;
    };
    const auto compare = [&](const char* method, int64_t columns, bool cublas) {
        double worst = 0;
        for (int64_t j = 0; j < columns; ++j)
            for (int64_t r = 0; r < m; ++r) {
                double magnitude = 0;
                const double exact = dot_double(w.data() + r * k, x.data() + j * k, k, &magnitude);
                const double bound = cublas ? bound_cublas(r, j, magnitude) : bound_matvec(magnitude);
                const double error = std::fabs(y[j * m + r] - exact);
                if (!(error <= bound)) {
                    fail(std::string(name(t)) + " " + method + ": row " + std::to_string(r) + " column " + std::to_string(j) + " off by " +
                         std::to_string(error) + ", bound " + std::to_string(bound));
                    return;
                }
                worst = std::max(worst, magnitude > 0 ? error / magnitude : 0);
            }
        std::printf("  %-8s %-13s worst error / sum|wx| = %.2e\n", name(t), method, worst);
    };

    kc::matvec(t, w_dev.data(), stride, m, k, x_dev.as<float>(), y_dev.as<float>());
    y_dev.download(y.data(), static_cast<size_t>(m) * 4);
    compare("matvec", 1, false);
    kc::matvec(t, w_dev.data(), stride, m, k, x_dev.as<float>(), y_dev.as<float>());
    y_dev.download(again.data(), static_cast<size_t>(m) * 4);
    if (std::memcmp(y.data(), again.data(), static_cast<size_t>(m) * 4) != 0) fail(std::string(name(t)) + " matvec differs between runs");

    kc::matmul(t, w_dev.data(), stride, m, k, x_dev.as<float>(), n, y_dev.as<float>(), kc::MatmulMethod::Matvec);
    y_dev.download(y.data(), y.size() * 4);
    compare("matmul/matvec", n, false);
    kc::matmul(t, w_dev.data(), stride, m, k, x_dev.as<float>(), n, y_dev.as<float>(), kc::MatmulMethod::Cublas);
    y_dev.download(y.data(), y.size() * 4);
    compare("matmul/cublas", n, true);
}

template <class Fn> void expect_invalid(const char* what, Fn&& fn) {
    try {
        fn();
        fail(std::string(what) + ": no exception");
    } catch (const std::invalid_argument& e) {
        std::printf("  refused %s: %s\n", what, e.what());
    }
}

void check_arguments() {
    kc::DeviceBuffer buffer(1024);
    std::vector<uint8_t> host(1024);
    expect_invalid("a host pointer", [&] { kc::dequantize(TypeId::Q4_0, host.data(), buffer.as<float>(), 32); });
    expect_invalid("a partial block", [&] { kc::dequantize(TypeId::Q4_0, buffer.data(), buffer.as<float>() + 64, 31); });
    expect_invalid("an integer type", [&] { kc::dequantize(TypeId::I32, buffer.data(), buffer.as<float>(), 4); });
    expect_invalid("a misaligned f16 source", [&] { kc::dequantize(TypeId::F16, buffer.as<uint8_t>() + 1, buffer.as<float>() + 64, 4); });
    expect_invalid("a short row stride", [&] {
        kc::matvec(TypeId::Q8_0, buffer.data(), 10, 2, 32, buffer.as<float>() + 128, buffer.as<float>() + 200);
    });
}

// Whether a library whose file name contains `name` is mapped into this process.
bool mapped(const char* name) {
    std::FILE* maps = std::fopen("/proc/self/maps", "r");
    if (!maps) return false;
    char line[4096];
    bool found = false;
    while (!found && std::fgets(line, sizeof line, maps)) found = std::strstr(line, name) != nullptr;
    std::fclose(maps);
    return found;
}

}  // namespace

int main() {
    // cuBLAS is opened on the first product that needs it (kernels/cuda/src/products.cu), never
    // at start: loading it costs every process about 210 MB and 0.1-0.25 s. Checked with or
    // without a GPU.
    if (mapped("libcublas")) {
        std::printf("FAILED: libcublas is loaded at start (linked rather than opened on first use)\n");
        return 1;
    }
    std::string why;
    if (!kc::load_cublas(&why)) {
        std::printf("FAILED: cuBLAS cannot be opened: %s\n", why.c_str());
        return 1;
    }
    if (!mapped("libcublas")) {
        std::printf("FAILED: load_cublas said yes, yet libcublas is not mapped\n");
        return 1;
    }
    std::printf("cuBLAS: not loaded at start, opened on demand\n");
    if (!kc::available(&why)) {
        std::printf("SKIPPED: %s; the CUDA kernels were compiled, not run\n", why.c_str());
        return 77;
    }
    const kc::DeviceInfo device = kc::device_info();
    std::printf("device: %s (compute %d.%d, %d SMs, %.1f GiB)\n", device.name.c_str(), device.compute_major, device.compute_minor,
                device.multiprocessors, static_cast<double>(device.total_memory) / (1 << 30));
    const std::vector<TypeId> types = cuda_types();
    if (types.size() != 30) fail("can_dequantize covers " + std::to_string(types.size()) + " types, not the 27 quantized + F16, BF16, F32");

    std::mt19937 rng(11);
    try {
        for (TypeId t : types) {
            const int64_t values_per_block = gguf::type_info(t).block_size;
            // A few warps' worth of parts plus a partial warp; then a single block at odd offsets.
            const int64_t blocks = (values_per_block == 1 ? 40000 : 131072 / values_per_block) + 3;
            check_dequantize(t, blocks, 0, 0, rng);
            check_dequantize(t, blocks, 1, 1, rng);
            check_dequantize(t, 1, 3, 0, rng);
            std::printf("%-8s dequantize f32 and f16: %s\n", name(t), g_failures ? "checked (failures above)" : "same bits as the CPU");
        }
        std::printf("products (m 77, k 2048, n 5, padded rows):\n");
        for (TypeId t : types) check_products(t, rng);
        std::printf("arguments:\n");
        check_arguments();
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
    return g_failures ? 1 : 0;
}
