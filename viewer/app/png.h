// Screenshots: the window's pixels to a PNG file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace viewer::ui {

// Writes width x height RGBA pixels stored bottom row first (as OpenGL reads them) to
// `path` as a PNG, through a temporary file renamed into place. Returns an error message,
// empty on success.
std::string write_png(const std::filesystem::path& path, uint32_t width, uint32_t height, const std::vector<uint8_t>& rgba_bottom_up);

}  // namespace viewer::ui
