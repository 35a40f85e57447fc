#include <doctest/doctest.h>

#include <set>

#include "gguf/file_type.h"
#include "gguf/types.h"

using namespace gguf;

TEST_CASE("type table: every id from 0 to 42 is present, in id order") {
    REQUIRE(all_types().size() == 43);
    for (uint32_t i = 0; i < 43; ++i) {
        REQUIRE(find_type(i) != nullptr);
        CHECK(static_cast<uint32_t>(find_type(i)->id) == i);
    }
    CHECK(find_type(43) == nullptr);
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
