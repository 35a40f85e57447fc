// Importance-matrix files: both of llama.cpp's formats, merging, and refusals of bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "gguf/error.h"
#include "gguf/file.h"
#include "quant/imatrix.h"
#include "support.h"

namespace {

using quant::ImatrixEntry;
using quant::ImatrixFormat;
using quant::ImportanceMatrix;

// Two entries: a plain tensor (4 columns) and an expert tensor (3 columns x 2 experts,
// the second expert never reached).
ImportanceMatrix sample() {
    ImportanceMatrix m;
    m.set("blk.0.attn_q.weight", ImatrixEntry{{256.0f, 512.0f, 128.0f, 1024.0f}, {256.0f}});
    m.set("blk.0.ffn_up_exps.weight", ImatrixEntry{{64.0f, 32.0f, 16.0f, 0.0f, 0.0f, 0.0f}, {32.0f, 0.0f}});
    m.datasets = {"train.txt"};
    m.chunk_size = 128;
    m.chunk_count = 2;
    return m;
}

std::vector<uint8_t> file_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST_CASE("importance is sum / count per expert, 1 for an expert never reached") {
    const ImportanceMatrix m = sample();
    CHECK(*m.find("blk.0.attn_q.weight") == std::vector<float>{1.0f, 2.0f, 0.5f, 4.0f});
    CHECK(*m.find("blk.0.ffn_up_exps.weight") == std::vector<float>{2.0f, 1.0f, 0.5f, 1.0f, 1.0f, 1.0f});
    CHECK(m.find("output.weight") == nullptr);
}

TEST_CASE("the GGUF form round-trips sums, counts, expert shapes and keys") {
    test::TempDir d;
    sample().save(d / "m.gguf", ImatrixFormat::Gguf);
    const gguf::File f = gguf::File::open(d / "m.gguf");
    CHECK(f.find("general.type")->value.str() == "imatrix");
    CHECK(f.find_tensor("blk.0.attn_q.weight.in_sum2")->dims().size() == 1);
    CHECK(f.find_tensor("blk.0.ffn_up_exps.weight.in_sum2")->shape[1] == 2);
    CHECK(f.find_tensor("blk.0.ffn_up_exps.weight.counts")->shape[1] == 2);
    const ImportanceMatrix back = ImportanceMatrix::load(d / "m.gguf");
    CHECK(back.format == ImatrixFormat::Gguf);
    CHECK(back.entries().at("blk.0.ffn_up_exps.weight").counts == std::vector<float>{32.0f, 0.0f});
    CHECK(*back.find("blk.0.ffn_up_exps.weight") == *sample().find("blk.0.ffn_up_exps.weight"));
    CHECK(back.datasets == std::vector<std::string>{"train.txt"});
    CHECK(back.chunk_count == 2);
    CHECK(back.chunk_size == 128);
}

TEST_CASE("the legacy form stores mean x calls and reads back the same importance") {
    test::TempDir d;
    sample().save(d / "m.dat", ImatrixFormat::Legacy);
    const std::vector<uint8_t> b = file_bytes(d / "m.dat");
    int32_t entries, name_length, calls, values;
    std::memcpy(&entries, b.data(), 4);
    std::memcpy(&name_length, b.data() + 4, 4);
    std::memcpy(&calls, b.data() + 8 + name_length, 4);
    std::memcpy(&values, b.data() + 12 + name_length, 4);
    CHECK(entries == 2);
    CHECK(std::string(reinterpret_cast<const char*>(b.data() + 8), static_cast<size_t>(name_length)) == "blk.0.attn_q.weight");
    CHECK(calls == 2);  // 256 rows in chunks of 128
    CHECK(values == 4);
    float first;
    std::memcpy(&first, b.data() + 16 + name_length, 4);
    CHECK(first == 2.0f);  // mean 1 x 2 calls

    const ImportanceMatrix back = ImportanceMatrix::load(d / "m.dat", 128);
    CHECK(back.format == ImatrixFormat::Legacy);
    CHECK(*back.find("blk.0.attn_q.weight") == *sample().find("blk.0.attn_q.weight"));
    // One count for all experts (the format keeps no more); the unreached expert stored as 1.
    CHECK(*back.find("blk.0.ffn_up_exps.weight") == std::vector<float>{2.0f, 1.0f, 0.5f, 1.0f, 1.0f, 1.0f});
    CHECK(back.datasets == std::vector<std::string>{"train.txt"});
    CHECK(back.chunk_count == 2);
}

TEST_CASE("merging sums sums and counts, so each input weighs by the data it saw") {
    ImportanceMatrix a = sample(), b;
    b.set("blk.0.attn_q.weight", ImatrixEntry{{768.0f, 0.0f, 0.0f, 0.0f}, {768.0f}});
    b.set("blk.1.attn_q.weight", ImatrixEntry{{1.0f, 1.0f}, {1.0f}});
    b.set("blk.0.ffn_up_exps.weight", ImatrixEntry{{0.0f, 0.0f, 0.0f, 30.0f, 30.0f, 30.0f}, {10.0f}});  // one count: repeated
    b.datasets = {"more.txt"};
    a.merge(b);
    // (256 + 768) / (256 + 768) = 1 for column 0: the second file's 768 rows outweigh the first's 256.
    CHECK(*a.find("blk.0.attn_q.weight") == std::vector<float>{1.0f, 0.5f, 0.125f, 1.0f});
    CHECK(a.entries().at("blk.0.ffn_up_exps.weight").counts == std::vector<float>{42.0f, 10.0f});
    CHECK(a.find("blk.1.attn_q.weight") != nullptr);
    CHECK(a.datasets == std::vector<std::string>{"train.txt", "more.txt"});
    CHECK(a.chunk_count == 8);  // 1024 rows / 128

    ImportanceMatrix wrong;
    wrong.set("blk.0.attn_q.weight", ImatrixEntry{{1.0f, 1.0f}, {1.0f}});
    CHECK_THROWS_WITH(a.merge(wrong), doctest::Contains("entry 'blk.0.attn_q.weight': 4 values in one file, 2 in another"));
}

TEST_CASE("bad legacy files are refused with the offset and entry") {
    test::TempDir d;
    sample().save(d / "good.dat", ImatrixFormat::Legacy);
    const std::vector<uint8_t> good = file_bytes(d / "good.dat");

    std::vector<uint8_t> truncated(good.begin(), good.begin() + 40);  // inside the first entry's values
    write_bytes(d / "truncated.dat", truncated);
    CHECK_THROWS_WITH_AS(ImportanceMatrix::load(d / "truncated.dat"), doctest::Contains("entry 'blk.0.attn_q.weight': 4 values do not fit in the file"), gguf::Error);

    std::vector<uint8_t> nan = good;
    const float bad = std::nanf("");
    std::memcpy(nan.data() + 8 + 19 + 8 + 4, &bad, 4);  // the second value of the first entry
    write_bytes(d / "nan.dat", nan);
    CHECK_THROWS_WITH(ImportanceMatrix::load(d / "nan.dat"), doctest::Contains("entry 'blk.0.attn_q.weight': value 1 (column 1) is nan"));

    std::vector<uint8_t> negative_calls = good;
    const int32_t minus = -3;
    std::memcpy(negative_calls.data() + 8 + 19, &minus, 4);
    write_bytes(d / "calls.dat", negative_calls);
    CHECK_THROWS_WITH(ImportanceMatrix::load(d / "calls.dat"), doctest::Contains("call count -3 is negative"));

    write_bytes(d / "short.dat", std::vector<uint8_t>(good.begin(), good.begin() + 29));
    CHECK_THROWS_WITH(ImportanceMatrix::load(d / "short.dat"), doctest::Contains("offset 27: file ends where the call count of entry 'blk.0.attn_q.weight' should be"));

    write_bytes(d / "empty.dat", {});
    CHECK_THROWS_WITH(ImportanceMatrix::load(d / "empty.dat"), doctest::Contains("file ends where the entry count should be"));
    try {
        ImportanceMatrix::load(d / "truncated.dat");
    } catch (const gguf::Error& e) {
        CHECK(e.offset() == 4 + 4 + 19 + 4);  // the value count's field
    }
}

TEST_CASE("stats: chunks from the busiest expert's count, mean and max importance, the top values in order") {
    const ImportanceMatrix m = sample();
    const ImatrixEntry& plain = m.entries().at("blk.0.attn_q.weight");  // importance 1, 2, 0.5, 4
    const quant::ImatrixStats s = quant::stats(plain, *m.find("blk.0.attn_q.weight"), m.chunk_size, 2);
    CHECK(s.chunks == 2.0);  // 256 rows in chunks of 128
    CHECK(s.mean == 1.875);
    CHECK(s.max == 4.0);
    CHECK(s.top == std::vector<size_t>{3, 1});
    CHECK(quant::stats(plain, *m.find("blk.0.attn_q.weight"), m.chunk_size, 10).top == std::vector<size_t>{3, 1, 0, 2});
    CHECK(quant::stats(plain, *m.find("blk.0.attn_q.weight"), m.chunk_size, 0).top.empty());
    CHECK(quant::stats(plain, *m.find("blk.0.attn_q.weight"), 0, 2).chunks == 0.0);  // no chunk size, no chunk count
}

TEST_CASE("stats over experts: indices run expert by expert, ties keep the lower index first") {
    const ImportanceMatrix m = sample();
    // Expert 0: 2, 1, 0.5; expert 1 never reached: 1, 1, 1.
    const ImatrixEntry& experts = m.entries().at("blk.0.ffn_up_exps.weight");
    const quant::ImatrixStats s = quant::stats(experts, *m.find("blk.0.ffn_up_exps.weight"), m.chunk_size, 4);
    CHECK(s.chunks == 0.25);  // the busiest expert saw 32 rows
    CHECK(s.mean == doctest::Approx(6.5 / 6));
    CHECK(s.max == 2.0);
    CHECK(s.top == std::vector<size_t>{0, 1, 3, 4});  // expert 1's columns 0 and 1 are indices 3 and 4
}

TEST_CASE("stats of an empty entry are zeros, not a read past the end") {
    const quant::ImatrixStats s = quant::stats(ImatrixEntry{}, {}, 512, 10);
    CHECK(s.chunks == 0.0);
    CHECK(s.mean == 0.0);
    CHECK(s.max == 0.0);
    CHECK(s.top.empty());
}
