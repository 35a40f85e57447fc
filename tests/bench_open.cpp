// Benchmark: time to open and parse GGUF headers. Prints figures; asserts nothing.
//   bench_open [RUNS]
// For each file: the median over RUNS of File::open (map + parse every key and tensor
// info), and as a yardstick measured in the same run, the median time to read() the
// whole file into memory (page cache warm).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "support.h"

namespace {

template <class F> double median_us(int runs, F f) { return test::median_ns(runs, f) / 1000.0; }

double read_whole_us(const std::filesystem::path& p, int runs) {
    std::vector<char> buf(std::filesystem::file_size(p));
    return median_us(runs, [&] {
        int fd = ::open(p.c_str(), O_RDONLY);
        size_t got = 0;
        while (got < buf.size()) {
            ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        ::close(fd);
    });
}

// Maps the first `bytes` of the file, touches one byte per page, unmaps: what the kernel
// charges for bringing a header's pages into a fresh mapping, whoever parses them.
double map_touch_us(const std::filesystem::path& p, uint64_t bytes, int runs) {
    const long page = ::sysconf(_SC_PAGESIZE);
    return median_us(runs, [&] {
        int fd = ::open(p.c_str(), O_RDONLY);
        void* m = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < bytes; i += static_cast<uint64_t>(page)) sink = sink + static_cast<const uint8_t*>(m)[i];
        ::munmap(m, bytes);
        ::close(fd);
    });
}

void report(const char* what, const std::filesystem::path& p, int runs) {
    gguf::File probe = gguf::File::open(p);
    const std::vector<uint8_t> bytes = test::read_bytes(p);
    double open_us = median_us(runs, [&] { gguf::File f = gguf::File::open(p); });
    double parse_us = median_us(runs, [&] { gguf::File f = gguf::File::parse(bytes, "memory"); });
    double map_us = map_touch_us(p, probe.data_section_offset() < probe.size() ? probe.data_section_offset() : probe.size(), runs);
    double read_us = read_whole_us(p, runs);
    fmt::print("{}\n  file: {} ({:.1f} MiB, header {:.1f} MiB, {} keys, {} tensors)\n", what, p.string(),
               static_cast<double>(probe.size()) / 1048576.0, static_cast<double>(probe.data_section_offset()) / 1048576.0,
               probe.kvs().size(), probe.tensors().size());
    fmt::print("  File::open (map + parse):            {:10.1f} us   (median of {})\n", open_us, runs);
    fmt::print("  File::parse of bytes already in RAM: {:10.1f} us\n", parse_us);
    fmt::print("  yardstick, map + touch header pages: {:10.1f} us   open / this = {:.2f}\n", map_us, open_us / map_us);
    fmt::print("  yardstick, read() the whole file:    {:10.1f} us   open / this = {:.2f}\n", read_us, open_us / read_us);
}

}  // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 51;
    const auto vocab = test::ref_dir() / "gguf/vocab/ggml-vocab-deepseek-llm.gguf";
    if (std::filesystem::exists(vocab)) {
        report("deepseek-llm vocabulary (102,400 tokens, 99,757 merges)", vocab, runs);
        gguf::File f = gguf::File::open(vocab);
        double walk_us = median_us(runs, [&] {
            uint64_t total = 0;
            for (gguf::Value t : f.find("tokenizer.ggml.tokens")->value.array()) total += t.str().size();
            if (total == 0) std::abort();
        });
        fmt::print("  iterate all 102,400 token strings: {:.1f} us\n", walk_us);
        // Mapping cost follows the page cache's folio sizes, which follow how the file was
        // written or read in: a copy written with one large write maps in far fewer faults.
        test::TempDir copy_dir;
        const auto copy = copy_dir / "deepseek-llm-copy.gguf";
        test::write_bytes(copy, test::read_bytes(vocab));
        report("the same vocabulary, a copy written with one large write", copy, runs);
        fmt::print("  (for comparison, measured elsewhere on this kind of machine: ggml gguf_init_from_file about 49 ms,\n"
                   "   llama.cpp's Python reader about 4.5 s)\n");
    } else {
        fmt::print("deepseek-llm vocabulary: not measured, {} not found\n", vocab.string());
    }

    test::TempDir d;
    const auto big = d / "many.gguf";
    {
        gguf::Writer w;
        for (int i = 0; i < 10000; ++i) w.set(fmt::format("bench.key.{:05d}", i), gguf::OwnedValue::u32(static_cast<uint32_t>(i)));
        static const std::vector<uint8_t> four(4);
        for (int i = 0; i < 100000; ++i)
            w.add_tensor(fmt::format("blk.{}.tensor_{:06d}.weight", i / 100, i), gguf::TypeId::F32, {1}, four);
        w.write(big);
    }
    report("generated: 10,000 keys and 100,000 tensors", big, std::max(5, runs / 5));
    return 0;
}
