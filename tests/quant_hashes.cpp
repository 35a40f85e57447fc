// Prints, per quantizable type, a hash of the bytes quantizing a fixed input writes (with
// importance weights and, where the type allows, without). Built twice, against quant and
// against quant_portable (no AVX2 clones); the `same-bytes-without-avx2` test requires the
// two outputs to be equal: every CPU must write the same file.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "quant/quant.h"

int main() {
    constexpr int kRows = 8, kCols = 512;
    std::vector<float> x(kRows * kCols), importance(kCols);
    uint32_t state = 12345;
    auto next = [&] {  // a fixed sequence on every platform (xorshift), roughly normal by summing
        float sum = 0;
        for (int k = 0; k < 4; ++k) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            sum += static_cast<float>(state) / 4294967296.0f - 0.5f;
        }
        return sum;
    };
    for (float& v : x) v = 0.02f * next();
    for (int c = 0; c < kCols; c += 37) x[static_cast<size_t>(c)] *= 20.0f;  // outliers
    for (float& v : importance) v = std::fabs(next()) + 0.01f;
    for (uint32_t id = 0; id < 64; ++id) {
        const auto type = static_cast<gguf::TypeId>(id);
        if (!quant::can_quantize(type) || kCols % gguf::type_info(type).block_size != 0) continue;
        std::vector<uint8_t> out(quant::row_bytes(type, kCols) * kRows);
        for (const bool weighted : {false, true})
            for (const quant::Effort effort : quant::kEfforts) {  // every effort a type has
                if (!weighted && quant::needs_importance(type)) continue;
                if (effort != quant::Effort::Default && !(effort == quant::Effort::Fast ? quant::traits(type)->fast : quant::traits(type)->best)) continue;
                quant::quantize(type, x, kCols, weighted ? std::span<const float>(importance) : std::span<const float>(), out, 0, effort);
                uint64_t h = 1469598103934665603ull;
                for (uint8_t b : out) h = (h ^ b) * 1099511628211ull;
                std::printf("%-8s %-9s %-8s %016llx\n", std::string(gguf::type_info(type).name).c_str(), weighted ? "imatrix" : "plain",
                            std::string(quant::effort_name(effort)).c_str(), static_cast<unsigned long long>(h));
            }
    }
    return 0;
}
