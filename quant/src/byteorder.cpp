#include "quant/byteorder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "quant/blocks.h"

namespace quant {

namespace {

struct Field {
    uint16_t offset;
    uint8_t size;  // bytes: 2 (f16), 4 (a u32 bit field)
};

// The multi-byte fields of each block layout; every other byte is a byte.
struct Layout {
    gguf::TypeId type;
    std::vector<Field> fields;
};

const std::vector<Layout>& layouts() {
    using gguf::TypeId;
    static const std::vector<Layout> table = {
        {TypeId::Q4_0, {{offsetof(BlockQ4_0, d), 2}}},
        {TypeId::Q4_1, {{offsetof(BlockQ4_1, d), 2}, {offsetof(BlockQ4_1, m), 2}}},
        {TypeId::Q5_0, {{offsetof(BlockQ5_0, d), 2}, {offsetof(BlockQ5_0, qh), 4}}},  // qh is read as one u32
        {TypeId::Q5_1, {{offsetof(BlockQ5_1, d), 2}, {offsetof(BlockQ5_1, m), 2}, {offsetof(BlockQ5_1, qh), 4}}},
        {TypeId::Q8_0, {{offsetof(BlockQ8_0, d), 2}}},
        {TypeId::Q2_K, {{offsetof(BlockQ2_K, d), 2}, {offsetof(BlockQ2_K, dmin), 2}}},
        {TypeId::Q3_K, {{offsetof(BlockQ3_K, d), 2}}},
        {TypeId::Q4_K, {{offsetof(BlockQ4_K, d), 2}, {offsetof(BlockQ4_K, dmin), 2}}},
        {TypeId::Q5_K, {{offsetof(BlockQ5_K, d), 2}, {offsetof(BlockQ5_K, dmin), 2}}},
        {TypeId::Q6_K, {{offsetof(BlockQ6_K, d), 2}}},
        {TypeId::TQ1_0, {{offsetof(BlockTQ1_0, d), 2}}},
        {TypeId::TQ2_0, {{offsetof(BlockTQ2_0, d), 2}}},
        {TypeId::MXFP4, {}},  // one-byte scale and codes
        {TypeId::NVFP4, {}},
    };
    return table;
}

// Plain numbers: the element size.
unsigned element_size(gguf::TypeId t) {
    using gguf::TypeId;
    switch (t) {
        case TypeId::F16: case TypeId::BF16: case TypeId::I16: return 2;
        case TypeId::F32: case TypeId::I32: return 4;
        case TypeId::F64: case TypeId::I64: return 8;
        case TypeId::I8: return 1;
        default: return 0;
    }
}

const Layout* layout_of(gguf::TypeId t) {
    const auto& all = layouts();
    auto it = std::find_if(all.begin(), all.end(), [t](const Layout& l) { return l.type == t; });
    return it == all.end() ? nullptr : &*it;
}

}  // namespace

bool can_swap_byte_order(gguf::TypeId type) { return element_size(type) != 0 || layout_of(type) != nullptr; }

void swap_byte_order(gguf::TypeId type, std::span<uint8_t> data) {
    const gguf::TypeInfo& info = gguf::type_info(type);
    if (!can_swap_byte_order(type))
        throw std::invalid_argument(fmt::format("{}: its block fields are not known here, so its byte order cannot be changed", info.name));
    if (const unsigned size = element_size(type)) {
        if (data.size() % size) throw std::invalid_argument(fmt::format("{}: {} bytes are not whole elements", info.name, data.size()));
        for (size_t i = 0; i < data.size(); i += size) std::reverse(data.begin() + static_cast<std::ptrdiff_t>(i), data.begin() + static_cast<std::ptrdiff_t>(i + size));
        return;
    }
    const size_t block = info.type_size;
    if (data.size() % block) throw std::invalid_argument(fmt::format("{}: {} bytes are not whole blocks of {}", info.name, data.size(), block));
    const Layout& l = *layout_of(type);
    for (size_t b = 0; b < data.size(); b += block)
        for (const Field& f : l.fields) {
            auto first = data.begin() + static_cast<std::ptrdiff_t>(b + f.offset);
            std::reverse(first, first + f.size);
        }
}

}  // namespace quant
