// Metadata values: the 13 GGUF value types, zero-copy views into a mapped file, and an
// owned form for building values to write.
#pragma once

#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gguf {

// The u32 value-type tag that precedes every metadata value (and every array's elements).
enum class ValueType : uint32_t {
    U8 = 0,       // 1-byte unsigned integer
    I8 = 1,       // 1-byte two's-complement integer
    U16 = 2,      // 2-byte unsigned integer
    I16 = 3,      // 2-byte signed integer
    U32 = 4,      // 4-byte unsigned integer
    I32 = 5,      // 4-byte signed integer
    F32 = 6,      // IEEE-754 binary32
    Bool = 7,     // 1 byte; 0 is false, 1 is true, anything else is invalid
    String = 8,   // length (u64; u32 in version 1) then that many bytes, no terminator
    Array = 9,    // element type (u32), count (u64; u32 in version 1), then the elements
    U64 = 10,     // 8-byte unsigned integer
    I64 = 11,     // 8-byte signed integer
    F64 = 12,     // IEEE-754 binary64
};
inline constexpr uint32_t kValueTypeCount = 13;

// Short names as llama.cpp prints them: "u8", "i32", "f32", "bool", "str", "arr", ...
std::string_view value_type_name(ValueType t);
// Bytes of one element of a fixed-size type; 0 for String and Array.
uint32_t value_type_size(ValueType t);

// How the numbers of a file are encoded: byte order, and the width of lengths and counts.
struct Encoding {
    bool big_endian = false;
    bool narrow_counts = false;  // version 1: string lengths, array counts are u32
    uint32_t count_bytes() const { return narrow_counts ? 4 : 8; }
};

class ArrayView;

// A view of one value inside a mapped file (or another buffer that outlives it).
class Value {
public:
    Value() = default;
    static Value scalar(ValueType t, const uint8_t* p, Encoding e) { return Value(t, p, value_type_size(t), e); }
    static Value string(const uint8_t* chars, uint64_t length, Encoding e) { return Value(ValueType::String, chars, length, e); }
    static Value array(ValueType elem, uint64_t count, const uint8_t* first, uint64_t bytes, Encoding e);

    ValueType type() const { return type_; }
    Encoding encoding() const { return enc_; }

    // Exact accessors: throw std::logic_error when the type differs.
    uint8_t u8() const { return get<uint8_t>(ValueType::U8); }
    int8_t i8() const { return get<int8_t>(ValueType::I8); }
    uint16_t u16() const { return get<uint16_t>(ValueType::U16); }
    int16_t i16() const { return get<int16_t>(ValueType::I16); }
    uint32_t u32() const { return get<uint32_t>(ValueType::U32); }
    int32_t i32() const { return get<int32_t>(ValueType::I32); }
    uint64_t u64() const { return get<uint64_t>(ValueType::U64); }
    int64_t i64() const { return get<int64_t>(ValueType::I64); }
    float f32() const { return get<float>(ValueType::F32); }
    double f64() const { return get<double>(ValueType::F64); }
    bool boolean() const;
    std::string_view str() const;
    ArrayView array() const;

    bool is_integer() const;
    bool is_float() const { return type_ == ValueType::F32 || type_ == ValueType::F64; }
    // Any integer type widened; throws std::logic_error for other types.
    int64_t as_int() const;   // u64 above INT64_MAX throws
    uint64_t as_uint() const; // negative values throw
    double as_double() const; // any integer or float type

    // A scalar's bits in host order, zero-extended (a bool's raw byte, a float's pattern).
    uint64_t raw_bits() const;

private:
    Value(ValueType t, const uint8_t* p, uint64_t n, Encoding e) : type_(t), enc_(e), data_(p), size_(n) {}
    template <class T> T get(ValueType want) const;
    template <class T> T load() const;

    ValueType type_ = ValueType::U8;
    Encoding enc_;
    const uint8_t* data_ = nullptr;  // scalar bytes; string characters; first array element
    uint64_t size_ = 0;              // bytes at data_
    ValueType elem_ = ValueType::U8; // arrays only
    uint64_t count_ = 0;             // arrays only
};

// The elements of an array value. Fixed-size elements have random access; strings and
// nested arrays are reached by forward iteration (their lengths vary).
class ArrayView {
public:
    ArrayView() = default;
    ArrayView(ValueType elem, uint64_t count, const uint8_t* first, uint64_t bytes, Encoding e)
        : elem_(elem), count_(count), first_(first), bytes_(bytes), enc_(e) {}

    ValueType element_type() const { return elem_; }
    uint64_t size() const { return count_; }
    bool empty() const { return count_ == 0; }
    uint64_t byte_size() const { return bytes_; }
    // The elements as the file stores them: fixed-size ones back to back in its byte order;
    // strings and nested arrays with their length and count prefixes.
    std::span<const uint8_t> bytes() const { return {first_, static_cast<size_t>(bytes_)}; }

    // Element i of a fixed-size array; throws std::logic_error for strings and arrays.
    Value at(uint64_t i) const;

    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = Value;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        iterator(const ArrayView* a, const uint8_t* p, uint64_t i) : array_(a), p_(p), index_(i) {}
        Value operator*() const;
        iterator& operator++();
        iterator operator++(int) { iterator t = *this; ++*this; return t; }
        bool operator==(const iterator& o) const { return index_ == o.index_; }
    private:
        const ArrayView* array_ = nullptr;
        const uint8_t* p_ = nullptr;
        uint64_t index_ = 0;
    };
    iterator begin() const { return iterator(this, first_, 0); }
    iterator end() const { return iterator(this, nullptr, count_); }

private:
    ValueType elem_ = ValueType::U8;
    uint64_t count_ = 0;
    const uint8_t* first_ = nullptr;
    uint64_t bytes_ = 0;
    Encoding enc_;
};

// An owned metadata value, for building files.
//
// An array keeps its elements the way a file does, not one OwnedValue per element, so a
// 256k-token vocabulary costs about its bytes: fixed-size elements (numbers, bools) are one
// byte vector in little-endian order; strings are one character buffer and the end offset
// of each; only an array of arrays (rare) holds a child OwnedValue per element.
class OwnedValue {
public:
    OwnedValue() = default;  // u8 0

    static OwnedValue u8(uint8_t v) { return make(ValueType::U8, v); }
    static OwnedValue i8(int8_t v) { return make(ValueType::I8, static_cast<uint8_t>(v)); }
    static OwnedValue u16(uint16_t v) { return make(ValueType::U16, v); }
    static OwnedValue i16(int16_t v) { return make(ValueType::I16, static_cast<uint16_t>(v)); }
    static OwnedValue u32(uint32_t v) { return make(ValueType::U32, v); }
    static OwnedValue i32(int32_t v) { return make(ValueType::I32, static_cast<uint32_t>(v)); }
    static OwnedValue u64(uint64_t v) { return make(ValueType::U64, v); }
    static OwnedValue i64(int64_t v) { return make(ValueType::I64, static_cast<uint64_t>(v)); }
    static OwnedValue f32(float v) { uint32_t b; std::memcpy(&b, &v, 4); return make(ValueType::F32, b); }
    static OwnedValue f64(double v) { uint64_t b; std::memcpy(&b, &v, 8); return make(ValueType::F64, b); }
    static OwnedValue boolean(bool v) { return make(ValueType::Bool, v ? 1 : 0); }
    static OwnedValue string(std::string s) { OwnedValue o; o.type_ = ValueType::String; o.chars_ = std::move(s); return o; }
    // An array of `elem`; throws std::invalid_argument for an item of another type.
    static OwnedValue array(ValueType elem, std::vector<OwnedValue> items);
    static OwnedValue strings(const std::vector<std::string>& v);
    // An array of `elem` from plain numbers, make_one(x) giving each element (OwnedValue::f32, ...).
    template <class T, class Make> static OwnedValue numbers(ValueType elem, const std::vector<T>& v, Make make_one) {
        OwnedValue o = empty_array(elem);
        o.reserve(v.size());
        for (const T& x : v) o.push_back(make_one(x));
        return o;
    }
    // A deep copy of a view; a numeric array is copied from the file's bytes in one go.
    static OwnedValue from(const Value& v);

    // Appends to an array; throws std::invalid_argument when item's type is not the element type.
    void push_back(const OwnedValue& item);
    void reserve(uint64_t n);  // room for n elements of an array (characters not included)

    ValueType type() const { return type_; }
    // A scalar's bits, zero-extended (a float's pattern, a bool's byte).
    uint64_t bits() const { return bits_; }
    // A String's bytes; throws std::logic_error for other types.
    std::string_view str() const;

    // Arrays; these throw std::logic_error for other types.
    ValueType element_type() const;
    uint64_t size() const;
    bool empty() const { return size() == 0; }
    // Element i of a numeric, bool or string array as a value of its own (std::out_of_range past the end).
    OwnedValue at(uint64_t i) const;
    // Element i of a string array, without a copy.
    std::string_view string_at(uint64_t i) const;
    // Element i of an array of arrays.
    const OwnedValue& array_at(uint64_t i) const;
    // A numeric or bool array's elements back to back, each little-endian (as a
    // little-endian file stores them; a big-endian writer swaps each element).
    std::span<const uint8_t> element_bytes() const;

private:
    static OwnedValue make(ValueType t, uint64_t bits) { OwnedValue o; o.type_ = t; o.bits_ = bits; return o; }
    static OwnedValue empty_array(ValueType elem);
    void check_element(const OwnedValue& item) const;  // item's type is the element type
    void check_index(uint64_t i, bool applies, std::string_view accessor) const;

    ValueType type_ = ValueType::U8;
    uint64_t bits_ = 0;                 // scalars
    ValueType elem_ = ValueType::U8;    // arrays
    uint64_t count_ = 0;                // arrays: elements
    std::string chars_;                 // String; a string array's elements back to back
    std::vector<uint64_t> ends_;        // string array: where element i ends in chars_
    std::vector<uint8_t> fixed_;        // numeric or bool array: the elements, little-endian
    std::vector<OwnedValue> children_;  // array of arrays
};

}  // namespace gguf
