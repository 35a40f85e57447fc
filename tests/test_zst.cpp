// .gguf.zst (gguf/zst.h): lossless round trips, reads of any range, zstd's seekable layout,
// byte grouping's gain on realistic BF16 weights, and damaged containers refused with the
// frame named.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <zstd.h>

#include <cmath>
#include <cstring>
#include <random>

#include <sys/mman.h>
#include <unistd.h>

#include "fixtures.h"
#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "gguf/writer.h"
#include "gguf/zst.h"
#include "support.h"

using namespace gguf;

namespace {

uint32_t u32_at(const std::vector<uint8_t>& b, size_t at) {
    return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}

}  // namespace

TEST_CASE("zst: every fixture model round-trips byte for byte, grouped or plain, at any thread count; any range reads back") {
    test::TempDir dir;
    fixtures::write_all(dir.path());
    for (const char* name : {"demo-llama-f16.gguf", "demo-llama-f32.gguf", "demo-llama-mixed.gguf", "all-value-types.gguf", "all-value-types-be.gguf"}) {
        CAPTURE(name);
        const std::vector<uint8_t> original = test::read_bytes(dir / name);
        for (const bool grouped : {true, false}) {
            for (const int threads : {1, 2}) {
                zst::CompressOptions o;
                o.group_bytes = grouped;
                o.threads = threads;
                o.frame_bytes = 8192;  // several frames per tensor
                const auto packed = dir / fmt::format("{}.{}{}.zst", name, grouped, threads);
                const zst::Report r = zst::compress(dir / name, packed, o);
                CHECK(r.bytes_in == original.size());
                CHECK(r.bytes_out == std::filesystem::file_size(packed));
                const zst::Container c = zst::Container::open(packed);
                CHECK(c.original_size() == original.size());
                const File f = File::open((dir / name).string());
                REQUIRE(!c.frames().empty());
                CHECK(c.frames()[0].offset == 0);
                CHECK(c.frames()[0].size == f.data_section_offset());  // the header alone
                for (const zst::Frame& fr : c.frames().subspan(1)) {  // the header is one frame whatever its size
                    CHECK(fr.size <= 8192);
                    if (!grouped) CHECK(fr.group == 1);
                }
                if (grouped && std::string(name).starts_with("demo-llama-f"))
                    CHECK(r.grouped_frames > 0);
                // Restored whole, and read in odd ranges.
                zst::decompress(packed, dir / "restored.gguf", threads);
                CHECK(test::read_bytes(dir / "restored.gguf") == original);
                std::mt19937 rng(3);
                for (int k = 0; k < 50; ++k) {
                    const uint64_t at = rng() % original.size();
                    const uint64_t n = std::min<uint64_t>(original.size() - at, rng() % 20000);
                    std::vector<uint8_t> got(n);
                    c.read(at, got);
                    CHECK(std::equal(got.begin(), got.end(), original.begin() + static_cast<ptrdiff_t>(at)));
                }
            }
        }
        // The same bytes whatever the thread count.
        CHECK(test::read_bytes(dir / fmt::format("{}.{}{}.zst", name, true, 1)) == test::read_bytes(dir / fmt::format("{}.{}{}.zst", name, true, 2)));
    }
}

TEST_CASE("zst: the layout is zstd's seekable format; a plain container is an ordinary zstd stream of the file") {
    test::TempDir dir;
    fixtures::write_all(dir.path());
    const std::vector<uint8_t> original = test::read_bytes(dir / "demo-llama-f16.gguf");
    zst::CompressOptions o;
    o.group_bytes = false;
    o.frame_bytes = 16384;
    zst::compress(dir / "demo-llama-f16.gguf", dir / "p.zst", o);
    const std::vector<uint8_t> b = test::read_bytes(dir / "p.zst");
    // The footer: frame count, descriptor with checksums, the seekable magic.
    REQUIRE(b.size() > 17);
    CHECK(u32_at(b, b.size() - 4) == 0x8F92EAB1u);
    CHECK(b[b.size() - 5] == 0x80);
    const uint32_t frames = u32_at(b, b.size() - 9);
    const size_t table = frames * 12 + 9;
    CHECK(u32_at(b, b.size() - table - 8) == 0x184D2A5Eu);
    CHECK(u32_at(b, b.size() - table - 4) == table);
    // libzstd decodes the whole container (skippable frames skipped) to the original file.
    std::vector<uint8_t> out(original.size() + 1);
    const size_t n = ZSTD_decompress(out.data(), out.size(), b.data(), b.size());
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    CHECK(out == original);
    // Each entry's sizes match the frame it describes.
    size_t at = 0;
    for (uint32_t i = 0; i < frames; ++i) {
        const size_t entry = b.size() - table - 8 + 8 + i * 12;
        CHECK(ZSTD_findFrameCompressedSize(b.data() + at, b.size() - at) == u32_at(b, entry));
        CHECK(ZSTD_getFrameContentSize(b.data() + at, b.size() - at) == u32_at(b, entry + 4));
        at += u32_at(b, entry);
    }
}

TEST_CASE("zst: byte grouping makes a realistic BF16 model at least 30% smaller, and 10% smaller than plain zstd -3 of the file") {
    // 512 wide: frames of 0.5 MiB; 128 wide: tensors of 32 KiB, where a zstd block holding
    // both the exponent and the mantissa bytes would code them with one Huffman table.
    for (const uint64_t width : {512, 128}) {
        CAPTURE(width);
        test::TempDir dir;
        std::vector<std::vector<uint8_t>> keep;
        test::realistic_model(TypeId::BF16, width, 4, keep).write(dir / "bf16.gguf");
        const std::vector<uint8_t> original = test::read_bytes(dir / "bf16.gguf");
        zst::CompressOptions o;
        o.threads = 2;
        const zst::Report r = zst::compress(dir / "bf16.gguf", dir / "bf16.gguf.zst", o);
        std::vector<uint8_t> plain(ZSTD_compressBound(original.size()));
        const size_t p = ZSTD_compress(plain.data(), plain.size(), original.data(), original.size(), 3);
        REQUIRE_FALSE(ZSTD_isError(p));
        const double ratio = static_cast<double>(r.bytes_out) / static_cast<double>(original.size());
        const double vs_zstd = static_cast<double>(r.bytes_out) / static_cast<double>(p);
        MESSAGE(fmt::format("BF16 model {} wide, {} bytes: .gguf.zst {} ({:.1f}%), zstd -3 {} ({:.1f}%)", width, original.size(), r.bytes_out,
                            100 * ratio, p, 100.0 * static_cast<double>(p) / static_cast<double>(original.size())));
        CHECK(ratio <= 0.70);
        CHECK(vs_zstd <= 0.90);
        zst::decompress(dir / "bf16.gguf.zst", dir / "back.gguf");
        CHECK(test::read_bytes(dir / "back.gguf") == original);
    }
}

TEST_CASE("zst: damaged, truncated or foreign containers are refused naming the file, the offset and the frame") {
    test::TempDir dir;
    fixtures::write_all(dir.path());
    zst::CompressOptions o;
    o.frame_bytes = 16384;
    zst::compress(dir / "demo-llama-f16.gguf", dir / "ok.zst", o);
    const std::vector<uint8_t> good = test::read_bytes(dir / "ok.zst");
    const zst::Container c = zst::Container::open(dir / "ok.zst");
    REQUIRE(c.frames().size() > 3);
    const zst::Frame f = c.frames()[2];

    // A flipped byte inside frame 2's compressed data.
    std::vector<uint8_t> bad = good;
    bad[f.at + f.compressed / 2] ^= 0x55;
    test::write_bytes(dir / "flipped.zst", bad);
    const zst::Container flipped = zst::Container::open(dir / "flipped.zst");
    std::vector<uint8_t> out(f.size);
    const std::string named = fmt::format("frame 2 (original bytes {} to {}) is damaged", f.offset, f.offset + f.size);
    CHECK_THROWS_WITH_AS(flipped.read_frame(2, out), doctest::Contains(named.c_str()), Error);
    CHECK_THROWS_AS(zst::decompress(dir / "flipped.zst", dir / "never.gguf"), Error);
    CHECK_FALSE(std::filesystem::exists(dir / "never.gguf"));

    // Truncated: no seek table at the end.
    bad.assign(good.begin(), good.begin() + static_cast<ptrdiff_t>(good.size() / 2));
    test::write_bytes(dir / "cut.zst", bad);
    CHECK_THROWS_WITH_AS(zst::Container::open(dir / "cut.zst"), doctest::Contains("no seek table at the end"), Error);
    // Seek table entries 2 and 3 with a byte moved from one frame to the other (the total
    // unchanged): frame 3 then starts inside frame 2, and its header is not there.
    bad = good;
    const size_t table = c.frames().size() * 12 + 9;
    const size_t e2 = good.size() - table + 2 * 12, e3 = e2 + 12;
    const uint32_t c2 = u32_at(good, e2) + 1, c3 = u32_at(good, e3) - 1;
    for (int k = 0; k < 4; ++k) bad[e2 + k] = static_cast<uint8_t>(c2 >> (8 * k)), bad[e3 + k] = static_cast<uint8_t>(c3 >> (8 * k));
    test::write_bytes(dir / "table.zst", bad);
    CHECK_THROWS_WITH_AS(zst::Container::open(dir / "table.zst"), doctest::Contains("frame 3"), Error);
    // An entry whose original size differs from its frame's header.
    bad = good;
    bad[e2 + 4] ^= 0x01;
    test::write_bytes(dir / "size.zst", bad);
    CHECK_THROWS_WITH_AS(zst::Container::open(dir / "size.zst"), doctest::Contains("frame 2: its header says"), Error);
    // The seek table's checksum for a frame differs from the frame's own.
    bad = good;
    bad[good.size() - table + 2 * 12 + 8] ^= 0x01;
    test::write_bytes(dir / "sum.zst", bad);
    CHECK_THROWS_WITH_AS(zst::Container::open(dir / "sum.zst").read_frame(2, out), doctest::Contains("checksum differs"), Error);
    // Not a container.
    CHECK_THROWS_WITH_AS(zst::Container::open(dir / "demo-llama-f16.gguf"), doctest::Contains("does not start with a zstd frame"), Error);
    CHECK_FALSE(zst::looks_compressed(dir / "demo-llama-f16.gguf"));
    CHECK(zst::looks_compressed(dir / "ok.zst"));
    // Bad options.
    o.level = 99;
    CHECK_THROWS_AS(zst::compress(dir / "demo-llama-f16.gguf", dir / "x.zst", o), std::invalid_argument);
    CHECK_THROWS_AS(zst::compress(dir / "demo-llama-f16.gguf", dir / "demo-llama-f16.gguf", zst::CompressOptions{}), Error);
}

TEST_CASE("zst: File::open reads a .gguf.zst as the original file: the same header, every tensor's bytes; a damaged frame names its tensor") {
    test::TempDir dir;
    fixtures::write_all(dir.path());
    for (const char* name : {"demo-llama-mixed.gguf", "demo-llama-f32.gguf", "all-value-types-be.gguf"}) {
        for (const bool grouped : {true, false}) {
            CAPTURE(name);
            CAPTURE(grouped);
            zst::CompressOptions o;
            o.group_bytes = grouped;
            o.frame_bytes = 4096;
            zst::compress(dir / name, dir / "c.gguf.zst", o);
            const File plain = File::open((dir / name).string());
            const File packed = File::open((dir / "c.gguf.zst").string());
            CHECK(packed.compressed());
            CHECK_FALSE(plain.compressed());
            CHECK(packed.size() == plain.size());
            CHECK(packed.data_section_offset() == plain.data_section_offset());
            REQUIRE(packed.kvs().size() == plain.kvs().size());
            for (size_t i = 0; i < plain.kvs().size(); ++i) CHECK(packed.kvs()[i].key == plain.kvs()[i].key);
            REQUIRE(packed.tensors().size() == plain.tensors().size());
            // Read back to front: each tensor decompresses its own frames.
            for (size_t i = plain.tensors().size(); i-- > 0;) {
                const auto a = packed.tensor_data(packed.tensors()[i]), b = plain.tensor_data(plain.tensors()[i]);
                CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
            }
            CHECK(packed.descriptor() == -1);  // no file-to-file copies from a container
        }
    }
    // A flipped byte in the last tensor's frames: that tensor fails naming itself and the
    // frame; the header and the first tensor still read.
    zst::CompressOptions o;
    o.frame_bytes = 4096;
    zst::compress(dir / "demo-llama-f16.gguf", dir / "d.gguf.zst", o);
    const zst::Container c = zst::Container::open(dir / "d.gguf.zst");
    const File plain = File::open((dir / "demo-llama-f16.gguf").string());
    const TensorInfo* last = &plain.tensors()[0];
    for (const TensorInfo& t : plain.tensors())
        if (t.data_offset > last->data_offset) last = &t;
    const size_t frame = c.frame_at(plain.data_section_offset() + last->data_offset);
    std::vector<uint8_t> bytes = test::read_bytes(dir / "d.gguf.zst");
    bytes[c.frames()[frame].at + c.frames()[frame].compressed / 2] ^= 0x08;
    test::write_bytes(dir / "bad.gguf.zst", bytes);
    const File bad = File::open((dir / "bad.gguf.zst").string());
    const std::string named = fmt::format("tensor '{}': frame {} (original bytes", last->name, frame);
    CHECK_THROWS_WITH_AS(bad.tensor_data(*bad.find_tensor(last->name)), doctest::Contains(named.c_str()), Error);
    const TensorInfo* first = &plain.tensors()[0];
    for (const TensorInfo& t : plain.tensors())
        if (t.data_offset < first->data_offset) first = &t;
    const auto a = bad.tensor_data(*bad.find_tensor(first->name)), b = plain.tensor_data(*first);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    // A container is not compressed again.
    CHECK_THROWS_WITH_AS(zst::compress(dir / "d.gguf.zst", dir / "twice.zst", o), doctest::Contains("already a .gguf.zst"), Error);
}

TEST_CASE("zst: released frames give their memory back and are decompressed again when read") {
    test::TempDir dir;
    fixtures::write_all(dir.path());
    zst::CompressOptions o;
    o.frame_bytes = 4 * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));  // four pages a frame
    zst::compress(dir / "demo-llama-mixed.gguf", dir / "m.gguf.zst", o);
    const File f = File::open((dir / "m.gguf.zst").string());
    const TensorInfo* big = &f.tensors()[0];
    for (const TensorInfo& t : f.tensors())
        if (t.n_bytes > big->n_bytes) big = &t;
    REQUIRE(big->n_bytes >= 4 * o.frame_bytes);
    const std::span<const uint8_t> data = f.tensor_data(*big);
    const std::vector<uint8_t> copy(data.begin(), data.end());
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    auto resident_pages = [&] {
        const auto begin = (reinterpret_cast<uintptr_t>(data.data()) + page - 1) / page * page;
        const auto end = (reinterpret_cast<uintptr_t>(data.data()) + data.size()) / page * page;
        std::vector<unsigned char> in((end - begin) / page);
        REQUIRE(::mincore(reinterpret_cast<void*>(begin), end - begin, in.data()) == 0);
        return std::count_if(in.begin(), in.end(), [](unsigned char c) { return c & 1; });
    };
    const auto before = resident_pages();
    CHECK(before > 0);
    f.release_pages(data);
    // Only the pages that straddle two frames may stay: one a frame at most.
    const auto frames = static_cast<long>(big->n_bytes / o.frame_bytes + 2);
    CHECK(before > 2 * frames);
    CHECK(resident_pages() <= frames);
    CHECK(std::ranges::equal(f.tensor_data(*big), copy));
    CHECK(resident_pages() == before);
    // A range holding no whole frame releases nothing.
    f.release_pages(data.subspan(1, o.frame_bytes));
    CHECK(resident_pages() == before);
}

TEST_CASE("zst: a split set compressed part by part opens from any part's .gguf.zst") {
    test::TempDir dir;
    const auto parts = fixtures::write_demo_split(dir.path(), "demo", 3);
    for (const auto& p : parts) zst::compress(p, std::filesystem::path(p.string() + ".zst"), {});
    const Model local = Model::open(parts[0]);
    const Model m = Model::open(parts[1].string() + ".zst");
    REQUIRE(m.parts().size() == 3);
    CHECK(m.parts()[0].compressed());
    REQUIRE(m.tensors().size() == local.tensors().size());
    for (size_t i = 0; i < m.tensors().size(); ++i) CHECK(std::ranges::equal(m.tensor_data(m.tensors()[i]), local.tensor_data(local.tensors()[i])));
    std::filesystem::remove(parts[2].string() + ".zst");
    CHECK_THROWS_WITH_AS(Model::open(parts[0].string() + ".zst"), doctest::Contains("part 3 of the 3-part split set is missing"), Error);
}

TEST_CASE("zst: a frame zstd saves less than 3% of is stored; others compressed; damaged frames fail on any thread count") {
    test::TempDir dir;
    std::mt19937 rng(7);
    std::vector<uint8_t> noise(1 << 20), zeros(1 << 20), half(1 << 20);
    for (uint8_t& b : noise) b = static_cast<uint8_t>(rng());
    for (size_t i = 0; i < half.size(); ++i) half[i] = i % 2 ? static_cast<uint8_t>(rng()) : 0;  // half the bytes random: about 45% saved
    Writer w;
    w.add_tensor("noise", TypeId::I8, {1 << 20}, std::span<const uint8_t>(noise));
    w.add_tensor("zeros", TypeId::I8, {1 << 20}, std::span<const uint8_t>(zeros));
    w.add_tensor("half", TypeId::I8, {1 << 20}, std::span<const uint8_t>(half));
    w.write(dir / "m.gguf");
    zst::CompressOptions o;
    o.threads = 2;
    const zst::Report r = zst::compress(dir / "m.gguf", dir / "m.gguf.zst", o);
    CHECK(r.frames == 4);  // the header, then one a tensor
    CHECK(r.stored_frames == 1);
    const zst::Container c = zst::Container::open(dir / "m.gguf.zst");
    const File f = File::open((dir / "m.gguf").string());
    const File z = File::open((dir / "m.gguf.zst").string());
    for (size_t i = 1; i < c.frames().size(); ++i) {
        const zst::Frame& fr = c.frames()[i];
        CAPTURE(i);
        if (fr.offset == f.data_section_offset() + f.find_tensor("noise")->data_offset)
            CHECK(fr.compressed >= fr.size);  // raw blocks
        else
            CHECK(fr.compressed < fr.size * 97 / 100);
    }
    for (const TensorInfo& t : f.tensors()) CHECK(std::ranges::equal(z.tensor_data(*z.find_tensor(t.name)), f.tensor_data(t)));
    // A damaged frame stops decompression whichever worker meets it.
    std::vector<uint8_t> bytes = test::read_bytes(dir / "m.gguf.zst");
    bytes[c.frames()[3].at + c.frames()[3].compressed / 2] ^= 0x55;
    test::write_bytes(dir / "bad.gguf.zst", bytes);
    for (const int threads : {1, 2, 3}) {
        CAPTURE(threads);
        CHECK_THROWS_WITH_AS(zst::decompress(dir / "bad.gguf.zst", dir / "out.gguf", threads), doctest::Contains("frame 3"), Error);
        CHECK_FALSE(std::filesystem::exists(dir / "out.gguf"));
    }
}
