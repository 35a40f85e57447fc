#include "text.h"

#include <fmt/format.h>

#include <span>

namespace gguf::tools {

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
