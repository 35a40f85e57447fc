// png_check FILE WIDTH HEIGHT [MIN_COLOURS [MAX_SHARE]]: exits 0 when FILE is a PNG of
// WIDTH x HEIGHT pixels that is not blank (at least MIN_COLOURS distinct colours, default 16,
// and no colour covering more than MAX_SHARE of it, default 0.98), else prints what is wrong
// and exits 1. Used by the viewer's screenshot test.
#include <png.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 4 || argc > 6) {
        std::fprintf(stderr, "usage: png_check FILE WIDTH HEIGHT [MIN_COLOURS [MAX_SHARE]]\n");
        return 2;
    }
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, argv[1])) {
        std::fprintf(stderr, "%s: not a readable PNG: %s\n", argv[1], image.message);
        return 1;
    }
    const unsigned want_w = static_cast<unsigned>(std::atoi(argv[2])), want_h = static_cast<unsigned>(std::atoi(argv[3]));
    if (image.width != want_w || image.height != want_h) {
        std::fprintf(stderr, "%s: %u x %u pixels, expected %u x %u\n", argv[1], image.width, image.height, want_w, want_h);
        png_image_free(&image);
        return 1;
    }
    image.format = PNG_FORMAT_RGBA;
    std::vector<png_byte> pixels(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) {
        std::fprintf(stderr, "%s: cannot decode: %s\n", argv[1], image.message);
        return 1;
    }
    std::map<uint32_t, size_t> colours;
    for (size_t i = 0; i + 3 < pixels.size(); i += 4)
        ++colours[uint32_t(pixels[i]) << 16 | uint32_t(pixels[i + 1]) << 8 | pixels[i + 2]];
    size_t most = 0;
    for (const auto& [c, n] : colours) most = n > most ? n : most;
    const double share = double(most) / double(pixels.size() / 4);
    std::printf("%s: %u x %u, %zu colours, the commonest covers %.1f%%\n", argv[1], image.width, image.height, colours.size(),
                100 * share);
    const size_t min_colours = argc > 4 ? static_cast<size_t>(std::atoi(argv[4])) : 16;
    const double max_share = argc > 5 ? std::atof(argv[5]) : 0.98;
    if (colours.size() < min_colours || share > max_share) {
        std::fprintf(stderr, "%s: looks blank\n", argv[1]);
        return 1;
    }
    return 0;
}
