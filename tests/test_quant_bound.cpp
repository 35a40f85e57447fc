// bench_quant_bound's exact minimum (tests/quant_bound.h) against trying every code vector:
// the sweeps must find the same least error on small sub-blocks of every lattice kind, with
// values drawn at random and values on a grid (where many crossings coincide and the affine
// sweep has to sort again).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "quant_bound.h"

namespace {

using test::bound::Lattice;

struct Case {
    const char* name;
    Lattice lattice;
};

// n values: Gaussian, Student-t, or small integers (ties and coincident crossings), some
// repeated or zero; weights log-normal, some zero, or (kind 3) spread from 1e-8 to 1e4.
void draw(std::mt19937& rng, int n, int kind, std::vector<float>& x, std::vector<float>& w) {
    std::normal_distribution<float> normal(0, 1);
    std::student_t_distribution<float> heavy(2);
    std::lognormal_distribution<float> lognormal(0, 1.5);
    std::uniform_int_distribution<int> small(-3, 3);
    std::uniform_real_distribution<float> decades(-8, 4);
    x.resize(n);
    w.resize(n);
    for (int i = 0; i < n; ++i) {
        x[i] = kind == 0 || kind == 3 ? normal(rng) : kind == 1 ? heavy(rng) : static_cast<float>(small(rng));
        w[i] = kind == 3 ? std::pow(10.0f, decades(rng)) : lognormal(rng);
    }
    if (kind == 1 && n > 2) x[n - 1] = x[0];   // a repeated value
    if (kind == 0 && n > 3) w[n / 2] = 0;      // a value that does not count
    if (kind == 2 && n > 1) x[1] = x[1] + 0.5f;  // half-way values on the grid
}

}  // namespace

TEST_CASE("the relaxation's exact minimum equals the least error over every code vector") {  // 480 sub-blocks
    const Case cases[] = {
        {"affine 0..3 (q2_K), 6 values", test::bound::uniform(0, 3, true, 6)},
        {"affine 0..15 (q4_K), 4 values", test::bound::uniform(0, 15, true, 4)},
        {"affine 0..31 (q5_K), 3 values", test::bound::uniform(0, 31, true, 3)},
        {"symmetric -4..3 (q3_K), 6 values", test::bound::uniform(-4, 3, false, 6)},
        {"symmetric -32..31 (q6_K), 3 values", test::bound::uniform(-32, 31, false, 3)},
        {"iq4's levels, 4 values", test::bound::iq4(4)},
    };
    int64_t resorts = 0;
    int checked = 0;
    for (const Case& c : cases) {
        std::mt19937 rng(20261206u);
        for (int trial = 0; trial < 80; ++trial) {
            std::vector<float> x, w;
            const int kind = trial % 4;
            draw(rng, c.lattice.sub, kind, x, w);
            const double exact = test::bound::min_error(x.data(), w.data(), c.lattice, &resorts);
            const double brute = test::bound::min_error_brute(x.data(), w.data(), c.lattice.sub, c.lattice);
            // Both are sum w x^2 less a least-squares gain, so they agree to rounding of that total.
            double total = 0;
            for (int i = 0; i < c.lattice.sub; ++i) total += static_cast<double>(w[i]) * x[i] * x[i];
            const std::string what = std::string(c.name) + ", trial " + std::to_string(trial) + " (values " +
                                     (kind == 0 ? "Gaussian" : kind == 1 ? "Student-t" : kind == 2 ? "on a grid" : "Gaussian, weights 1e-8 to 1e4") + ")";
            INFO(what << ": exact " << exact << ", brute force " << brute << ", sum w x^2 " << total);
            // Weights over twelve decades leave rounding of about 1e-12 of the total in the
            // running sums; a false gain from a leftover would be of the order of the total.
            CHECK(std::fabs(exact - brute) <= (kind == 3 ? 1e-10 : 1e-12) * total);
            ++checked;
        }
    }
    CHECK(checked == 480);
    // The grid values make crossings coincide: the re-sorting path ran and still agreed.
    CHECK(resorts > 0);
}
