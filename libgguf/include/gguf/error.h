// Errors from reading or writing GGUF files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace gguf {

// Thrown for malformed input or a failed write. what() reads
// "<file>: offset <n>: <message>" (the offset part only when one is known), so a tool can
// print it as one line.
class Error : public std::runtime_error {
public:
    Error(std::string file, std::optional<uint64_t> offset, std::string message);

    const std::string& file() const { return file_; }
    std::optional<uint64_t> offset() const { return offset_; }
    const std::string& message() const { return message_; }

private:
    std::string file_;
    std::optional<uint64_t> offset_;
    std::string message_;
};

// Throws Error naming `output` when writing it would replace `input` (the same path, or
// another name of the same file): an input is never overwritten.
void refuse_overwrite(const std::filesystem::path& output, const std::filesystem::path& input);

}  // namespace gguf
