// Benchmark: gguf compress / decompress against plain zstd of the same file, in the same
// run. Prints figures; asserts nothing.
//   bench_compress [WIDTH] [LAYERS] [RUNS] [FRAME_BYTES]
// Generates a BF16 model with normal weights (test::realistic_model; default 2048 wide, 8
// blocks: about 170 MB) and its Q4_K_M (gguf requant), then for each: the .gguf.zst size
// and ratio, compression speed on 1 and 2 threads, decompression speed on 1 thread (per
// core); and zstd -3 of the whole file as one stream (libzstd, one thread): its size,
// compression and decompression speeds. RUNS (default 3) runs each, median.
#include <fmt/format.h>
#include <zstd.h>

#include <cstdlib>

#include "gguf/zst.h"
#include "requant/run.h"
#include "support.h"

namespace {

double mb_per_s(uint64_t bytes, double ns) { return static_cast<double>(bytes) / 1e6 / (ns / 1e9); }

uint64_t g_frame_bytes = gguf::zst::CompressOptions{}.frame_bytes;

void measure(const std::filesystem::path& dir, const std::string& name, int runs) {
    const std::filesystem::path in = dir / name, packed = dir / (name + ".zst"), back = dir / (name + ".back");
    const std::vector<uint8_t> original = test::read_bytes(in);
    gguf::zst::Report r;
    double compress_ns[2];
    for (int threads : {1, 2}) {
        gguf::zst::CompressOptions o;
        o.threads = threads;
        o.frame_bytes = g_frame_bytes;
        compress_ns[threads - 1] = test::median_ns(runs, [&] { r = gguf::zst::compress(in, packed, o); });
    }
    const double decompress_ns = test::median_ns(runs, [&] { gguf::zst::decompress(packed, back, 1); });
    if (test::read_bytes(back) != original) fmt::print("ERROR: {} did not round-trip\n", name);
    // What a reader does: every frame into memory, one thread (no file written).
    const gguf::zst::Container c = gguf::zst::Container::open(packed);
    std::vector<uint8_t> image(c.original_size());
    const double read_ns = test::median_ns(runs, [&] {
        for (size_t i = 0; i < c.frames().size(); ++i)
            c.read_frame(i, std::span<uint8_t>(image.data() + c.frames()[i].offset, c.frames()[i].size));
    });
    if (image != original) fmt::print("ERROR: {} did not read back\n", name);

    std::vector<uint8_t> z(ZSTD_compressBound(original.size())), restored(original.size());
    size_t z_size = 0;
    const double z_compress_ns = test::median_ns(runs, [&] { z_size = ZSTD_compress(z.data(), z.size(), original.data(), original.size(), 3); });
    const double z_decompress_ns = test::median_ns(runs, [&] { ZSTD_decompress(restored.data(), restored.size(), z.data(), z_size); });

    const double n = static_cast<double>(original.size());
    fmt::print("{}: {:.1f} MB\n", name, n / 1e6);
    fmt::print("  .gguf.zst (level 3): {:.1f} MB = {:.1f}% of the input, {} frames ({} transformed, {} stored); "
               "compress {:.0f} MB/s on 1 thread, {:.0f} MB/s on 2; decompress to a file {:.0f} MB/s, into memory {:.0f} MB/s (1 thread)\n",
               static_cast<double>(r.bytes_out) / 1e6, 100.0 * static_cast<double>(r.bytes_out) / n, r.frames, r.grouped_frames, r.stored_frames,
               mb_per_s(original.size(), compress_ns[0]), mb_per_s(original.size(), compress_ns[1]), mb_per_s(original.size(), decompress_ns),
               mb_per_s(original.size(), read_ns));
    fmt::print("  zstd -3, one stream: {:.1f} MB = {:.1f}% of the input; compress {:.0f} MB/s, decompress {:.0f} MB/s (1 thread)\n",
               static_cast<double>(z_size) / 1e6, 100.0 * static_cast<double>(z_size) / n, mb_per_s(original.size(), z_compress_ns),
               mb_per_s(original.size(), z_decompress_ns));
    fmt::print("  .gguf.zst / zstd -3 size: {:.3f}\n", static_cast<double>(r.bytes_out) / static_cast<double>(z_size));
}

}  // namespace

int main(int argc, char** argv) {
    const uint64_t width = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2048;
    const auto layers = static_cast<uint32_t>(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 8);
    const int runs = argc > 3 ? std::atoi(argv[3]) : 3;
    if (argc > 4) g_frame_bytes = std::strtoull(argv[4], nullptr, 10);
    test::TempDir dir;
    std::vector<std::vector<uint8_t>> keep;
    test::realistic_model(gguf::TypeId::BF16, width, layers, keep).write(dir / "model-bf16.gguf");
    keep.clear();
    gguf::requant::RunOptions q;
    q.plan.target = gguf::requant::find_target("Q4_K_M");
    q.threads = 2;
    gguf::requant::requantize(dir / "model-bf16.gguf", dir / "model-q4_k_m.gguf", q);
    fmt::print("median of {} runs; {} wide, {} blocks; frames of at most {} bytes\n", runs, width, layers, g_frame_bytes);
    measure(dir.path(), "model-bf16.gguf", runs);
    measure(dir.path(), "model-q4_k_m.gguf", runs);
    return 0;
}
