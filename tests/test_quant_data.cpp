// quant/ against ggml's own bytes kept in the repository (tests/data/quant, a subset of
// ../shared/ref/quant written by scripts/make-quant-testdata): dequantization bit for bit,
// and the quantizations that must write ggml's bytes exactly. Needs nothing outside the
// repository; tests/test_quant_ref.cpp checks the same on all the reference data.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "quant/quant.h"
#include "support.h"

namespace {

const std::filesystem::path kData = GGUFKIT_QUANT_DATA_DIR;

// Dot-product helper layouts: ggml quantizes activations to them; the reference data has no
// dequantization of them (a test below builds blocks by hand instead).
bool is_dot_product_helper(gguf::TypeId type) { return type == gguf::TypeId::Q8_1 || type == gguf::TypeId::Q8_K; }

// The types the data must cover: every live block format, and the 16-bit floats.
bool has_reference_data(const gguf::TypeInfo& t) {
    return !t.retired && (t.quantized || t.id == gguf::TypeId::F16 || t.id == gguf::TypeId::BF16) && !is_dot_product_helper(t.id);
}

// The stem of a type's heavy-input row: without importance weights, or with them for the
// types that quantize only with them.
std::filesystem::path heavy_row(const std::string& name) {
    const auto plain = kData / "roundtrip" / (name + ".heavy.plain");
    return std::filesystem::exists(plain.string() + ".bin") ? plain : kData / "roundtrip" / (name + ".heavy.imatrix");
}

// Dequantizes stem.bin and compares it with stem.f32 bit for bit.
void check_dequantization(gguf::TypeId type, const std::filesystem::path& stem) {
    CAPTURE(stem);
    const bool present = std::filesystem::exists(stem.string() + ".bin") && std::filesystem::exists(stem.string() + ".f32");
    CHECK_MESSAGE(present, "missing: regenerate with scripts/make-quant-testdata");
    if (!present) return;
    const std::vector<uint8_t> bytes = test::read_bytes(stem.string() + ".bin");
    const std::vector<float> want = test::read_floats(stem.string() + ".f32");
    REQUIRE(!want.empty());
    REQUIRE(quant::row_bytes(type, static_cast<int64_t>(want.size())) == bytes.size());
    std::vector<float> got(want.size());
    quant::dequantize(type, bytes, got);
    std::string first;
    CHECK_MESSAGE(test::bit_mismatches(got, want, first) == 0, first);
}

}  // namespace

TEST_CASE("every block format and 16-bit float dequantizes ggml's random blocks and quantized row to ggml's values bit for bit") {
    int types = 0;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        const std::string name(t.name);
        CAPTURE(name);
        if (!has_reference_data(t)) continue;
        REQUIRE(quant::can_dequantize(t.id));
        check_dequantization(t.id, kData / "random" / name);
        check_dequantization(t.id, heavy_row(name));
        ++types;
    }
    // And no type's data goes unread.
    int random_files = 0;
    for (const auto& e : std::filesystem::directory_iterator(kData / "random")) random_files += e.path().extension() == ".bin";
    CHECK(types == random_files);
}

TEST_CASE("Q8_1 and Q8_K blocks built by hand dequantize to d x code (Q8_1's s plays no part)") {
    std::vector<uint8_t> q81(36);
    q81[0] = 0x00, q81[1] = 0x38;  // d = 0.5 (f16 0x3800)
    q81[2] = 0xff, q81[3] = 0x7f;  // s = NaN: must not matter
    for (int j = 0; j < 32; ++j) q81[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
    std::vector<float> y(32);
    quant::dequantize(gguf::TypeId::Q8_1, q81, y);
    for (int j = 0; j < 32; ++j) CHECK(y[j] == 0.5f * static_cast<float>(j - 16));

    std::vector<uint8_t> q8k(292);
    const float d = -0.03125f;
    std::memcpy(q8k.data(), &d, 4);
    for (int j = 0; j < 256; ++j) q8k[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(j % 255 - 127));
    std::fill(q8k.begin() + 260, q8k.end(), uint8_t{0xff});  // block sums: must not matter
    std::vector<float> z(256);
    quant::dequantize(gguf::TypeId::Q8_K, q8k, z);
    for (int j = 0; j < 256; ++j) CHECK(z[j] == d * static_cast<float>(j % 255 - 127));
}

TEST_CASE("f16, bf16 and q8_0 (its fast effort) quantization of the heavy-tailed input writes ggml's bytes exactly") {
    const std::vector<float> x = test::read_floats(kData / "input_heavy.f32");
    REQUIRE(x.size() == 1024);
    for (const gguf::TypeId type : {gguf::TypeId::F16, gguf::TypeId::BF16, gguf::TypeId::Q8_0}) {
        const std::string name(gguf::type_info(type).name);
        CAPTURE(name);
        const std::vector<uint8_t> want = test::read_bytes(kData / "roundtrip" / (name + ".heavy.plain.bin"));
        std::vector<uint8_t> got(quant::row_bytes(type, static_cast<int64_t>(x.size())));
        REQUIRE(got.size() == want.size());
        quant::quantize(type, x, static_cast<int64_t>(x.size()), {}, got, 0, quant::Effort::Fast);
        CHECK(got == want);
    }
}
