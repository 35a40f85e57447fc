#include <doctest/doctest.h>

#include <fmt/format.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "support.h"

using namespace gguf;

namespace {
size_t entries(const std::filesystem::path& dir) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}
}  // namespace

TEST_CASE("the writer lays tensors out canonically: each at the aligned end of the one before") {
    std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    File f = File::parse(bytes, "demo");
    CHECK(f.data_section_offset() % 32 == 0);
    uint64_t expected = 0;
    for (const TensorInfo& t : f.tensors()) {
        CHECK(t.data_offset == expected);
        expected = (t.data_offset + t.n_bytes + 31) / 32 * 32;
    }
    CHECK(bytes.size() == f.data_section_offset() + expected);  // the last tensor is padded too
}

TEST_CASE("reading and writing again gives identical bytes, in every encoding") {
    for (WriteOptions o : {WriteOptions{3, false}, WriteOptions{1, false}, WriteOptions{3, true}}) {
        std::vector<uint8_t> a = fixtures::all_value_types(o).write_to_memory();
        File f = File::parse(a, "a");
        CHECK(Writer::copy_of(f).write_to_memory() == a);
    }
    std::vector<uint8_t> demo = fixtures::demo_model().write_to_memory();
    const File parsed = File::parse(demo, "demo");
    CHECK(Writer::copy_of(parsed).write_to_memory() == demo);
}

TEST_CASE("the generators are deterministic") {
    CHECK(fixtures::demo_model().write_to_memory() == fixtures::demo_model().write_to_memory());
    fixtures::DemoOptions other;
    other.seed = 2;
    CHECK(fixtures::demo_model().write_to_memory() != fixtures::demo_model(other).write_to_memory());
}

TEST_CASE("write() puts a complete file in place, readable and equal to the in-memory bytes") {
    test::TempDir d;
    Writer w = fixtures::demo_model();
    w.write(d / "demo.gguf");
    CHECK(test::read_bytes(d / "demo.gguf") == w.write_to_memory());
    CHECK(entries(d.path()) == 1);  // no temporary file left behind
    File f = File::open(d / "demo.gguf");
    CHECK(f.tensors().size() == 21);
}

TEST_CASE("a failed write leaves no partial file and keeps an existing target intact") {
    test::TempDir d;
    const auto target = d / "model.gguf";
    fixtures::demo_model().write(target);
    const std::vector<uint8_t> before = test::read_bytes(target);

    SUBCASE("a source that writes too few bytes") {
        Writer w;
        w.add_tensor("short", TypeId::F32, {8}, [](ByteSink& out) { out.write(std::vector<uint8_t>(16)); });
        CHECK_THROWS_WITH_AS(w.write(target), doctest::Contains("source wrote 16 of its 32 bytes"), Error);
    }
    SUBCASE("a source that writes too many bytes") {
        Writer w;
        w.add_tensor("long", TypeId::F32, {2}, [](ByteSink& out) { out.write(std::vector<uint8_t>(12)); });
        CHECK_THROWS_WITH(w.write(target), doctest::Contains("wrote more than its 8 bytes"));
    }
    SUBCASE("a source that throws") {
        Writer w;
        w.add_tensor("boom", TypeId::F32, {2}, [](ByteSink&) { throw std::runtime_error("interrupted"); });
        CHECK_THROWS_WITH(w.write(target), "interrupted");
    }
    CHECK(test::read_bytes(target) == before);
    CHECK(entries(d.path()) == 1);
}

TEST_CASE("a write into a folder that does not exist fails clearly") {
    test::TempDir d;
    CHECK_THROWS_WITH_AS(fixtures::demo_model().write(d / "no/such/dir/x.gguf"),
                         doctest::Contains("cannot create a temporary file"), Error);
}

TEST_CASE("the writer refuses tensors and keys that no reader would accept") {
    Writer w;
    std::vector<uint8_t> data(18);
    CHECK_THROWS_AS(w.add_tensor("retired", TypeId::Q4_2, {32}, data), std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add_tensor("odd", TypeId::Q4_0, {33}, data), doctest::Contains("not a multiple"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add_tensor("size", TypeId::Q4_0, {64}, data), doctest::Contains("18 bytes given"), std::invalid_argument);
    w.add_tensor("t", TypeId::Q4_0, {32}, data);
    CHECK_THROWS_WITH_AS(w.add_tensor("t", TypeId::Q4_0, {32}, data), doctest::Contains("added twice"), std::invalid_argument);
    CHECK_THROWS_AS(w.add_tensor("rank5", TypeId::F32, {1, 1, 1, 1, 1}, [](ByteSink&) {}), std::invalid_argument);
    CHECK_THROWS_AS(w.set("general.alignment", OwnedValue::u32(48)), std::invalid_argument);
    CHECK_THROWS_AS(w.set("general.alignment", OwnedValue::u64(64)), std::invalid_argument);
    CHECK_THROWS_AS(OwnedValue::array(ValueType::U8, {OwnedValue::u16(1)}), std::invalid_argument);
    CHECK_THROWS_AS(Writer(WriteOptions{4, false}), std::invalid_argument);
}

TEST_CASE("set() replaces a key in place; remove() drops it") {
    Writer w;
    w.set("a", OwnedValue::u32(1));
    w.set("b", OwnedValue::u32(2));
    w.set("a", OwnedValue::string("x"));
    w.remove("b");
    std::vector<uint8_t> bytes = w.write_to_memory();
    File f = File::parse(bytes, "w");
    REQUIRE(f.kvs().size() == 1);
    CHECK(f.kvs()[0].key == "a");
    CHECK(f.kvs()[0].value.str() == "x");
}

namespace {
// A writer of F32 tensors whose sources write deterministic bytes in pieces of irregular
// sizes (1 byte, a block less and more one, whole buffers and more), the demo model's tensors
// copied from `copied` (by copy_file_range without direct_io), and a last I8 tensor of `pad`
// bytes that sets the file's length.
Writer pieces_writer(bool direct, const File& copied, uint64_t pad) {
    WriteOptions o;
    o.direct_io = direct;
    Writer w(o);
    const uint64_t floats[] = {1, 1023, 1024, 1025, (uint64_t{4} << 20) / 4 + 7, (uint64_t{9} << 20) / 4 + 3};
    int k = 0;
    for (uint64_t n : floats) {
        const int seed = k++;
        w.add_tensor(fmt::format("t{}", seed), TypeId::F32, {n}, [n, seed](ByteSink& out) {
            const size_t piece_sizes[] = {1, 4095, 4097, size_t{5} << 20, 12345};
            std::vector<uint8_t> bytes(n * 4);
            for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + static_cast<size_t>(seed) * 7 + (i >> 12));
            size_t at = 0;
            for (int p = 0; at < bytes.size(); ++p) {
                const size_t m = std::min(piece_sizes[p % 5], bytes.size() - at);
                out.write(std::span<const uint8_t>(bytes).subspan(at, m));
                at += m;
            }
        });
    }
    for (const TensorInfo& t : copied.tensors()) w.add_tensor(copied, t);
    w.add_tensor("pad", TypeId::I8, {pad}, [pad](ByteSink& out) { out.write(std::vector<uint8_t>(pad, 0x5a)); });
    return w;
}
}  // namespace

TEST_CASE("direct_io (O_DIRECT) writes the bytes of a plain write: any piece sizes, copied tensors, a length on or off the 4 KiB block") {
    test::TempDir d;
    fixtures::demo_model().write(d / "demo.gguf");
    const File demo = File::open(d / "demo.gguf");
    // The pad that ends the file on a block: from the length with a 32-byte pad (the tensor
    // infos do not change with the pad's size; the data stays 32-aligned).
    const uint64_t base = pieces_writer(false, demo, 32).write_to_memory().size();
    const uint64_t on_block = 32 + (4096 - base % 4096) % 4096;
    // Where the temporary folder is on ext4, XFS or btrfs, O_DIRECT must have been taken (the
    // writes counted); elsewhere (tmpfs before Linux 6.6) the plain path is what ran, said so.
    struct statfs st {};
    const bool takes_direct = ::statfs(d.path().c_str(), &st) == 0 &&
                              (static_cast<uint64_t>(st.f_type) == 0xEF53 || static_cast<uint64_t>(st.f_type) == 0x58465342 ||
                               static_cast<uint64_t>(st.f_type) == 0x9123683E);
    std::vector<std::filesystem::path> dirs = {d.path()};
    if (std::filesystem::is_directory("/dev/shm")) dirs.push_back("/dev/shm");  // tmpfs: O_DIRECT refused before Linux 6.6
    for (const bool refused : {false, true})  // refused: every direct write fails with EINVAL, the fallback writes
    for (const std::filesystem::path& dir : dirs) {
        gguf::testing::fail_direct_writes(refused);
        for (uint64_t pad : {uint64_t{32}, on_block, on_block + 4096, uint64_t{4096 * 3 + 96}}) {
            CAPTURE(dir);
            CAPTURE(pad);
            CAPTURE(refused);
            const std::vector<uint8_t> want = pieces_writer(false, demo, pad).write_to_memory();
            if (pad == on_block) CHECK(want.size() % 4096 == 0);
            else if (pad != on_block + 4096) CHECK(want.size() % 4096 != 0);
            const auto direct = dir / fmt::format("ggufkit-direct-{}-{}.gguf", ::getpid(), pad), plain = dir / fmt::format("ggufkit-plain-{}-{}.gguf", ::getpid(), pad);
            const uint64_t direct_before = gguf::testing::direct_writes();
            pieces_writer(true, demo, pad).write(direct);
            const uint64_t direct_made = gguf::testing::direct_writes() - direct_before;
            if (refused) CHECK(direct_made == 0);
            else if (dir == d.path() && takes_direct) CHECK(direct_made > 0);
            else if (dir == d.path() && pad == 32) MESSAGE(dir.string() << " is not on ext4, XFS or btrfs: O_DIRECT was " << (direct_made ? "" : "not ") << "taken");
            const uint64_t plain_before = gguf::testing::direct_writes();
            pieces_writer(false, demo, pad).write(plain);
            CHECK(gguf::testing::direct_writes() == plain_before);
            CHECK(test::read_bytes(direct) == want);
            CHECK(test::read_bytes(plain) == want);
            std::filesystem::remove(direct);
            std::filesystem::remove(plain);
        }
        gguf::testing::fail_direct_writes(false);
    }
}
