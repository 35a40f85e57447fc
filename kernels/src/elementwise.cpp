#include "kernels/elementwise.h"

#include <stdexcept>
#include <string>

#include "exp.h"

namespace kernels {

void exp_in_place(std::span<float> x) {
    float* p = x.data();
    for (size_t i = 0; i < x.size(); ++i) p[i] = detail::exp_f32(p[i]);
}

void silu_mul(std::span<float> gate, std::span<const float> up) {
    if (gate.size() != up.size())
        throw std::invalid_argument("kernels: silu_mul of " + std::to_string(gate.size()) + " gates by " + std::to_string(up.size()) + " values");
    float* g = gate.data();
    const float* u = up.data();
    for (size_t i = 0; i < gate.size(); ++i) g[i] = g[i] / (1.0f + detail::exp_f32(-g[i])) * u[i];
}

}  // namespace kernels
