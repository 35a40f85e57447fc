#include "gguf/types.h"

#include "gguf/names.h"

namespace gguf {

std::optional<TypeId> type_from_name(std::string_view name) {
    for (const TypeInfo& t : detail::kTypes)
        if (!t.retired && equal_ignoring_case(t.name, name)) return t.id;
    return std::nullopt;
}

}  // namespace gguf
