// What convert's import report and compare-methods both measure: a row of values against
// another, into kernels' error sums, where a non-finite value copied as it is (the same bits,
// or NaN for NaN) costs nothing and any other non-finite value shows (as NaN figures).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/error_stats.h"

namespace convert::detail {

// x: the reference, y: what is measured against it; w: one weight per column, or empty.
// `scratch` holds copies when the row has non-finite values.
inline void add_row(kernels::ErrorStats& s, std::span<const float> x, std::span<const float> y, std::span<const float> w, std::vector<float>& scratch) {
    const auto finite = [](float v) { return std::isfinite(v); };
    if (std::all_of(x.begin(), x.end(), finite) && std::all_of(y.begin(), y.end(), finite)) {
        s.add(x, y, w);
        return;
    }
    scratch.assign(x.begin(), x.end());
    scratch.insert(scratch.end(), y.begin(), y.end());
    float* xs = scratch.data();
    float* ys = scratch.data() + x.size();
    for (size_t k = 0; k < x.size(); ++k)
        if (!std::isfinite(xs[k]) && (std::bit_cast<uint32_t>(xs[k]) == std::bit_cast<uint32_t>(ys[k]) || (std::isnan(xs[k]) && std::isnan(ys[k]))))
            xs[k] = ys[k] = 0;
    s.add(std::span<const float>(xs, x.size()), std::span<const float>(ys, y.size()), w);
}

}  // namespace convert::detail
