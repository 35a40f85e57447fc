#include "gguf/error.h"

#include <fmt/format.h>

namespace gguf {

static std::string compose(const std::string& file, std::optional<uint64_t> offset, const std::string& message) {
    return offset ? fmt::format("{}: offset {}: {}", file, *offset, message) : fmt::format("{}: {}", file, message);
}

Error::Error(std::string file, std::optional<uint64_t> offset, std::string message)
    : std::runtime_error(compose(file, offset, message)), file_(std::move(file)), offset_(offset), message_(std::move(message)) {}

}  // namespace gguf
