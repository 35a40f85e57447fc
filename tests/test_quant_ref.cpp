// quant/ against the reference: dequantization must equal ggml's bit for bit.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include "quant/quant.h"
#include "support.h"

namespace {

std::vector<float> floats(const std::filesystem::path& p) {
    std::vector<uint8_t> b = test::read_bytes(p);
    std::vector<float> f(b.size() / 4);
    std::memcpy(f.data(), b.data(), f.size() * 4);
    return f;
}

// Identical bits, or both NaN. Returns the number of values that differ.
size_t mismatches(const std::vector<float>& got, const std::vector<float>& want, std::string& first) {
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const bool same = std::bit_cast<uint32_t>(got[i]) == std::bit_cast<uint32_t>(want[i]) ||
                          (std::isnan(got[i]) && std::isnan(want[i]));
        if (!same && bad++ == 0) first = "value " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
    }
    return bad;
}

// The types whose dequantization this project implements so far; the test fails if one of
// them stops being available, and reports the reference types still to do.
const std::set<std::string> kImplemented = {
    "f16",     "bf16",   "q4_0",  "q4_1",    "q5_0",  "q5_1",  "q8_0",  "q2_K",   "q3_K",
    "q4_K",    "q5_K",   "q6_K",  "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s",
    "iq1_m",   "iq4_nl", "iq4_xs", "mxfp4",  "nvfp4", "tq1_0", "tq2_0", "q1_0",   "q2_0"};

}  // namespace

TEST_CASE("dequantization of random blocks and of quantized test rows equals the reference bit for bit") {
    const auto dir = test::ref_dir() / "quant";
    std::set<std::string> pending;
    size_t compared = 0;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        const std::string name(t.name);
        if (!std::filesystem::exists(dir / "random" / (name + ".bin"))) continue;
        if (!quant::can_dequantize(t.id)) {
            CHECK_MESSAGE(kImplemented.count(name) == 0, name);
            pending.insert(name);
            continue;
        }
        // Random blocks, and every quantized test input the reference has for this type (types
        // that need importance weights have only the imatrix ones).
        std::vector<std::filesystem::path> cases = {dir / "random" / name};
        for (const char* input : {"gauss", "heavy"})
            for (const char* mode : {"plain", "imatrix"}) {
                auto stem = dir / "roundtrip" / (name + "." + input + "." + mode);
                if (std::filesystem::exists(stem.string() + ".bin")) cases.push_back(stem);
            }
        for (const auto& stem : cases) {
            CAPTURE(stem);
            std::vector<uint8_t> bytes = test::read_bytes(stem.string() + ".bin");
            std::vector<float> want = floats(stem.string() + ".f32");
            std::vector<float> got(want.size());
            REQUIRE(quant::row_bytes(t.id, static_cast<int64_t>(want.size())) == bytes.size());
            quant::dequantize(t.id, bytes, got);
            std::string first;
            CHECK_MESSAGE(mismatches(got, want, first) == 0, first);
            ++compared;
        }
    }
    for (const std::string& name : kImplemented) CHECK_MESSAGE(quant::can_dequantize(*gguf::type_from_name(name)), name);
    // Every reference file of an implemented type was compared.
    size_t reference_files = 0;
    for (const char* sub : {"random", "roundtrip"})
        for (const auto& e : std::filesystem::directory_iterator(dir / sub)) {
            const std::string f = e.path().filename().string();
            if (e.path().extension() == ".bin" && kImplemented.count(f.substr(0, f.find('.')))) ++reference_files;
        }
    CHECK(reference_files >= kImplemented.size() * 3);
    CHECK(compared == reference_files);
    std::string todo;
    for (const std::string& n : pending) todo += " " + n;
    if (!pending.empty()) MESSAGE("reference types whose dequantization is not implemented yet:" << todo);
    MESSAGE("compared " << compared << " reference files bit for bit");
}
