// The fuzzers' findings, replayed: every file in tests/corpus/ goes through exactly what
// the fuzz harness ran on it (fuzz/walk.h), as do all generated fixtures. Under ASan+UBSan
// (scripts/test's second build) this is the regression test for each finding.
#include <doctest/doctest.h>

#include "fixtures.h"
#include "support.h"
#include "walk.h"

namespace {

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    if (std::filesystem::is_directory(dir))
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

const std::filesystem::path kCorpus = GGUFKIT_CORPUS_DIR;

}  // namespace

TEST_CASE("every file in tests/corpus/open goes through the open-and-walk harness") {
    const auto files = files_in(kCorpus / "open");
    MESSAGE(files.size() << " corpus files");
    CHECK(files.size() >= 100);  // the committed corpus is there
    for (const auto& p : files) {
        CAPTURE(p.filename().string());
        const std::vector<uint8_t> b = test::read_bytes(p);
        gguf::fuzz::open_and_walk(b.data(), b.size());  // aborts on a broken invariant
    }
}

TEST_CASE("every file in tests/corpus/zst goes through the container harness") {
    const auto files = files_in(kCorpus / "zst");
    MESSAGE(files.size() << " corpus files");
    CHECK(files.size() >= 30);
    for (const auto& p : files) {
        CAPTURE(p.filename().string());
        const std::vector<uint8_t> b = test::read_bytes(p);
        gguf::fuzz::read_container(b.data(), b.size());
    }
}

TEST_CASE("every file in tests/corpus/data goes through the data-check harness") {
    const auto files = files_in(kCorpus / "data");
    MESSAGE(files.size() << " corpus files");
    CHECK(files.size() >= 100);
    for (const auto& p : files) {
        CAPTURE(p.filename().string());
        const std::vector<uint8_t> b = test::read_bytes(p);
        gguf::fuzz::check_and_dequantize(b.data(), b.size());
    }
}

TEST_CASE("every generated fixture, malformed file and planted fault goes through the open-and-walk harness") {
    size_t n = 0;
    for (const auto& m : gguf::fixtures::malformed_variants()) {
        gguf::fuzz::open_and_walk(m.bytes.data(), m.bytes.size());
        ++n;
    }
    for (const auto& f : gguf::fixtures::planted_faults())
        for (const auto& [name, bytes] : f.files) {
            CAPTURE(name);
            gguf::fuzz::open_and_walk(bytes.data(), bytes.size());
            ++n;
        }
    for (const auto& w : {gguf::fixtures::demo_model(), gguf::fixtures::all_value_types(), gguf::fixtures::all_value_types({1, false}),
                          gguf::fixtures::all_value_types({3, true})}) {
        const std::vector<uint8_t> b = w.write_to_memory();
        gguf::fuzz::open_and_walk(b.data(), b.size());
        ++n;
    }
    CHECK(n > 80);
}
