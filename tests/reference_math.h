// The double-precision pieces of the tests' reference transformers (test_infer's in GGUF's
// conventions, test_convert's in Hugging Face's).
#pragma once

#include <cmath>
#include <vector>

namespace test {

using Vec = std::vector<double>;

// x / sqrt(mean(x^2) + eps) x w.
inline Vec rms_norm(const Vec& x, const std::vector<float>& w, double eps) {
    double ms = 0;
    for (double v : x) ms += v * v;
    ms /= static_cast<double>(x.size());
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
    return y;
}

// y = W x for `rows` rows of x.size() values, row-major.
inline Vec linear(const std::vector<float>& w, const Vec& x, size_t rows) {
    Vec y(rows, 0.0);
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < x.size(); ++c) y[r] += w[r * x.size() + c] * x[c];
    return y;
}

}  // namespace test
