// Every value type, written and read back in each encoding (v3, v1, big-endian), the
// owned values the writer serializes, and values rendered as text.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <span>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/render.h"
#include "gguf/writer.h"

using namespace gguf;

namespace {

const Value& get(const File& f, std::string_view key) {
    const KeyValue* kv = f.find(key);
    REQUIRE_MESSAGE(kv != nullptr, key);
    return kv->value;
}

std::vector<std::string> strings_of(ArrayView a) {
    std::vector<std::string> v;
    for (Value x : a) v.emplace_back(x.str());
    return v;
}

void check_all_value_types(const File& f) {
    CHECK(get(f, "u8.max").u8() == 255);
    CHECK(get(f, "i8.min").i8() == -128);
    CHECK(get(f, "u16.max").u16() == 65535);
    CHECK(get(f, "i16.min").i16() == -32768);
    CHECK(get(f, "u32.max").u32() == 4294967295u);
    CHECK(get(f, "i32.min").i32() == std::numeric_limits<int32_t>::min());
    CHECK(get(f, "f32.pi").f32() == 3.14159274f);
    CHECK(get(f, "bool.true").boolean());
    CHECK_FALSE(get(f, "bool.false").boolean());
    CHECK(get(f, "string.utf8").str() == "na\xc3\xafve \xe2\x98\x83 \"quoted\"\ttab");
    CHECK(get(f, "string.empty").str().empty());
    CHECK(get(f, "u64.max").u64() == std::numeric_limits<uint64_t>::max());
    CHECK(get(f, "i64.min").i64() == std::numeric_limits<int64_t>::min());
    CHECK(get(f, "f64.e").f64() == 2.718281828459045);

    ArrayView u8 = get(f, "array.u8").array();
    REQUIRE(u8.size() == 3);
    CHECK(u8.at(2).u8() == 255);
    CHECK(get(f, "array.i8").array().at(0).i8() == -1);
    CHECK(get(f, "array.u16").array().at(1).u16() == 65535);
    CHECK(get(f, "array.i16").array().at(1).i16() == 300);
    CHECK(get(f, "array.u32").array().at(2).u32() == 9);
    CHECK(get(f, "array.i32").array().at(1).i32() == 70000);
    ArrayView f32 = get(f, "array.f32").array();
    CHECK(f32.at(0).f32() == 1.5f);
    CHECK(std::signbit(f32.at(1).f32()));
    CHECK(std::isinf(f32.at(2).f32()));
    CHECK(std::isnan(f32.at(3).f32()));
    ArrayView b = get(f, "array.bool").array();
    CHECK(b.at(0).boolean());
    CHECK_FALSE(b.at(1).boolean());
    CHECK(strings_of(get(f, "array.string").array()) == std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf"});
    CHECK(get(f, "array.u64").array().at(0).u64() == (1ull << 63));
    CHECK(get(f, "array.i64").array().at(1).i64() == (1ll << 40));
    CHECK(get(f, "array.f64").array().at(1).f64() == -1e300);
    CHECK(get(f, "array.empty").array().empty());
    CHECK(get(f, "array.empty").array().element_type() == ValueType::U32);

    ArrayView nested = get(f, "array.nested").array();
    REQUIRE(nested.size() == 2);
    std::vector<std::vector<int32_t>> got;
    for (Value row : nested) {
        std::vector<int32_t> r;
        for (Value x : row.array()) r.push_back(x.i32());
        got.push_back(r);
    }
    CHECK(got == std::vector<std::vector<int32_t>>{{1, 2}, {3}});

    ArrayView n3 = get(f, "array.nested3").array();
    REQUIRE(n3.size() == 2);
    auto it = n3.begin();
    ArrayView first = (*it).array();
    REQUIRE(first.size() == 2);
    auto inner = first.begin();
    CHECK(strings_of((*inner).array()) == std::vector<std::string>{"x"});
    ++inner;
    CHECK(strings_of((*inner).array()) == std::vector<std::string>{"y", "z"});
    ++it;
    CHECK((*it).array().empty());

    CHECK(f.alignment() == 64);
    CHECK(f.data_section_offset() % 64 == 0);
    const TensorInfo* t = f.find_tensor("t.i8");
    REQUIRE(t != nullptr);
    CHECK(t->n_dims == 4);
    CHECK(t->n_elements == 16);
    const TensorInfo* q = f.find_tensor("t.q4_0");
    REQUIRE(q != nullptr);
    CHECK(q->type == TypeId::Q4_0);
    CHECK(q->n_bytes == 2 * 2 * 18);
    for (const TensorInfo& ti : f.tensors()) CHECK(ti.data_offset % 64 == 0);
}

}  // namespace

TEST_CASE("all 13 value types and nested arrays read back exactly in every encoding") {
    struct Case { const char* name; WriteOptions options; };
    for (Case c : {Case{"v3 little-endian", {3, false}}, Case{"v2", {2, false}}, Case{"v1", {1, false}},
                   Case{"v3 big-endian", {3, true}}}) {
        CAPTURE(c.name);
        std::vector<uint8_t> bytes = fixtures::all_value_types(c.options).write_to_memory();
        File f = File::parse(bytes, c.name);
        CHECK(f.version() == c.options.version);
        CHECK(f.big_endian() == c.options.big_endian);
        CHECK(f.encoding().narrow_counts == (c.options.version == 1));
        check_all_value_types(f);
    }
}

TEST_CASE("accessors of the wrong type throw rather than reinterpret bytes") {
    std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    File f = File::parse(bytes, "all");
    CHECK_THROWS_AS(f.find("u8.max")->value.u32(), std::logic_error);
    CHECK_THROWS_AS(f.find("u8.max")->value.str(), std::logic_error);
    CHECK_THROWS_AS(f.find("array.string")->value.array().at(0), std::logic_error);
    CHECK_THROWS_AS(f.find("array.u8")->value.array().at(3), std::out_of_range);
    CHECK(f.find("u16.max")->value.as_int() == 65535);
    CHECK(f.find("i8.min")->value.as_int() == -128);
    CHECK_THROWS_AS(f.find("i8.min")->value.as_uint(), std::logic_error);
    CHECK(f.find("u64.max")->value.as_uint() == std::numeric_limits<uint64_t>::max());
    CHECK_THROWS_AS(f.find("u64.max")->value.as_int(), std::logic_error);
    CHECK(f.find("f32.pi")->value.as_double() == doctest::Approx(3.14159274));
}

TEST_CASE("strings and arrays are views into the file's bytes, not copies") {
    std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    File f = File::parse(bytes, "all");
    auto inside = [&](const void* p) {
        auto* b = static_cast<const uint8_t*>(p);
        return b >= bytes.data() && b < bytes.data() + bytes.size();
    };
    CHECK(inside(f.find("string.utf8")->value.str().data()));
    CHECK(inside(f.find("u8.max")->key.data()));
    CHECK(inside((*f.find("array.string")->value.array().begin()).str().data()));
    CHECK(inside(f.tensors()[0].name.data()));
    CHECK(inside(f.tensor_data(f.tensors()[0]).data()));
}

TEST_CASE("the demo model carries llama.cpp's keys and tensor shapes") {
    std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    File f = File::parse(bytes, "demo");
    CHECK(f.find("general.architecture")->value.str() == "llama");
    CHECK(f.find("llama.embedding_length")->value.u32() == 64);
    CHECK(f.find("llama.block_count")->value.u32() == 2);
    CHECK(f.find("tokenizer.ggml.tokens")->value.array().size() == 320);
    CHECK(f.tensors().size() == 2 + 2 * 9 + 1);
    const TensorInfo* k = f.find_tensor("blk.1.attn_k.weight");
    REQUIRE(k != nullptr);
    CHECK(k->type == TypeId::F16);
    CHECK(k->shape[0] == 64);
    CHECK(k->shape[1] == 32);  // n_embd / n_head * n_head_kv
    CHECK(f.find_tensor("blk.0.ffn_down.weight")->shape[0] == 128);
    CHECK(f.find_tensor("output_norm.weight")->type == TypeId::F32);
    CHECK(f.find_tensor("blk.2.attn_q.weight") == nullptr);
}

TEST_CASE("an owned array holds its elements by type and gives each back") {
    using V = OwnedValue;
    V u16 = V::array(ValueType::U16, {V::u16(1), V::u16(0xBEEF)});
    CHECK(u16.type() == ValueType::Array);
    CHECK(u16.element_type() == ValueType::U16);
    REQUIRE(u16.size() == 2);
    CHECK(u16.at(1).type() == ValueType::U16);
    CHECK(u16.at(1).bits() == 0xBEEF);
    // Held as a little-endian file stores them, whatever the host's order.
    const std::span<const uint8_t> held = u16.element_bytes();
    CHECK(std::vector<uint8_t>(held.begin(), held.end()) == std::vector<uint8_t>{0x01, 0x00, 0xEF, 0xBE});

    V i8 = V::numbers(ValueType::I8, std::vector<int8_t>{-1, 127}, V::i8);
    CHECK(i8.at(0).bits() == 0xFF);
    V i64 = V::numbers(ValueType::I64, std::vector<int64_t>{-5, int64_t{1} << 40}, V::i64);
    CHECK(i64.at(0).bits() == static_cast<uint64_t>(int64_t{-5}));
    CHECK(i64.at(1).bits() == uint64_t{1} << 40);
    V f32 = V::numbers(ValueType::F32, std::vector<float>{1.5f, -0.0f}, V::f32);
    CHECK(f32.at(1).bits() == 0x80000000u);
    V f64 = V::numbers(ValueType::F64, std::vector<double>{-1e300}, V::f64);
    CHECK(f64.at(0).bits() == V::f64(-1e300).bits());
    V b = V::array(ValueType::Bool, {V::boolean(true), V::boolean(false)});
    CHECK(b.at(0).bits() == 1);
    CHECK(b.at(1).bits() == 0);

    V s = V::strings({"a", "", "\xc3\xbcn"});
    REQUIRE(s.size() == 3);
    CHECK(s.string_at(0) == "a");
    CHECK(s.string_at(1).empty());
    CHECK(s.at(2).str() == "\xc3\xbcn");
    s.push_back(V::string("dd"));
    CHECK(s.size() == 4);
    CHECK(s.string_at(3) == "dd");

    V nested = V::array(ValueType::Array, {V::strings({"x"}), V::array(ValueType::U8, {})});
    REQUIRE(nested.size() == 2);
    CHECK(nested.array_at(0).string_at(0) == "x");
    CHECK(nested.array_at(1).empty());
    CHECK(nested.array_at(1).element_type() == ValueType::U8);

    V empty = V::array(ValueType::F32, {});
    CHECK(empty.empty());
    CHECK(empty.element_bytes().empty());
    CHECK(V::strings({}).empty());
}

TEST_CASE("an owned value refuses elements of another type and accessors that do not apply") {
    using V = OwnedValue;
    CHECK_THROWS_AS(V::array(ValueType::Array, {V::u8(1)}), std::invalid_argument);
    CHECK_THROWS_AS(V::array(ValueType::String, {V::u8(1)}), std::invalid_argument);
    V a = V::array(ValueType::U32, {V::u32(1)});
    CHECK_THROWS_AS(a.push_back(V::i32(1)), std::invalid_argument);
    CHECK_THROWS_AS(a.at(1), std::out_of_range);
    CHECK_THROWS_AS(V::strings({"a"}).string_at(1), std::out_of_range);
    CHECK_THROWS_WITH_AS(a.string_at(0), doctest::Contains("array of u32"), std::logic_error);
    CHECK_THROWS_WITH_AS(a.array_at(0), doctest::Contains("array of u32"), std::logic_error);
    CHECK_THROWS_WITH_AS(V::array(ValueType::Array, {a}).at(0), doctest::Contains("array of arr"), std::logic_error);
    CHECK_THROWS_AS(V::strings({"a"}).element_bytes(), std::logic_error);
    CHECK_THROWS_AS(V::u32(1).size(), std::logic_error);
    CHECK_THROWS_AS(V::u32(1).str(), std::logic_error);
    CHECK_THROWS_AS(V::u32(1).push_back(V::u32(2)), std::logic_error);
}

namespace {
// The metadata of `f` copied with OwnedValue::from and written in encoding `o`.
std::vector<uint8_t> metadata_copy(const File& f, WriteOptions o) {
    Writer w(o);
    for (const KeyValue& kv : f.kvs()) w.set(std::string(kv.key), OwnedValue::from(kv.value));
    return w.write_to_memory();
}
}  // namespace

TEST_CASE("every value type copied from a file in one encoding writes the same bytes in another") {
    const std::vector<WriteOptions> encodings = {{3, false}, {2, false}, {1, false}, {3, true}, {1, true}};
    for (WriteOptions from : encodings) {
        const std::vector<uint8_t> bytes = fixtures::all_value_types(from).write_to_memory();
        const File f = File::parse(bytes, "from");
        CAPTURE(from.version);
        CAPTURE(from.big_endian);
        for (WriteOptions to : encodings) {
            CAPTURE(to.version);
            CAPTURE(to.big_endian);
            const std::vector<uint8_t> other = fixtures::all_value_types(to).write_to_memory();
            CHECK(metadata_copy(f, to) == metadata_copy(File::parse(other, "to"), to));
        }

        // The copies hold the values themselves, not the file's byte order.
        auto owned = [&](std::string_view key) { return OwnedValue::from(get(f, key)); };
        CHECK(owned("u16.max").bits() == 65535);
        CHECK(owned("array.u16").at(1).bits() == 65535);
        CHECK(owned("array.i16").at(0).bits() == 0xFFFE);
        CHECK(owned("array.u32").at(2).bits() == 9);
        CHECK(owned("array.f32").at(0).bits() == OwnedValue::f32(1.5f).bits());
        CHECK(owned("array.u64").at(0).bits() == uint64_t{1} << 63);
        CHECK(owned("array.f64").at(1).bits() == OwnedValue::f64(-1e300).bits());
        CHECK(owned("array.bool").at(2).bits() == 1);
        const OwnedValue strings = owned("array.string");
        REQUIRE(strings.size() == 3);
        CHECK(strings.string_at(0) == "a");
        CHECK(strings.string_at(1).empty());
        CHECK(strings.string_at(2) == "\xc3\xbcn\xc3\xaf");
        CHECK(owned("array.empty").empty());
        CHECK(owned("array.empty").element_type() == ValueType::U32);
        const OwnedValue nested = owned("array.nested");
        REQUIRE(nested.size() == 2);
        CHECK(nested.array_at(0).at(1).bits() == 2);
        CHECK(nested.array_at(1).size() == 1);
        const OwnedValue n3 = owned("array.nested3");
        REQUIRE(n3.size() == 2);
        CHECK(n3.array_at(0).array_at(1).string_at(1) == "z");
        CHECK(n3.array_at(1).empty());
        CHECK(n3.array_at(1).element_type() == ValueType::Array);
    }
}

// ---- values as text (gguf/render.h) -----------------------------------------------------

namespace {

std::string text_of(const File& f, std::string_view key, uint64_t limit = std::numeric_limits<uint64_t>::max()) {
    return value_text(get(f, key), limit);
}

}  // namespace

TEST_CASE("every scalar value type renders as text: integers in full, floats shortest, strings quoted") {
    const std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    const File f = File::parse(bytes, "all");
    CHECK(text_of(f, "u8.max") == "255");
    CHECK(text_of(f, "i8.min") == "-128");
    CHECK(text_of(f, "u16.max") == "65535");
    CHECK(text_of(f, "i16.min") == "-32768");
    CHECK(text_of(f, "u32.max") == "4294967295");
    CHECK(text_of(f, "i32.min") == "-2147483648");
    CHECK(text_of(f, "u64.max") == "18446744073709551615");
    CHECK(text_of(f, "i64.min") == "-9223372036854775808");
    CHECK(text_of(f, "f32.pi") == "3.1415927");  // the float's shortest form, not the double's
    CHECK(text_of(f, "f64.e") == "2.718281828459045");
    CHECK(text_of(f, "bool.true") == "true");
    CHECK(text_of(f, "bool.false") == "false");
    CHECK(text_of(f, "string.utf8") == "\"na\xc3\xafve \xe2\x98\x83 \\\"quoted\\\"\\ttab\"");
    CHECK(text_of(f, "string.empty") == "\"\"");
}

TEST_CASE("arrays of every element type render in brackets, nested arrays inside") {
    const std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    const File f = File::parse(bytes, "all");
    CHECK(text_of(f, "array.u8") == "[0, 1, 255]");
    CHECK(text_of(f, "array.i8") == "[-1, 127]");
    CHECK(text_of(f, "array.u16") == "[1, 65535]");
    CHECK(text_of(f, "array.i16") == "[-2, 300]");
    CHECK(text_of(f, "array.u32") == "[7, 8, 9]");
    CHECK(text_of(f, "array.i32") == "[-7, 70000]");
    CHECK(text_of(f, "array.f32") == "[1.5, -0, inf, nan]");
    CHECK(text_of(f, "array.bool") == "[true, false, true]");
    CHECK(text_of(f, "array.string") == "[\"a\", \"\", \"\xc3\xbcn\xc3\xaf\"]");
    CHECK(text_of(f, "array.u64") == "[9223372036854775808]");
    CHECK(text_of(f, "array.i64") == "[-5, 1099511627776]");
    CHECK(text_of(f, "array.f64") == "[0.1, -1e+300]");
    CHECK(text_of(f, "array.empty") == "[]");
    CHECK(text_of(f, "array.nested") == "[[1, 2], [3]]");
    CHECK(text_of(f, "array.nested3") == "[[[\"x\"], [\"y\", \"z\"]], []]");
}

TEST_CASE("arrays past the element limit are shortened at every level, with a count of the rest") {
    const std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    const File f = File::parse(bytes, "all");
    CHECK(text_of(f, "array.u32", 2) == "[7, 8, ... (1 more)]");
    CHECK(text_of(f, "array.u32", 3) == "[7, 8, 9]");
    CHECK(text_of(f, "array.u32", 0) == "[... (3 more)]");
    CHECK(text_of(f, "array.nested", 1) == "[[1, ... (1 more)], ... (1 more)]");
    CHECK(text_of(f, "array.nested3", 1) == "[[[\"x\"], ... (1 more)], ... (1 more)]");
    CHECK(text_of(f, "u32.max", 0) == "4294967295");  // scalars are never shortened
}

TEST_CASE("value type labels name an array's element type and count") {
    const std::vector<uint8_t> bytes = fixtures::all_value_types().write_to_memory();
    const File f = File::parse(bytes, "all");
    CHECK(value_type_label(get(f, "u8.max")) == "u8");
    CHECK(value_type_label(get(f, "string.empty")) == "str");
    CHECK(value_type_label(get(f, "array.i32")) == "arr[i32,2]");
    CHECK(value_type_label(get(f, "array.nested")) == "arr[arr,2]");
    CHECK(value_type_label(get(f, "array.empty")) == "arr[u32,0]");
}

TEST_CASE("escaping: quotes, backslashes and control bytes (DEL too) escaped; UTF-8 and other high bytes kept") {
    CHECK(escaped("plain") == "plain");
    CHECK(escaped("a\"b\\c") == "a\\\"b\\\\c");
    CHECK(escaped("\n\t\r") == "\\n\\t\\r");
    CHECK(escaped(std::string_view("\0\x01\x1f\x7f", 4)) == "\\x00\\x01\\x1f\\x7f");
    CHECK(escaped(" ~\xc3\xa9\xff") == " ~\xc3\xa9\xff");  // bytes of 0x80 and above pass through
    CHECK(quoted("") == "\"\"");
    CHECK(quoted("say \"hi\"\n") == "\"say \\\"hi\\\"\\n\"");
}
