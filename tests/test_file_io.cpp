// Opening files from disk: errors, split-free models, and the promise that opening and
// summarising never touches tensor data.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "gguf/summary.h"
#include "support.h"

using namespace gguf;

TEST_CASE("opening a missing file or a folder fails with the path and the reason") {
    test::TempDir d;
    CHECK_THROWS_WITH_AS(File::open(d / "absent.gguf"), doctest::Contains("absent.gguf: cannot open: No such file"), Error);
    CHECK_THROWS_WITH_AS(File::open(d.path()), doctest::Contains("not a regular file"), Error);
}

TEST_CASE("summary: parameters, bytes by type and bits per weight come from the tensor infos") {
    test::TempDir d;
    fixtures::demo_model().write(d / "demo.gguf");
    Summary s = summarize(Model::open(d / "demo.gguf"));
    CHECK(s.architecture == "llama");
    CHECK(s.name == "ggufkit-demo");
    REQUIRE(s.file_type.has_value());
    CHECK(*s.file_type == 1);
    CHECK(s.file_type_name == "MOSTLY_F16");
    // token_embd + output: 2 x 64 x 320; per layer 2 norms of 64, q and o 64 x 64, k and v 64 x 32,
    // gate, up and down 64 x 128; output_norm 64.
    const uint64_t layer = 2 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128;
    CHECK(s.parameters == 2 * 64 * 320 + 2 * layer + 64);
    REQUIRE(s.by_type.size() == 2);
    CHECK(s.by_type[0].type == TypeId::F32);
    CHECK(s.by_type[0].tensors == 5);
    CHECK(s.by_type[0].bytes == 5 * 64 * 4);
    CHECK(s.by_type[1].type == TypeId::F16);
    CHECK(s.by_type[1].tensors == 16);
    CHECK(s.by_type[1].bytes == (s.parameters - 5 * 64) * 2);
    CHECK(s.bits_per_weight == doctest::Approx(8.0 * static_cast<double>(s.tensor_bytes) / static_cast<double>(s.parameters)));
    CHECK(s.bits_per_weight > 16.0);
    CHECK(s.bits_per_weight < 16.1);
}

TEST_CASE("opening and summarising a 32 GiB model reads its header and none of its tensor data") {
    test::TempDir d;
    // One f32 tensor named "huge", written small, then its dimension patched to 2^33 values.
    const std::vector<uint8_t> one_value(4);
    Writer w;
    w.add_tensor("huge", TypeId::F32, {1}, one_value);
    std::vector<uint8_t> bytes = w.write_to_memory();
    const uint64_t data_offset = File::parse(bytes, "header").data_section_offset();
    const size_t dim_at = 24 + 8 + 4 + 4;  // header, name length and "huge", n_dims
    uint64_t dim = 1;
    REQUIRE(std::memcmp(&bytes[dim_at], &dim, 8) == 0);
    dim = 1ull << 33;
    std::memcpy(&bytes[dim_at], &dim, 8);
    const auto path = d / "huge.gguf";
    test::write_bytes(path, bytes);
    const uint64_t size = data_offset + (4ull << 33);
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);  // sparse: no disk used

    Model m = Model::open(path);
    Summary s = summarize(m);
    CHECK(s.parameters == (1ull << 33));
    CHECK(m.first().size() == size);

    // Page residency of the mapping beyond the first MiB of data (read-ahead may touch a little).
    const long page = ::sysconf(_SC_PAGESIZE);
    const uint8_t* base = m.first().bytes().data();
    const uint64_t from = (data_offset + (1u << 20)) / page * page;
    std::vector<unsigned char> resident((size - from + page - 1) / page);
    REQUIRE(::mincore(const_cast<uint8_t*>(base + from), size - from, resident.data()) == 0);
    size_t touched = 0;
    for (unsigned char r : resident) touched += r & 1;
    CHECK(touched == 0);
}
