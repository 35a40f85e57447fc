#include <fmt/format.h>

#include <stdexcept>

#include "family.h"

namespace quant {

namespace {
detail::TraitsTable make_table() {
    detail::TraitsTable t{};
    for (uint32_t i = 0; i < t.size(); ++i) t[i].type = static_cast<TypeId>(i);
    detail::register_float_formats(t);
    detail::register_legacy(t);
    detail::register_kquants(t);
    detail::register_iquants(t);
    detail::register_microscaling(t);
    detail::register_ternary(t);
    return t;
}
// Built on first use, so callers from other files' static initialisers see it complete.
const detail::TraitsTable& table() {
    static const detail::TraitsTable t = make_table();
    return t;
}
}  // namespace

const Traits* traits(TypeId type) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    return info && !info->retired ? &table()[static_cast<uint32_t>(type)] : nullptr;
}

bool can_dequantize(TypeId type) {
    const Traits* t = traits(type);
    return t && t->dequantize;
}

uint64_t row_bytes(TypeId type, int64_t n) {
    const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
    if (!info || info->retired) throw std::invalid_argument(fmt::format("type id {} has no layout", static_cast<uint32_t>(type)));
    if (n < 0 || n % info->block_size != 0)
        throw std::invalid_argument(fmt::format("row of {} values is not a whole number of {} blocks of {}", n, info->name, info->block_size));
    return static_cast<uint64_t>(n) / info->block_size * info->type_size;
}

void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst) {
    if (!can_dequantize(type)) {
        const gguf::TypeInfo* info = gguf::find_type(static_cast<uint32_t>(type));
        throw std::invalid_argument(fmt::format("cannot dequantize type {}", info ? info->name : "(unknown)"));
    }
    const gguf::TypeInfo& info = gguf::type_info(type);
    const uint64_t bytes = row_bytes(type, static_cast<int64_t>(dst.size()));
    if (src.size() != bytes)
        throw std::invalid_argument(fmt::format("{} values of {} take {} bytes, {} given", dst.size(), info.name, bytes, src.size()));
    traits(type)->dequantize(src.data(), dst.data(), static_cast<int64_t>(dst.size() / info.block_size));
}

}  // namespace quant
