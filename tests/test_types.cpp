#include <doctest/doctest.h>

#include <set>

#include "gguf/file_type.h"
#include "gguf/types.h"

using namespace gguf;

TEST_CASE("type table: every id from 0 to the last (Q2_0) is present, in id order") {
    REQUIRE(all_types().size() == kTypeCount);
    CHECK(kTypeCount == static_cast<uint32_t>(TypeId::Q2_0) + 1);
    for (uint32_t i = 0; i < kTypeCount; ++i) {
        REQUIRE(find_type(i) != nullptr);
        CHECK(static_cast<uint32_t>(find_type(i)->id) == i);
    }
    CHECK(find_type(kTypeCount) == nullptr);
    CHECK(find_type(0xffffffffu) == nullptr);
}

TEST_CASE("type table: exactly ids 4, 5, 31-33 and 36-38 are retired, and they have no geometry") {
    const std::set<uint32_t> retired = {4, 5, 31, 32, 33, 36, 37, 38};
    for (const TypeInfo& t : all_types()) {
        CAPTURE(t.name);
        CHECK(t.retired == (retired.count(static_cast<uint32_t>(t.id)) > 0));
        if (t.retired) CHECK(t.block_size == 0);
        else CHECK(t.block_size > 0);
    }
    CHECK(type_info(TypeId::Q4_2).name == "q4_2");
    CHECK(type_info(TypeId::IQ4_NL_8_8).name == "iq4_nl_8x8");
}

TEST_CASE("type names are found case-insensitively, retired names are not") {
    CHECK(type_from_name("Q4_K") == TypeId::Q4_K);
    CHECK(type_from_name("q4_k") == TypeId::Q4_K);
    CHECK(type_from_name("BF16") == TypeId::BF16);
    CHECK(type_from_name("nvfp4") == TypeId::NVFP4);
    CHECK_FALSE(type_from_name("q4_2").has_value());
    CHECK_FALSE(type_from_name("q4_k_m").has_value());
}

TEST_CASE("general.file_type ids decode to llama.cpp's names") {
    CHECK(file_type_name(0) == "ALL_F32");
    CHECK(file_type_name(1) == "MOSTLY_F16");
    CHECK(file_type_name(15) == "MOSTLY_Q4_K_M");
    CHECK(file_type_name(21) == "MOSTLY_Q2_K_S");
    CHECK(file_type_name(32) == "MOSTLY_BF16");
    CHECK(file_type_name(38) == "MOSTLY_MXFP4_MOE");
    CHECK(file_type_name(41) == "MOSTLY_Q2_0");
    CHECK(file_type_name(4) == "MOSTLY_Q4_1_SOME_F16 (retired)");
    CHECK(file_type_name(34) == "MOSTLY_Q4_0_4_8 (retired)");
    CHECK(file_type_name(1024 + 15) == "MOSTLY_Q4_K_M (guessed)");
    CHECK(file_type_name(99) == "unknown (99)");
}

TEST_CASE("bits per weight and tensor bytes come from the table") {
    CHECK(bits_per_weight(TypeId::Q4_0) == 4.5);
    CHECK(bits_per_weight(TypeId::Q4_K) == 4.5);
    CHECK(bits_per_weight(TypeId::F16) == 16.0);
    CHECK(bits_per_weight(TypeId::IQ2_XS) == doctest::Approx(2.3125));
    CHECK(tensor_bytes(TypeId::Q8_0, 64) == 68);
    CHECK(tensor_bytes(TypeId::F32, 10) == 40);
    static_assert(type_info(TypeId::Q6_K).type_size == 210, "the table is usable in constant expressions");
}

TEST_CASE("average bits per weight: 8 x bytes / values, 0 for no values") {
    CHECK(average_bits_per_weight(tensor_bytes(TypeId::Q4_0, 256), 256) == 4.5);
    CHECK(average_bits_per_weight(tensor_bytes(TypeId::Q8_0, 32) + tensor_bytes(TypeId::F16, 32), 64) == doctest::Approx(12.25));
    CHECK(average_bits_per_weight(100, 0) == 0.0);
    CHECK(average_bits_per_weight(0, 10) == 0.0);
}

TEST_CASE("file type table: indexed by id, named as llama-quantize names the mixes, with each mix's base type") {
    for (uint32_t i = 0; i < all_file_types().size(); ++i) CHECK(static_cast<uint32_t>(all_file_types()[i].id) == i);
    CHECK(find_file_type(15)->name == "Q4_K_M");
    CHECK(find_file_type(15)->base == TypeId::Q4_K);
    CHECK(find_file_type(28)->base == TypeId::IQ2_XS);  // IQ2_S is built on iq2_xs
    CHECK(find_file_type(15 | kFileTypeGuessed)->name == "Q4_K_M");
    CHECK(find_file_type(42) == nullptr);
    CHECK(file_type_from_name("q4_k_m") == FileType::Q4_K_M);
    CHECK_FALSE(file_type_from_name("Q4_2").has_value());  // retired
    for (const FileTypeInfo& f : all_file_types())
        if (!f.retired) CHECK_FALSE(type_info(f.base).retired);
}
