#include "gguf/types.h"

#include "text.h"

namespace gguf {

std::optional<TypeId> type_from_name(std::string_view name) {
    for (const TypeInfo& t : detail::kTypes)
        if (!t.retired && detail::iequal(t.name, name)) return t.id;
    return std::nullopt;
}

}  // namespace gguf
