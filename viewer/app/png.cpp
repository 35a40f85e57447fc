#include "png.h"

#include <png.h>
#include <unistd.h>

#include <system_error>

namespace viewer::ui {

std::string write_png(const std::filesystem::path& path, uint32_t width, uint32_t height, const std::vector<uint8_t>& rgba) {
    if (rgba.size() != size_t{width} * height * 4) return "the pixel buffer does not match the image size";
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    image.format = PNG_FORMAT_RGBA;
    const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
    // A negative row stride: the buffer's last row is the image's first.
    const png_int_32 stride = -static_cast<png_int_32>(width * 4);
    if (!png_image_write_to_file(&image, tmp.c_str(), 0, rgba.data(), stride, nullptr)) {
        std::string message = image.message;
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        return path.string() + ": cannot write the PNG: " + message;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        return path.string() + ": cannot move the PNG into place: " + ec.message();
    }
    return {};
}

}  // namespace viewer::ui
