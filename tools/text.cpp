#include "text.h"

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>

namespace gguf::tools {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot read the text file");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

namespace {
// n divided by `base` until it is below base, with the unit it reached; units[0] is for n itself.
std::string scaled(uint64_t n, double base, std::span<const char* const> units) {
    double v = static_cast<double>(n);
    size_t u = 0;
    while (v >= base && u + 1 < units.size()) {
        v /= base;
        ++u;
    }
    return u == 0 ? fmt::format("{}{}", n, units[0]) : fmt::format("{:.2f}{}", v, units[u]);
}
}  // namespace

std::string human_bytes(uint64_t n) {
    static constexpr const char* units[] = {" B", " KiB", " MiB", " GiB", " TiB", " PiB"};
    return scaled(n, 1024, units);
}

std::string human_count(uint64_t n) {
    static constexpr const char* units[] = {"", " K", " M", " B", " T"};
    return scaled(n, 1000, units);
}

}  // namespace gguf::tools
