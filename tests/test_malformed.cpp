// Malformed input is rejected with a message naming the byte offset and the problem, and
// no input crashes the reader or makes it read out of bounds (ASan checks the latter).
#include <doctest/doctest.h>

#include <set>

#include "fixtures.h"
#include "gguf/file.h"

using namespace gguf;

namespace {
// Parses from an exact-size heap copy, so a read one byte too far is an ASan error.
void parse_exact(const std::vector<uint8_t>& bytes, size_t n) {
    std::vector<uint8_t> copy(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    copy.shrink_to_fit();
    File::parse(copy, "mutant");
}
}  // namespace

TEST_CASE("each malformed variant is rejected with its own message and offset") {
    std::vector<fixtures::Malformed> variants = fixtures::malformed_variants();
    CHECK(variants.size() >= 35);
    for (const fixtures::Malformed& m : variants) {
        CAPTURE(m.name);
        try {
            File::parse(m.bytes, m.name + ".gguf");
            FAIL("accepted a malformed file");
        } catch (const Error& e) {
            CHECK(e.file() == m.name + ".gguf");
            INFO("message: " << e.what());
            CHECK(std::string(e.what()).find(m.expected) != std::string::npos);
            if (m.offset) {
                REQUIRE(e.offset().has_value());
                CHECK(*e.offset() == *m.offset);
            }
        }
    }
}

TEST_CASE("a lenient open records each fault a strict open throws, when the rest stays readable") {
    // What a lenient open must record rather than throw: everything after the header,
    // key/value and tensor-info parsing (duplicates, alignment, layout, block multiples).
    const std::set<std::string> recoverable = {"duplicate-key", "alignment-wrong-type", "alignment-not-power-of-two",
                                               "alignment-zero", "row-not-block-multiple", "tensor-beyond-file",
                                               "offset-beyond-file", "overlapping-tensors", "overlapping-tensors-out-of-order",
                                               "misaligned-offset", "duplicate-tensor-name"};
    size_t recorded = 0;
    for (const fixtures::Malformed& m : fixtures::malformed_variants()) {
        CAPTURE(m.name);
        std::string strict;
        try {
            File::parse(m.bytes, m.name);
        } catch (const Error& e) {
            strict = e.what();
        }
        FaultLog faults;
        try {
            const File f = File::parse(m.bytes, m.name, faults);
            CHECK(recoverable.count(m.name) == 1);
            REQUIRE(faults.total() == 1);
            // The same fault as the strict error: subject, message and offset.
            const Fault& fault = faults.kept()[0];
            CHECK(fault.file == m.name);
            CHECK(strict.find("'" + fault.subject + "': " + fault.message) != std::string::npos);
            if (m.offset) CHECK(fault.file_offset == m.offset);
            for (const TensorInfo& t : f.tensors()) {
                const auto d = f.tensor_data(t);
                CHECK(d.size() == (t.readable ? t.n_bytes : 0));
            }
            ++recorded;
        } catch (const Error& e) {
            CHECK(recoverable.count(m.name) == 0);
            CHECK(std::string(e.what()) == strict);  // what leaves nothing to read throws the same error
        }
    }
    CHECK(recorded == recoverable.size());
}

TEST_CASE("a lenient open lists every structural fault of a file, not only the first") {
    std::vector<fixtures::PlantedFault> planted = fixtures::planted_faults();
    auto bytes_of = [&](const std::string& name) {
        for (const auto& p : planted)
            if (p.name == name) return p.files[0].second;
        FAIL("no planted fault " << name);
        return std::vector<uint8_t>{};
    };
    // Two faults in one file: a duplicate tensor name and a tensor outside the file.
    std::vector<uint8_t> b = bytes_of("duplicate-tensor-name");
    const std::vector<uint8_t> outside = bytes_of("data-outside-file");
    const std::vector<uint8_t> clean = fixtures::planted_fault_originals()[0].second;
    for (size_t i = 0; i < b.size(); ++i)
        if (outside[i] != clean[i]) b[i] = outside[i];
    FaultLog faults;
    const File f = File::parse(b, "two", faults);
    REQUIRE(faults.total() == 2);
    CHECK(faults.kept()[0].subject == "blk.0.attn_q.weight");
    CHECK(faults.kept()[0].message.find("duplicate of the tensor info") == 0);
    CHECK(faults.kept()[1].subject == "output.weight");
    CHECK(faults.kept()[1].message.find("ends beyond the file") != std::string::npos);
    CHECK_FALSE(f.find_tensor("output.weight")->readable);
    CHECK(f.tensor_data(*f.find_tensor("output.weight")).empty());
    CHECK_THROWS_AS(File::parse(b, "two"), Error);
}

TEST_CASE("a file cut short anywhere before its last tensor's data ends is rejected") {
    for (WriteOptions o : {WriteOptions{3, false}, WriteOptions{1, false}, WriteOptions{3, true}}) {
        std::vector<uint8_t> bytes = fixtures::all_value_types(o).write_to_memory();
        File whole = File::parse(bytes, "whole");
        uint64_t needed = 0;
        for (const TensorInfo& t : whole.tensors()) needed = std::max(needed, whole.data_section_offset() + t.data_offset + t.n_bytes);
        for (size_t n = 0; n < needed; ++n) {
            CAPTURE(n);
            try {
                parse_exact(bytes, n);
                FAIL("a truncated file was accepted");
            } catch (const Error& e) {
                REQUIRE(e.offset().has_value());
                CHECK(*e.offset() <= n);
            }
        }
        for (size_t n = needed; n <= bytes.size(); ++n) CHECK_NOTHROW(parse_exact(bytes, n));  // only padding cut
    }
}

TEST_CASE("the demo model cut short anywhere in its header is rejected") {
    std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    const uint64_t data = File::parse(bytes, "demo").data_section_offset();
    for (size_t n = 0; n < bytes.size(); n += n < data ? 1 : 997) {
        CAPTURE(n);
        CHECK_THROWS_AS(parse_exact(bytes, n), Error);
    }
}

TEST_CASE("overwriting any header byte never crashes: the result parses or fails with gguf::Error") {
    for (WriteOptions o : {WriteOptions{3, false}, WriteOptions{1, false}, WriteOptions{3, true}}) {
        std::vector<uint8_t> bytes = fixtures::all_value_types(o).write_to_memory();
        const uint64_t header = File::parse(bytes, "whole").data_section_offset();
        int rejected = 0;
        for (size_t i = 0; i < header; ++i) {
            for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff}}) {
                std::vector<uint8_t> m = bytes;
                m[i] = v;
                try {
                    parse_exact(m, m.size());
                } catch (const Error&) {
                    ++rejected;
                }
            }
        }
        CHECK(rejected > 0);
    }
}
