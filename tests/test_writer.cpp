#include <doctest/doctest.h>

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
