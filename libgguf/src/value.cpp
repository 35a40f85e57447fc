#include "gguf/value.h"

#include <algorithm>
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

OwnedValue OwnedValue::empty_array(ValueType elem) {
    OwnedValue o;
    o.type_ = ValueType::Array;
    o.elem_ = elem;
    return o;
}

OwnedValue OwnedValue::array(ValueType elem, std::vector<OwnedValue> items) {
    OwnedValue o = empty_array(elem);
    if (elem == ValueType::Array) {
        for (const OwnedValue& item : items) o.check_element(item);
        o.count_ = items.size();
        o.children_ = std::move(items);
        return o;
    }
    o.reserve(items.size());
    if (elem == ValueType::String) {
        size_t chars = 0;
        for (const OwnedValue& item : items) chars += item.chars_.size();
        o.chars_.reserve(chars);
    }
    for (const OwnedValue& item : items) o.push_back(item);
    return o;
}

OwnedValue OwnedValue::strings(const std::vector<std::string>& v) {
    OwnedValue o = empty_array(ValueType::String);
    size_t chars = 0;
    for (const std::string& s : v) chars += s.size();
    o.chars_.reserve(chars);
    o.ends_.reserve(v.size());
    for (const std::string& s : v) {
        o.chars_ += s;
        o.ends_.push_back(o.chars_.size());
    }
    o.count_ = v.size();
    return o;
}

OwnedValue OwnedValue::from(const Value& v) {
    if (v.type() == ValueType::String) return string(std::string(v.str()));
    if (v.type() != ValueType::Array) return make(v.type(), v.raw_bits());
    const ArrayView a = v.array();
    OwnedValue o = empty_array(a.element_type());
    o.count_ = a.size();
    if (const uint32_t size = value_type_size(a.element_type()); size != 0) {
        // The file's bytes are the elements already; a big-endian file's need each swapped.
        const std::span<const uint8_t> bytes = a.bytes();
        o.fixed_.assign(bytes.begin(), bytes.end());
        if (v.encoding().big_endian)
            for (auto p = o.fixed_.begin(); p != o.fixed_.end(); p += size) std::reverse(p, p + size);
    } else if (a.element_type() == ValueType::String) {
        // What the array's bytes hold besides the characters is one length per element.
        const uint64_t lengths = a.size() * v.encoding().count_bytes();
        o.chars_.reserve(static_cast<size_t>(a.byte_size() > lengths ? a.byte_size() - lengths : 0));
        o.ends_.reserve(static_cast<size_t>(a.size()));
        for (Value x : a) {
            o.chars_ += x.str();
            o.ends_.push_back(o.chars_.size());
        }
    } else {
        o.children_.reserve(static_cast<size_t>(a.size()));
        for (Value x : a) o.children_.push_back(from(x));
    }
    return o;
}

void OwnedValue::check_element(const OwnedValue& item) const {
    if (item.type_ != elem_)
        throw std::invalid_argument("array element of type " + std::string(value_type_name(item.type_)) + " in an array of " +
                                    std::string(value_type_name(elem_)));
}

void OwnedValue::push_back(const OwnedValue& item) {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    check_element(item);
    if (elem_ == ValueType::String) {
        chars_ += item.chars_;
        ends_.push_back(chars_.size());
    } else if (elem_ == ValueType::Array) {
        children_.push_back(item);
    } else {
        for (uint32_t k = 0; k < value_type_size(elem_); ++k) fixed_.push_back(static_cast<uint8_t>(item.bits_ >> (8 * k)));
    }
    ++count_;
}

void OwnedValue::reserve(uint64_t n) {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    if (elem_ == ValueType::String) ends_.reserve(static_cast<size_t>(n));
    else if (elem_ == ValueType::Array) children_.reserve(static_cast<size_t>(n));
    else fixed_.reserve(static_cast<size_t>(n * value_type_size(elem_)));
}

std::string_view OwnedValue::str() const {
    if (type_ != ValueType::String) wrong_type(type_, "str");
    return chars_;
}

ValueType OwnedValue::element_type() const {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    return elem_;
}

uint64_t OwnedValue::size() const {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    return count_;
}

void OwnedValue::check_index(uint64_t i, bool applies, std::string_view accessor) const {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    if (!applies) throw std::logic_error(std::string(accessor) + " does not apply to an array of " + std::string(value_type_name(elem_)));
    if (i >= count_) throw std::out_of_range("array index " + std::to_string(i) + " of " + std::to_string(count_));
}

OwnedValue OwnedValue::at(uint64_t i) const {
    check_index(i, elem_ != ValueType::Array, "OwnedValue::at (use array_at)");
    if (elem_ == ValueType::String) return string(std::string(string_at(i)));
    const uint32_t size = value_type_size(elem_);
    uint64_t bits = 0;
    for (uint32_t k = 0; k < size; ++k) bits |= uint64_t{fixed_[static_cast<size_t>(i * size + k)]} << (8 * k);
    return make(elem_, bits);
}

std::string_view OwnedValue::string_at(uint64_t i) const {
    check_index(i, elem_ == ValueType::String, "OwnedValue::string_at");
    const uint64_t begin = i == 0 ? 0 : ends_[static_cast<size_t>(i - 1)];
    return std::string_view(chars_).substr(static_cast<size_t>(begin), static_cast<size_t>(ends_[static_cast<size_t>(i)] - begin));
}

const OwnedValue& OwnedValue::array_at(uint64_t i) const {
    check_index(i, elem_ == ValueType::Array, "OwnedValue::array_at");
    return children_[static_cast<size_t>(i)];
}

std::span<const uint8_t> OwnedValue::element_bytes() const {
    if (type_ != ValueType::Array) wrong_type(type_, "arr");
    if (value_type_size(elem_) == 0)
        throw std::logic_error("OwnedValue::element_bytes needs fixed-size elements, not " + std::string(value_type_name(elem_)));
    return fixed_;
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
