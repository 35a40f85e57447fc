#include "gguf/value.h"

#include <array>
#include <limits>
#include <stdexcept>
#include <string>

#include "byte_order.h"

namespace gguf {

namespace {
constexpr std::array<std::string_view, kValueTypeCount> kNames = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
constexpr std::array<uint32_t, kValueTypeCount> kSizes = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

[[noreturn]] void wrong_type(ValueType have, std::string_view want) {
    throw std::logic_error("metadata value is " + std::string(value_type_name(have)) + ", not " + std::string(want));
}

// Bytes taken by the nested array that starts at p (its type tag and count included).
uint64_t nested_array_bytes(const uint8_t* p, Encoding e);

// Bytes taken by one element of type t that starts at p.
uint64_t element_bytes(ValueType t, const uint8_t* p, Encoding e) {
    if (t == ValueType::String) return e.count_bytes() + detail::load_count(p, e.big_endian, e.narrow_counts);
    if (t == ValueType::Array) return nested_array_bytes(p, e);
    return value_type_size(t);
}

uint64_t nested_array_bytes(const uint8_t* p, Encoding e) {
    auto elem = static_cast<ValueType>(detail::load<uint32_t>(p, e.big_endian));
    uint64_t count = detail::load_count(p + 4, e.big_endian, e.narrow_counts);
    uint64_t header = 4 + e.count_bytes();
    if (value_type_size(elem) != 0) return header + count * value_type_size(elem);
    const uint8_t* q = p + header;
    for (uint64_t i = 0; i < count; ++i) q += element_bytes(elem, q, e);
    return static_cast<uint64_t>(q - p);
}
}  // namespace

std::string_view value_type_name(ValueType t) {
    auto i = static_cast<uint32_t>(t);
    return i < kValueTypeCount ? kNames[i] : std::string_view("?");
}

uint32_t value_type_size(ValueType t) {
    auto i = static_cast<uint32_t>(t);
    return i < kValueTypeCount ? kSizes[i] : 0;
}

Value Value::array(ValueType elem, uint64_t count, const uint8_t* first, uint64_t bytes, Encoding e) {
    Value v(ValueType::Array, first, bytes, e);
    v.elem_ = elem;
    v.count_ = count;
    return v;
}

template <class T> T Value::load() const { return detail::load<T>(data_, enc_.big_endian); }

template <class T> T Value::get(ValueType want) const {
    if (type_ != want) wrong_type(type_, value_type_name(want));
    return load<T>();
}

bool Value::boolean() const {
    if (type_ != ValueType::Bool) wrong_type(type_, "bool");
    return *data_ != 0;
}

std::string_view Value::str() const {
    if (type_ != ValueType::String) wrong_type(type_, "str");
    return {reinterpret_cast<const char*>(data_), static_cast<size_t>(size_)};
}

ArrayView Value::array() const {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    return ArrayView(elem_, count_, data_, size_, enc_);
}

uint64_t Value::raw_bits() const {
    switch (value_type_size(type_)) {
        case 1: return load<uint8_t>();
        case 2: return load<uint16_t>();
        case 4: return load<uint32_t>();
        case 8: return load<uint64_t>();
        default: wrong_type(type_, "a scalar");
    }
}

bool Value::is_integer() const {
    switch (type_) {
        case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
        case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64: return true;
        default: return false;
    }
}

int64_t Value::as_int() const {
    switch (type_) {
        case ValueType::U8: return load<uint8_t>();
        case ValueType::I8: return load<int8_t>();
        case ValueType::U16: return load<uint16_t>();
        case ValueType::I16: return load<int16_t>();
        case ValueType::U32: return load<uint32_t>();
        case ValueType::I32: return load<int32_t>();
        case ValueType::I64: return load<int64_t>();
        case ValueType::U64: {
            uint64_t v = load<uint64_t>();
            if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw std::logic_error("u64 value " + std::to_string(v) + " does not fit in i64");
            return static_cast<int64_t>(v);
        }
        default: wrong_type(type_, "an integer");
    }
}

uint64_t Value::as_uint() const {
    if (type_ == ValueType::U64) return load<uint64_t>();
    int64_t v = as_int();
    if (v < 0) throw std::logic_error("negative value " + std::to_string(v) + " where an unsigned one is needed");
    return static_cast<uint64_t>(v);
}

double Value::as_double() const {
    if (type_ == ValueType::F32) return load<float>();
    if (type_ == ValueType::F64) return load<double>();
    if (type_ == ValueType::U64) return static_cast<double>(load<uint64_t>());
    return static_cast<double>(as_int());
}

Value ArrayView::at(uint64_t i) const {
    uint32_t size = value_type_size(elem_);
    if (size == 0) throw std::logic_error("ArrayView::at needs fixed-size elements; iterate strings and arrays");
    if (i >= count_) throw std::out_of_range("array index " + std::to_string(i) + " of " + std::to_string(count_));
    return Value::scalar(elem_, first_ + i * size, enc_);
}

Value ArrayView::iterator::operator*() const {
    const Encoding e = array_->enc_;
    switch (array_->elem_) {
        case ValueType::String: {
            uint64_t n = detail::load_count(p_, e.big_endian, e.narrow_counts);
            return Value::string(p_ + e.count_bytes(), n, e);
        }
        case ValueType::Array: {
            auto elem = static_cast<ValueType>(detail::load<uint32_t>(p_, e.big_endian));
            uint64_t count = detail::load_count(p_ + 4, e.big_endian, e.narrow_counts);
            uint64_t header = 4 + e.count_bytes();
            return Value::array(elem, count, p_ + header, nested_array_bytes(p_, e) - header, e);
        }
        default: return Value::scalar(array_->elem_, p_, e);
    }
}

ArrayView::iterator& ArrayView::iterator::operator++() {
    p_ += element_bytes(array_->elem_, p_, array_->enc_);
    ++index_;
    return *this;
}

OwnedValue OwnedValue::array(ValueType elem, std::vector<OwnedValue> items) {
    OwnedValue o;
    o.type = ValueType::Array;
    o.element_type = elem;
    for (const OwnedValue& item : items)
        if (item.type != elem) throw std::invalid_argument("array element of type " + std::string(value_type_name(item.type)) +
                                                           " in an array of " + std::string(value_type_name(elem)));
    o.items = std::move(items);
    return o;
}

OwnedValue OwnedValue::strings(const std::vector<std::string>& v) {
    std::vector<OwnedValue> items;
    items.reserve(v.size());
    for (const std::string& s : v) items.push_back(string(s));
    return array(ValueType::String, std::move(items));
}

OwnedValue OwnedValue::from(const Value& v) {
    switch (v.type()) {
        case ValueType::String: return string(std::string(v.str()));
        case ValueType::Array: {
            ArrayView a = v.array();
            std::vector<OwnedValue> items;
            items.reserve(a.size());
            for (Value x : a) items.push_back(from(x));
            OwnedValue o;
            o.type = ValueType::Array;
            o.element_type = a.element_type();
            o.items = std::move(items);
            return o;
        }
        default: return make(v.type(), v.raw_bits());
    }
}

}  // namespace gguf

namespace gguf {
// The exact accessors in value.h are inline calls of these.
template uint8_t Value::get<uint8_t>(ValueType) const;
template int8_t Value::get<int8_t>(ValueType) const;
template uint16_t Value::get<uint16_t>(ValueType) const;
template int16_t Value::get<int16_t>(ValueType) const;
template uint32_t Value::get<uint32_t>(ValueType) const;
template int32_t Value::get<int32_t>(ValueType) const;
template uint64_t Value::get<uint64_t>(ValueType) const;
template int64_t Value::get<int64_t>(ValueType) const;
template float Value::get<float>(ValueType) const;
template double Value::get<double>(ValueType) const;
}  // namespace gguf
