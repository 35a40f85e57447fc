// Benchmark: how low the importance-weighted RMSE of a k-quant or iq4 type can go without
// changing its format, beside ggml's figure (../shared/ref/quant/rmse.tsv) and ours.
// Prints figures; asserts nothing.   bench_quant_bound [STARTS]
//
// Each type stores a block of values as codes on a fixed lattice (uniform levels, or iq4's
// 16 non-uniform ones) times a per-sub-block scale (and, for the affine kinds, minus a
// per-sub-block minimum), and those scales and minimums are themselves stored in a few bits
// times the super-block's f16 factors. Drop that last constraint: let every sub-block keep
// its best scale (and minimum) as exact reals. Whatever any quantizer does within the format,
// its error can only be higher than that relaxation's minimum, since the format's scales are
// among the reals. For one sub-block, with nearest codes for a given (scale, minimum), the
// error is a piecewise quadratic of the parameters; its minimum is searched here by a dense
// scan: STARTS (default 400) starting scales from half to twice the one that spans the values,
// each followed by rounds of (nearest codes, weighted least-squares refit) until nothing
// changes, and our quantizer's own result for the sub-block taken too (it lies in the
// relaxation). The importance-weighted error is minimized (weights = importance alone). A
// scan finds the smallest error it visits, not a proven minimum, so the figure is an
// estimate of the bound from above; doubling STARTS moved it by under 0.1% (measured
// 2026-12-02: q4_K gauss 0.9605 -> 0.9604 of ggml's).
//
// Columns: ggml's weighted RMSE (rmse.tsv, imatrix rows), ours (this build's quantizer), the
// relaxation's bound, and the ratios ours / ggml and bound / ggml. A bound / ggml ratio
// above 0.95 means issue 18's quality target is out of reach on that row for any quantizer
// of the same format (up to the scan's resolution).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <fstream>
#include <sstream>
#include <vector>

#include "quant/quant.h"
#include "support.h"

namespace {

// A sub-block's family of values: level k stands for scale x level[k] (+ minimum).
struct Lattice {
    std::vector<double> level;  // ascending
    bool affine;                // a free minimum (q2_K, q4_K, q5_K), else symmetric
    int sub;                    // values per sub-block
};

Lattice uniform(int lo, int hi, bool affine, int sub) {
    Lattice l{{}, affine, sub};
    for (int k = lo; k <= hi; ++k) l.level.push_back(k);
    return l;
}

// iq4_nl's and iq4_xs's levels (the published table).
Lattice iq4(int sub) {
    return {{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}, false, sub};
}

// The nearest level's index for t (levels ascending).
int nearest(const std::vector<double>& level, double t) {
    const auto it = std::lower_bound(level.begin(), level.end(), t);
    if (it == level.begin()) return 0;
    if (it == level.end()) return static_cast<int>(level.size()) - 1;
    const int k = static_cast<int>(it - level.begin());
    return (t - level[k - 1] <= level[k] - t) ? k - 1 : k;
}

// The smallest weighted squared error found for one sub-block (see the header).
double best_error(const float* x, const float* w, const Lattice& l, int starts) {
    const int n = l.sub;
    double lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) {
        lo = std::min<double>(lo, x[i]);
        hi = std::max<double>(hi, x[i]);
    }
    const double span_levels = l.level.back() - l.level.front();
    const double amax = std::max(std::fabs(lo), std::fabs(hi));
    if (amax == 0) return 0;
    double best = INFINITY;
    for (int sign : {1, -1}) {
        if (l.affine && sign < 0) continue;  // an affine lattice's reflection is itself
        for (int k = 0; k <= starts; ++k) {
            // Starting scales from half to twice the one that spans the values.
            const double spread = std::exp2(-1.0 + 2.0 * k / starts);
            double s = sign * (l.affine ? (hi - lo) : 2 * amax) / span_levels * spread, m = l.affine ? lo - s * l.level.front() : 0;
            for (int round = 0; round < 20; ++round) {
                double e = 0, sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
                for (int i = 0; i < n; ++i) {
                    const double v = l.level[nearest(l.level, (x[i] - m) / s)];
                    const double d = x[i] - (s * v + m);
                    e += w[i] * d * d;
                    sw += w[i];
                    sl += w[i] * v;
                    sll += w[i] * v * v;
                    sx += w[i] * x[i];
                    sxl += w[i] * x[i] * v;
                }
                best = std::min(best, e);
                double s2, m2 = 0;
                if (l.affine) {
                    const double det = sw * sll - sl * sl;
                    if (det <= 0) break;
                    s2 = (sw * sxl - sl * sx) / det;
                    m2 = (sll * sx - sl * sxl) / det;
                } else {
                    if (sll <= 0) break;
                    s2 = sxl / sll;
                }
                if (s2 == 0 || (s2 == s && m2 == m)) break;
                s = s2;
                m = m2;
            }
        }
    }
    return best;
}

struct Row {
    const char* type;
    Lattice lattice;
};

}  // namespace

int main(int argc, char** argv) {
    const int starts = argc > 1 ? std::atoi(argv[1]) : 400;
    if (starts < 1) {
        std::fprintf(stderr, "usage: bench_quant_bound [STARTS >= 1]\n");
        return 2;
    }
    const auto dir = test::ref_dir() / "quant";
    if (!std::filesystem::exists(dir / "rmse.tsv")) {
        std::fprintf(stderr, "bench_quant_bound: needs ../shared/ref/quant (not in a plain clone)\n");
        return 1;
    }
    constexpr int64_t kRows = 32, kCols = 4096;
    auto floats = [&](const char* name) {
        const std::vector<uint8_t> b = test::read_bytes(dir / name);
        std::vector<float> v(b.size() / 4);
        std::memcpy(v.data(), b.data(), v.size() * 4);
        return v;
    };
    const std::vector<float> importance = floats("importance.f32");
    double wsum = 0;
    for (float v : importance) wsum += v;
    const Row rows[] = {
        {"q2_K", uniform(0, 3, true, 16)},    {"q3_K", uniform(-4, 3, false, 16)}, {"q4_K", uniform(0, 15, true, 32)},
        {"q5_K", uniform(0, 31, true, 32)},   {"q6_K", uniform(-32, 31, false, 16)}, {"iq4_nl", iq4(32)},
        {"iq4_xs", iq4(32)},
    };
    std::ifstream tsv(dir / "rmse.tsv");
    std::string line;
    std::getline(tsv, line);
    fmt::print("importance-weighted RMSE on rmse.tsv's imatrix rows (32 x 4096 values; {} starting scales per sub-block)\n", starts);
    fmt::print("{:<8} {:<6} {:>12} {:>12} {:>12} {:>10} {:>12}\n", "type", "input", "ggml", "ours", "bound", "ours/ggml", "bound/ggml");
    while (std::getline(tsv, line)) {
        std::istringstream f(line);
        std::string name, id, block, bytes, input, imx;
        double rmse, ggml;
        f >> name >> id >> block >> bytes >> input >> imx >> rmse >> ggml;
        if (imx != "yes") continue;
        const Row* row = nullptr;
        for (const Row& r : rows)
            if (name == r.type) row = &r;
        if (!row) continue;
        const std::vector<float> x = floats(("input_" + input + ".f32").c_str());
        // Ours, measured as rmse.tsv measures (its weighted normalisation: see test_quant_ref).
        const auto type = static_cast<gguf::TypeId>(std::stoi(id));
        std::vector<uint8_t> q(quant::row_bytes(type, kCols) * kRows);
        quant::quantize(type, x, kCols, importance, q);
        std::vector<float> y(x.size());
        quant::dequantize(type, q, y);
        // The relaxation's bound: per sub-block the scan's minimum, or ours where lower.
        const int sub = row->lattice.sub;
        double ours_se = 0, bound_se = 0;
        for (int64_t r = 0; r < kRows; ++r)
            for (int64_t c = 0; c < kCols; c += sub) {
                double mine = 0;
                for (int64_t i = c; i < c + sub; ++i) {
                    const double e = static_cast<double>(x[r * kCols + i]) - y[r * kCols + i];
                    mine += importance[i] * e * e;
                }
                ours_se += mine;
                bound_se += std::min(mine, best_error(&x[r * kCols + c], &importance[c], row->lattice, starts));
            }
        const double norm = kRows * kRows * wsum;
        const double ours = std::sqrt(ours_se / norm), bound = std::sqrt(bound_se / norm);
        fmt::print("{:<8} {:<6} {:>12.6g} {:>12.6g} {:>12.6g} {:>10.4f} {:>12.4f}{}\n", name, input, ggml, ours, bound, ours / ggml, bound / ggml,
                   bound / ggml > 0.95 ? "   (0.95 x ggml out of reach in this format)" : "");
        std::fflush(stdout);
    }
}
