// Split sets (NAME-00001-of-00003.gguf ...) open as one model.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>

#include "fixtures.h"
#include "gguf/model.h"
#include "gguf/render.h"
#include "gguf/split.h"
#include "gguf/writer.h"
#include "support.h"

using namespace gguf;

TEST_CASE("split names parse and rebuild") {
    auto n = SplitName::parse("/m/llama-00002-of-00005.gguf");
    REQUIRE(n.has_value());
    CHECK(n->prefix == "/m/llama");
    CHECK(n->number == 2);
    CHECK(n->count == 5);
    CHECK(n->path_of(5) == "/m/llama-00005-of-00005.gguf");
    CHECK_FALSE(SplitName::parse("llama-00006-of-00005.gguf").has_value());
    CHECK_FALSE(SplitName::parse("llama-2-of-5.gguf").has_value());
    CHECK_FALSE(SplitName::parse("llama.gguf").has_value());
    // Compressed parts and URLs.
    auto z = SplitName::parse("/m/llama-00001-of-00002.gguf.zst");
    REQUIRE(z.has_value());
    CHECK(z->path_of(2) == "/m/llama-00002-of-00002.gguf.zst");
    auto u = SplitName::parse("https://host/org/m-00003-of-00004.gguf");
    REQUIRE(u.has_value());
    CHECK(u->path_of(1) == "https://host/org/m-00001-of-00004.gguf");
    CHECK_FALSE(SplitName::parse("llama-00001-of-00002.gguf.gz").has_value());
}

TEST_CASE("a split set opened from any part is the whole model, with the same tensor bytes") {
    test::TempDir d;
    auto parts = fixtures::write_demo_split(d.path(), "demo", 3);
    fixtures::demo_model().write(d / "whole.gguf");
    Model whole = Model::open(d / "whole.gguf");
    CHECK_FALSE(whole.is_split());
    for (const auto& p : parts) {
        CAPTURE(p);
        Model m = Model::open(p);
        CHECK(m.is_split());
        REQUIRE(m.parts().size() == 3);
        CHECK(m.parts()[0].path() == parts[0].string());
        REQUIRE(m.tensors().size() == whole.tensors().size());
        CHECK(m.find("general.architecture")->value.str() == "llama");
        for (const Model::Tensor& t : whole.tensors()) {
            const Model::Tensor* s = m.find_tensor(t.info->name);
            REQUIRE(s != nullptr);
            auto a = whole.tensor_data(t), b = m.tensor_data(*s);
            CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
        }
        CHECK(m.tensors()[0].part == 0);
        CHECK(m.tensors().back().part == 2);
    }
}

TEST_CASE("a merged file with split.count 0 (as llama-gguf-split --merge writes) is one model, not a split set") {
    test::TempDir d;
    Writer w = fixtures::demo_model();
    w.write(d / "plain.gguf");
    const auto n_tensors = static_cast<int32_t>(Model::open(d / "plain.gguf").tensors().size());
    w.set("split.no", OwnedValue::u16(0));
    w.set("split.count", OwnedValue::u16(0));
    w.set("split.tensors.count", OwnedValue::i32(n_tensors));
    w.write(d / "merged.gguf");
    Model m = Model::open(d / "merged.gguf");
    CHECK_FALSE(m.is_split());
    CHECK(m.tensors().size() == static_cast<size_t>(n_tensors));
    FaultLog faults;
    Model lenient = Model::open(d / "merged.gguf", faults);
    CHECK(faults.empty());
    // A count of 1 in a plain name is a one-part set, and its keys are still checked.
    w.set("split.count", OwnedValue::u16(1));
    w.set("split.no", OwnedValue::u16(1));
    w.write(d / "one.gguf");
    CHECK_THROWS_WITH_AS(Model::open(d / "one.gguf"), doctest::Contains("split.no' is 1"), Error);
}

TEST_CASE("a split set with a missing part is refused, naming the missing file") {
    test::TempDir d;
    auto parts = fixtures::write_demo_split(d.path(), "demo", 3);
    std::filesystem::remove(parts[1]);
    CHECK_THROWS_WITH_AS(Model::open(parts[0]), doctest::Contains("demo-00002-of-00003.gguf: part 2 of the 3-part split set is missing"), Error);
}

TEST_CASE("split keys that disagree with the set are refused") {
    test::TempDir d;
    // File::parse keeps views into its bytes: keep each part's bytes alive.
    std::vector<std::vector<uint8_t>> keep;
    const std::vector<uint8_t> one_value(4);
    auto make = [&](uint16_t no, uint16_t count, int32_t tensors, const char* tensor) {
        Writer w;
        w.set("split.no", OwnedValue::u16(no));
        w.set("split.count", OwnedValue::u16(count));
        w.set("split.tensors.count", OwnedValue::i32(tensors));
        w.add_tensor(tensor, TypeId::F32, {1}, one_value);
        keep.push_back(w.write_to_memory());
        return File::parse(keep.back(), fmt::format("part{}", no));
    };
    auto two = [&](File a, File b) {
        std::vector<File> v;
        v.push_back(std::move(a));
        v.push_back(std::move(b));
        return v;
    };
    CHECK_NOTHROW(Model::from_parts(two(make(0, 2, 2, "a"), make(1, 2, 2, "b"))));
    CHECK_THROWS_WITH(Model::from_parts(two(make(0, 2, 2, "a"), make(0, 2, 2, "b"))),
                      doctest::Contains("key 'split.no' is 0, but the 0-based number of part 2 of 2 is 1"));
    CHECK_THROWS_WITH(Model::from_parts(two(make(0, 3, 2, "a"), make(1, 3, 2, "b"))),
                      doctest::Contains("key 'split.count' is 3, but the number of parts is 2"));
    CHECK_THROWS_WITH(Model::from_parts(two(make(0, 2, 5, "a"), make(1, 2, 5, "b"))),
                      doctest::Contains("key 'split.tensors.count' is 5, but the number of tensors in all parts is 2"));
    CHECK_THROWS_WITH(Model::from_parts(two(make(0, 2, 2, "a"), make(1, 2, 2, "a"))),
                      doctest::Contains("tensor 'a' is also in part0"));
}

TEST_CASE("one part of a split set under another name is refused: its siblings cannot be found") {
    test::TempDir d;
    auto parts = fixtures::write_demo_split(d.path(), "demo", 2);
    std::filesystem::rename(parts[0], d / "renamed.gguf");
    CHECK_THROWS_WITH_AS(Model::open(d / "renamed.gguf"), doctest::Contains("one part of a 2-part split set"), Error);
}

TEST_CASE("write_split_set writes every part with its split keys, refuses to replace an input, and leaves no part when one fails") {
    test::TempDir d;
    fixtures::demo_model().write(d / "whole.gguf");
    const Model whole = Model::open(d / "whole.gguf");
    auto make_parts = [&] {
        std::vector<Writer> parts(2);
        for (const KeyValue& kv : whole.kvs()) parts[0].set(std::string(kv.key), kv.value);
        size_t i = 0;
        for (const Model::Tensor& t : whole.tensors()) {
            const TensorInfo& info = *t.info;
            parts[i++ * 2 / whole.tensors().size()].add_tensor(std::string(info.name), info.type, {info.dims().begin(), info.dims().end()},
                                                                 whole.tensor_data(t));
        }
        return parts;
    };
    std::vector<Writer> parts = make_parts();
    const auto paths = write_split_set(parts, d / "out.gguf");
    REQUIRE(paths.size() == 2);
    CHECK(paths[1] == d / "out-00002-of-00002.gguf");
    const Model m = Model::open(paths[1]);
    CHECK(m.is_split());
    CHECK(m.tensors().size() == whole.tensors().size());
    CHECK(m.parts()[1].find("split.no")->value.as_int() == 1);
    CHECK(m.parts()[1].find("split.tensors.count")->value.as_int() == static_cast<int64_t>(whole.tensors().size()));

    std::vector<Writer> again = make_parts();
    const std::filesystem::path inputs[] = {paths[0]};
    CHECK_THROWS_WITH_AS(write_split_set(again, d / "out.gguf", inputs), doctest::Contains("would replace the input"), Error);

    // The second part cannot be written (a folder stands where it goes): the first is removed.
    std::vector<Writer> failing = make_parts();
    std::filesystem::create_directory(d / "bad-00002-of-00002.gguf");
    CHECK_THROWS(write_split_set(failing, d / "bad.gguf"));
    CHECK_FALSE(std::filesystem::exists(d / "bad-00001-of-00002.gguf"));
}

namespace {
// A model of one 32 MiB I8 tensor of ones, written in d.
std::filesystem::path big_model(const test::TempDir& d) {
    const std::vector<uint8_t> bytes(32 << 20, 1);
    Writer w;
    w.add_tensor("t", TypeId::I8, {bytes.size()}, std::span<const uint8_t>(bytes));
    w.write(d / "big.gguf");
    return d / "big.gguf";
}
}  // namespace

TEST_CASE("release_pages takes read pages of a mapped file out of the process's resident set") {
    test::TempDir d;
    const File f = File::open(big_model(d));
    const std::span<const uint8_t> data = f.tensor_data(f.tensors()[0]);
    uint64_t sum = 0;
    for (size_t i = 0; i < data.size(); i += 4096) sum += data[i];  // maps every page in
    CHECK(sum == data.size() / 4096);
    const int64_t before = test::resident_bytes();
    f.release_pages(data);
    CHECK(before - test::resident_bytes() >= int64_t{24} << 20);
    // A file parsed from memory: the pages are the caller's, and stay as they are.
    std::vector<uint8_t> copy(f.bytes().begin(), f.bytes().end());
    const File parsed = File::parse(copy, "copy.gguf");
    parsed.release_pages(parsed.tensor_data(parsed.tensors()[0]));
    CHECK(parsed.tensor_data(parsed.tensors()[0])[12345] == 1);
}

TEST_CASE("map_in puts a mapped file's tensor pages into the process's resident set before they are read") {
    test::TempDir d;
    const std::filesystem::path path = big_model(d);
    {
        const File f = File::open(path);
        const int64_t before = test::resident_bytes();
        f.map_in(f.tensor_data(f.tensors()[0]));
        CHECK(test::resident_bytes() - before >= int64_t{24} << 20);
    }
    {
        // A file parsed from memory (the caller's pages) and bytes outside the file are left
        // alone: no advice given, nothing thrown.
        const File f = File::open(path);
        std::vector<uint8_t> copy(f.bytes().begin(), f.bytes().end());
        const File parsed = File::parse(copy, "copy.gguf");
        CHECK_NOTHROW(parsed.map_in(parsed.tensor_data(parsed.tensors()[0])));
        CHECK_NOTHROW(f.map_in(std::span<const uint8_t>(copy)));
    }
}

// ---- plan_split: llama-gguf-split's partition ------------------------------------------

TEST_CASE("plan_split by tensor count starts a part at every N-th tensor of the model") {
    const std::vector<uint64_t> sizes(21, 1000);
    CHECK(plan_split(sizes, {0, 8, false}) == std::vector<uint32_t>{8, 8, 5});
    CHECK(plan_split(sizes, {0, 21, false}) == std::vector<uint32_t>{21});
    CHECK(plan_split(sizes, {0, 1, false}) == std::vector<uint32_t>(21, 1));
    CHECK(plan_split(sizes, {0, 128, false}) == std::vector<uint32_t>{21});
    // A metadata-only first part; the count still runs over the whole model (i % N == 0).
    CHECK(plan_split(sizes, {0, 8, true}) == std::vector<uint32_t>{0, 8, 8, 5});
    CHECK(plan_split(std::vector<uint64_t>{}, {0, 8, false}) == std::vector<uint32_t>{0});
}

TEST_CASE("plan_split by size counts each tensor padded to 32 bytes, and gives a larger tensor a part of its own") {
    // 100 bytes count as 128: three fit in 400 (384), a fourth does not (512).
    CHECK(plan_split(std::vector<uint64_t>(7, 100), {400, 0, false}) == std::vector<uint32_t>{3, 3, 1});
    // Exactly at the limit stays in the part; one byte over starts another.
    CHECK(plan_split(std::vector<uint64_t>{128, 128, 128}, {384, 0, false}) == std::vector<uint32_t>{3});
    CHECK(plan_split(std::vector<uint64_t>{128, 128, 129}, {384, 0, false}) == std::vector<uint32_t>{2, 1});
    // A tensor above the limit: alone, wherever it comes, and never an empty part before it.
    CHECK(plan_split(std::vector<uint64_t>{1000, 10, 10, 5000, 10}, {512, 0, false}) == std::vector<uint32_t>{1, 2, 1, 1});
    CHECK(plan_split(std::vector<uint64_t>{1000, 10}, {512, 0, true}) == std::vector<uint32_t>{0, 1, 1});
}

TEST_CASE("plan_split needs exactly one limit") {
    const std::vector<uint64_t> sizes{1, 2, 3};
    CHECK_THROWS_AS(plan_split(sizes, {0, 0, false}), std::invalid_argument);
    CHECK_THROWS_AS(plan_split(sizes, {100, 2, false}), std::invalid_argument);
}

TEST_CASE("a model split and merged again has every tensor's bytes and every key; the merge says split.count 0") {
    test::TempDir d;
    fixtures::demo_model(fixtures::mixed_demo_options()).write(d / "whole.gguf");
    const Model whole = Model::open(d / "whole.gguf");
    std::vector<uint64_t> sizes;
    for (const Model::Tensor& t : whole.tensors()) sizes.push_back(t.info->n_bytes);
    const auto plan = plan_split(sizes, {300000, 0, true});
    REQUIRE(plan.size() >= 3);
    CHECK(plan[0] == 0);
    auto writers = split_writers(whole, plan);
    const auto paths = write_split_set(writers, d / "parts.gguf");
    REQUIRE(paths.size() == plan.size());
    const Model set = Model::open(paths.back());
    CHECK(set.is_split());
    for (size_t i = 0; i < paths.size(); ++i) CHECK(set.parts()[i].tensors().size() == plan[i]);
    // Keys after the first part: the split keys alone.
    CHECK(set.parts()[1].kvs().size() == 3);
    merged_writer(set).write(d / "merged.gguf");
    const File merged = File::open(d / "merged.gguf");
    REQUIRE(merged.tensors().size() == whole.tensors().size());
    for (size_t i = 0; i < whole.tensors().size(); ++i) {
        const Model::Tensor& t = whole.tensors()[i];
        const TensorInfo& m = merged.tensors()[i];
        CHECK(m.name == t.info->name);
        const auto a = whole.tensor_data(t), b = merged.tensor_data(m);
        CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    }
    for (const KeyValue& kv : whole.kvs()) {
        const KeyValue* m = merged.find(kv.key);
        REQUIRE(m != nullptr);
        CHECK(value_text(m->value) == value_text(kv.value));
    }
    CHECK(merged.kvs().back().key == "split.count");
    CHECK(merged.kvs().back().value.u16() == 0);
    CHECK(merged.find("split.tensors.count")->value.i32() == static_cast<int32_t>(whole.tensors().size()));
    // A file that is not a set has nothing to merge.
    CHECK_THROWS_AS(merged_writer(whole), std::invalid_argument);
}
