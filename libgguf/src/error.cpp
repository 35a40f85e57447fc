#include "gguf/error.h"

#include <fmt/format.h>

namespace gguf {

static std::string compose(const std::string& file, std::optional<uint64_t> offset, const std::string& message) {
    return offset ? fmt::format("{}: offset {}: {}", file, *offset, message) : fmt::format("{}: {}", file, message);
}

Error::Error(std::string file, std::optional<uint64_t> offset, std::string message)
    : std::runtime_error(compose(file, offset, message)), file_(std::move(file)), offset_(offset), message_(std::move(message)) {}

void refuse_overwrite(const std::filesystem::path& output, const std::filesystem::path& input) {
    std::error_code ec;
    if (output == input || std::filesystem::equivalent(output, input, ec))
        throw Error(output.string(), std::nullopt, fmt::format("the output would replace the input {}; name another file", input.string()));
}

}  // namespace gguf
