// Quantization inputs beyond rmse.tsv's two (issue 18: "other seeds, widths that are not
// powers of two, other importance shapes"): generated here from a seed, the same values on
// every machine with the same C library (the normals come from std::log, std::sqrt and
// std::cos in double). tests/data/quant/ggml-generated.tsv holds ggml's RMSE on each, written
// by tests/ggml_generated_rmse.cpp through llama.cpp's own libggml-base; test_quant holds ours
// against it.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

namespace test {

// splitmix64: a small generator whose output is fixed by its seed.
class SplitMix {
public:
    explicit SplitMix(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in (0, 1): 53 bits, never 0.
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1p-53; }
    // Standard normal (Box-Muller, one value a pair of uniforms, drawn in this order: the
    // operands of one expression would be evaluated in an order the compiler chooses).
    double normal() {
        const double radius = uniform();
        const double angle = uniform();
        return std::sqrt(-2.0 * std::log(radius)) * std::cos(2.0 * std::numbers::pi * angle);
    }
    // Student's t with 3 degrees of freedom.
    double student3() {
        const double a = normal();
        const double b = normal();
        const double c = normal();
        const double z = normal();
        return z / std::sqrt((a * a + b * b + c * c) / 3.0);
    }

private:
    uint64_t s_;
};

// How the values are drawn: gauss N(0, 0.02^2); heavy, as rmse.tsv's heavy input, Student-t
// (3 degrees of freedom) x 0.015 with about 1% of the columns x 8; offset, each row normal
// around a mean of its own (up to +-0.02, what the affine types' minimum is for) with
// spread 0.01.
enum class Values { Gauss, Heavy, Offset };
// The importance vector's shape: outlier, 1 + 20 on the heavy input's outlier columns (as
// rmse.tsv's is larger there) times log-normal noise; lognormal, exp(1.5 N(0, 1)); sparse, 1
// + 100 on 2% of the columns; flat, 1 +- 5%.
enum class Importance { Outlier, LogNormal, Sparse, Flat };

struct GeneratedInput {
    std::string name;
    int64_t rows = 0, cols = 0;
    std::vector<float> values, importance;
};

inline GeneratedInput generate_input(Values v, Importance imp, int64_t rows, int64_t cols, uint64_t seed) {
    static const char* const kValues[] = {"gauss", "heavy", "offset"};
    static const char* const kImportance[] = {"outlier", "lognormal", "sparse", "flat"};
    GeneratedInput in;
    in.name = std::string(kValues[static_cast<int>(v)]) + "-" + kImportance[static_cast<int>(imp)] + "-" + std::to_string(rows) + "x" +
              std::to_string(cols) + "-s" + std::to_string(seed);
    in.rows = rows;
    in.cols = cols;
    SplitMix rng(seed);
    std::vector<bool> outlier(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) outlier[c] = rng.uniform() < 0.01;
    in.values.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const double mean = v == Values::Offset ? 0.02 * (2 * rng.uniform() - 1) : 0.0;
        for (int64_t c = 0; c < cols; ++c) {
            double x = 0;
            switch (v) {
            case Values::Gauss: x = 0.02 * rng.normal(); break;
            case Values::Heavy: x = 0.015 * rng.student3() * (outlier[c] ? 8 : 1); break;
            case Values::Offset: x = mean + 0.01 * rng.normal(); break;
            }
            in.values[r * cols + c] = static_cast<float>(x);
        }
    }
    in.importance.resize(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        double w = 1;
        switch (imp) {
        case Importance::Outlier: w = (outlier[c] ? 21.0 : 1.0) * std::exp(0.5 * rng.normal()); break;
        case Importance::LogNormal: w = std::exp(1.5 * rng.normal()); break;
        case Importance::Sparse: w = rng.uniform() < 0.02 ? 101.0 : 1.0; break;
        case Importance::Flat: w = 1 + 0.1 * (rng.uniform() - 0.5); break;
        }
        in.importance[c] = static_cast<float>(w);
    }
    return in;
}

// The inputs test_quant and ggml_generated_rmse share: three widths that are not powers of
// two (1,280, 2,816 and 4,864: 5, 11 and 19 super-blocks), six seeds, each value
// distribution and importance shape.
inline std::vector<GeneratedInput> generated_inputs() {
    return {
        generate_input(Values::Gauss, Importance::LogNormal, 16, 2816, 1), generate_input(Values::Gauss, Importance::Sparse, 16, 1280, 2),
        generate_input(Values::Heavy, Importance::Outlier, 16, 2816, 3),   generate_input(Values::Heavy, Importance::LogNormal, 8, 4864, 4),
        generate_input(Values::Offset, Importance::Flat, 16, 2816, 5),     generate_input(Values::Heavy, Importance::Sparse, 16, 1280, 6),
    };
}

// The error measures of rmse.tsv: plain RMSE over all values, and the importance-weighted
// RMSE sqrt(sum_c w_c e^2 / (rows x sum_c w_c)) (the importance vector weighs every row's
// column c alike), accumulated in double.
struct ErrorFigures {
    double rmse = 0, weighted_rmse = 0;
};
inline ErrorFigures error_figures(const GeneratedInput& in, const std::vector<float>& y) {
    double se = 0, wse = 0, wsum = 0;
    for (int64_t r = 0; r < in.rows; ++r)
        for (int64_t c = 0; c < in.cols; ++c) {
            const double e = static_cast<double>(in.values[r * in.cols + c]) - y[r * in.cols + c];
            se += e * e;
            wse += in.importance[c] * e * e;
        }
    for (float w : in.importance) wsum += w;
    return {std::sqrt(se / static_cast<double>(in.values.size())), std::sqrt(wse / (static_cast<double>(in.rows) * wsum))};
}

}  // namespace test
