// Benchmark: gguf check's data pass, in GB/s. Prints figures; asserts nothing.
//   bench_check [GiB]   (default 2: the f16 file's size; the q4_K file is half of it)
// Generates the files in a temporary folder (removed at the end), then measures, page cache
// warm, the median of 3 runs of checking every tensor on 1 thread and on all cores, beside
// the yardstick of reading the same mapped bytes (a sum over 8-byte words) in the same run.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "kernels/check.h"
#include "quant/quant.h"
#include "support.h"

namespace {

// A model of `tensors` tensors of rows x 4096 values of `type`, the same quantized rows over and over.
void generate(const std::filesystem::path& path, gguf::TypeId type, uint64_t bytes_wanted) {
    constexpr int64_t cols = 4096, rows = 1024;
    std::vector<float> x(cols);
    for (int64_t i = 0; i < cols; ++i) x[i] = std::sin(static_cast<float>(i) * 0.1f) * 0.02f;
    auto row = std::make_shared<std::vector<uint8_t>>(quant::row_bytes(type, cols));
    quant::quantize(type, std::span<const float>(x.data(), static_cast<size_t>(cols)), cols, {}, *row);
    const uint64_t tensor_bytes = row->size() * rows;
    gguf::Writer w;
    for (uint64_t t = 0; t * tensor_bytes < bytes_wanted; ++t)
        w.add_tensor(fmt::format("blk.{}.w", t), type, {cols, rows}, [row](gguf::ByteSink& out) {
            for (int64_t r = 0; r < rows; ++r) out.write(*row);
        });
    w.write(path);
}

double check_all(const gguf::File& f, int threads) {
    return test::median_ns(3, [&] {
        for (const gguf::TensorInfo& t : f.tensors())
            if (kernels::check_data(t.type, f.tensor_data(t), threads).bad) std::abort();
    });
}

double read_all(const gguf::File& f) {
    return test::median_ns(3, [&] {
        const auto b = f.bytes().subspan(f.data_section_offset());
        uint64_t sum = 0;
        for (size_t i = 0; i + 8 <= b.size(); i += 8) {
            uint64_t v;
            std::memcpy(&v, b.data() + i, 8);
            sum += v;
        }
        if (sum == 42) std::abort();
    });
}

}  // namespace

int main(int argc, char** argv) {
    const double gib = argc > 1 ? std::atof(argv[1]) : 2.0;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    test::TempDir dir;
    for (auto [type, share] : {std::pair{gguf::TypeId::F16, 1.0}, std::pair{gguf::TypeId::Q4_K, 0.5}}) {
        const auto path = dir / fmt::format("{}.gguf", gguf::type_info(type).name);
        generate(path, type, static_cast<uint64_t>(gib * share * 1073741824.0));
        const gguf::File f = gguf::File::open(path);
        const double bytes = static_cast<double>(f.size() - f.data_section_offset());
        read_all(f);  // touch every page once
        const double yard = read_all(f);
        fmt::print("{}: {:.2f} GB of tensor data in {} tensors\n", gguf::type_info(type).name, bytes / 1e9, f.tensors().size());
        fmt::print("  yardstick, read every byte (1 thread): {:6.2f} GB/s\n", bytes / yard);
        for (int threads : {1, cores}) {
            const double ns = check_all(f, threads);
            fmt::print("  check, {} thread{}:                  {:6.2f} GB/s   ({:.2f}x the yardstick)\n", threads, threads == 1 ? " " : "s",
                       bytes / ns, yard / ns);
        }
        std::filesystem::remove(path);
    }
    return 0;
}
