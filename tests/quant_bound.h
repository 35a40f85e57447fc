// The least importance-weighted squared error any quantizer of a k-quant or iq4 format can
// reach on one sub-block, by exact enumeration (bench_quant_bound; checked against brute
// force in test_quant).
//
// Each of these types stores a sub-block as codes on a fixed lattice of levels (uniform, or
// iq4's 16 non-uniform ones) times a scale (plus, for the affine kinds, an offset), and those
// scales and offsets are themselves stored in a few bits times the super-block's f16 factors.
// Relax that last constraint: let the scale s (and offset m) be any reals. The format's values
// are among the relaxation's, so no quantizer of the format does better than its minimum
//
//     min over s, m, codes q  of  sum_i w_i (x_i - (s level[q_i] + m))^2
//
// (m = 0 for the symmetric kinds). At the minimum each q_i is the nearest level to
// (x_i - m) / s, and (s, m) is the weighted least-squares fit to those codes. So the minimum
// is the least, over every code vector that nearest rounding gives for some (s, m), of that
// code vector's least-squares error; and every such error is reached by the relaxation. The
// functions below visit every one of those code vectors (some twice, and some mixed ones on
// the way, each a code vector whose error the relaxation reaches too):
// - symmetric: as s grows from 0, x_i / s moves toward 0 and crosses the midpoints between levels one at a time
//   (breakpoints s = x_i / midpoint); between breakpoints the codes are fixed. Negative s is
//   the same sweep with the levels negated.
// - affine (levels 0..Q): in the (s, m) half-plane s > 0, code i steps between k and k+1 on
//   the line m = x_i - s (k + 1/2). The code vectors are the cells of that arrangement of
//   n Q lines. A sweep over s keeps the lines sorted by m; the cells on a vertical slice are
//   the gaps between neighbours, and the order changes only where two lines cross, where one
//   new cell appears between them. So every cell is visited with O(1) work after sorting the
//   crossings. Negative s is the reflection q -> Q - q of the same lattice.
// Sums are in double; "exact" means up to rounding of those sums and of the crossing points.
// Where crossings coincide (three lines through one point, or ties from rounding) the sweep
// sorts the lines again just past them (`resorts` counts those), and takes a later crossing
// whose lines are already in their crossed order as done.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace test::bound {

struct Lattice {
    std::vector<double> level;  // ascending; the affine kinds: 0, 1, ..., Q
    bool affine;                // a free offset (q2_K, q4_K, q5_K)
    int sub;                    // values per sub-block
};

inline Lattice uniform(int lo, int hi, bool affine, int sub) {
    Lattice l{{}, affine, sub};
    for (int k = lo; k <= hi; ++k) l.level.push_back(k);
    return l;
}

// iq4_nl's and iq4_xs's levels (the published table).
inline Lattice iq4(int sub) { return {{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}, false, sub}; }

// Weighted sums of one sub-block's values, and the least-squares error of a code vector
// given the sums over its levels l_i: a = sum w l, b = sum w l^2, c = sum w x l.
// A code vector whose sum w l^2 (or its spread, with an offset) is below 1e-12 of `tiny`'s
// scale (sum w x the largest level^2) is taken as all alike: what is left of a running sum
// there is rounding, and could divide into a false gain.
struct Moments {
    double w = 0, x = 0, xx = 0, tiny = 0;
    Moments(const float* x_, const float* w_, int n, double largest_level) {
        for (int i = 0; i < n; ++i) {
            w += w_[i];
            x += static_cast<double>(w_[i]) * x_[i];
            xx += static_cast<double>(w_[i]) * x_[i] * x_[i];
        }
        tiny = 1e-12 * w * largest_level * largest_level;
    }
    // With a free offset: the 2x2 normal equations; where every code is alike, the offset
    // alone (the weighted variance).
    // In sums centred on the weighted means: the codes' spread ll, their covariance with the
    // values xl, the values' spread (the error with the offset alone).
    double affine_error(double a, double b, double c) const {
        if (!(w > 0)) return 0;
        const double variance = std::max(0.0, xx - x * x / w), ll = b - a * a / w, xl = c - a * x / w;
        if (!(ll > tiny)) return variance;
        return std::max(0.0, variance - xl * xl / ll);
    }
    double symmetric_error(double b, double c) const { return b > tiny ? std::max(0.0, xx - c * c / b) : xx; }
};

// Symmetric lattices: the sweep over s > 0 for the levels as given and negated.
inline double min_symmetric(const float* x, const float* w, int n, const std::vector<double>& levels) {
    const Moments mo(x, w, n, std::max(std::fabs(levels.front()), std::fabs(levels.back())));
    double best = mo.xx;  // s = 0
    for (int sign : {1, -1}) {
        std::vector<double> lv(levels.size());
        for (size_t k = 0; k < levels.size(); ++k) lv[k] = sign * levels[sign > 0 ? k : levels.size() - 1 - k];
        const int top = static_cast<int>(lv.size()) - 1;
        // The nearest level to 0 (for x_i = 0 at any s), the lower on a tie.
        int zero = 0;
        for (int k = 1; k <= top; ++k)
            if (std::fabs(lv[k]) < std::fabs(lv[zero])) zero = k;
        // At s -> 0+, positive values sit at the top level, negative ones at the bottom.
        std::vector<int> code(n);
        double b = 0, c = 0;
        struct Event {
            double s;
            int i, to;
        };
        std::vector<Event> events;
        for (int i = 0; i < n; ++i) {
            code[i] = x[i] > 0 ? top : x[i] < 0 ? 0 : zero;
            b += w[i] * lv[code[i]] * lv[code[i]];
            c += static_cast<double>(w[i]) * x[i] * lv[code[i]];
            // As s grows, x_i / s moves toward 0, crossing the midpoints on its side of 0.
            for (int k = 0; k < top; ++k) {
                const double mid = 0.5 * (lv[k] + lv[k + 1]);
                if (x[i] > 0 && mid > 0) events.push_back({x[i] / mid, i, k});      // k+1 -> k
                if (x[i] < 0 && mid < 0) events.push_back({x[i] / mid, i, k + 1});  // k -> k+1
            }
        }
        std::sort(events.begin(), events.end(), [](const Event& p, const Event& q) { return p.s < q.s; });
        best = std::min(best, mo.symmetric_error(b, c));
        for (const Event& e : events) {
            const double l0 = lv[code[e.i]], l1 = lv[e.to];
            b += w[e.i] * (l1 * l1 - l0 * l0);
            c += static_cast<double>(w[e.i]) * x[e.i] * (l1 - l0);
            code[e.i] = e.to;
            best = std::min(best, mo.symmetric_error(b, c));
        }
    }
    return best;
}

// Affine lattices 0..q: the arrangement sweep (see the header). resorts: where it re-sorted.
inline double min_affine(const float* x, const float* w, int n, int q, int64_t* resorts = nullptr) {
    const Moments mo(x, w, n, q);
    const int lines = n * q;
    // Line j = i q + k: m = x_i - s (k + 1/2); crossing it upward moves code i from k+1 to k.
    auto value = [&](int j) { return static_cast<double>(x[j / q]); };
    auto step = [&](int j) { return j % q + 0.5; };
    // What crossing line j does to the sums a = sum w code, b = sum w code^2, c = sum w x code.
    std::vector<double> da(lines), db(lines), dc(lines);
    for (int j = 0; j < lines; ++j) {
        const int i = j / q, k = j % q;
        da[j] = -w[i];
        db[j] = -static_cast<double>(w[i]) * (2 * k + 1);
        dc[j] = -static_cast<double>(w[i]) * x[i];
    }
    // Below every line each code is q.
    double a0 = 0, b0 = 0, c0 = 0;
    for (int i = 0; i < n; ++i) {
        a0 += static_cast<double>(w[i]) * q;
        b0 += static_cast<double>(w[i]) * q * q;
        c0 += static_cast<double>(w[i]) * x[i] * q;
    }
    std::vector<int> order(lines), pos(lines);
    std::vector<double> a(lines + 1), b(lines + 1), c(lines + 1);  // cell p: lines order[0..p) crossed
    double best = std::numeric_limits<double>::infinity();
    auto rebuild = [&](double s) {
        // Sorted by m at s; at s -> 0+ (s = 0) by x, then the larger step lower.
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int p, int r) {
            const double mp = value(p) - s * step(p), mr = value(r) - s * step(r);
            if (mp != mr) return mp < mr;
            if (value(p) != value(r)) return value(p) < value(r);
            return step(p) > step(r);
        });
        a[0] = a0;
        b[0] = b0;
        c[0] = c0;
        best = std::min(best, mo.affine_error(a[0], b[0], c[0]));
        for (int p = 0; p < lines; ++p) {
            pos[order[p]] = p;
            a[p + 1] = a[p] + da[order[p]];
            b[p + 1] = b[p] + db[order[p]];
            c[p + 1] = c[p] + dc[order[p]];
            best = std::min(best, mo.affine_error(a[p + 1], b[p + 1], c[p + 1]));
        }
    };
    rebuild(0);
    // The crossings at s > 0 (lines of one value, or of one step, never cross there).
    struct Cross {
        double s;
        int p, r;
    };
    std::vector<Cross> cross;
    for (int p = 0; p < lines; ++p)
        for (int r = p + 1; r < lines; ++r) {
            if (p / q == r / q || p % q == r % q) continue;
            const double s = (value(p) - value(r)) / (step(p) - step(r));
            if (s > 0) cross.push_back({s, p, r});
        }
    std::sort(cross.begin(), cross.end(), [](const Cross& u, const Cross& v) { return u.s < v.s; });
    for (size_t e = 0; e < cross.size();) {
        const int p = cross[e].p, r = cross[e].r, pp = pos[p], pr = pos[r];
        // Before they cross, the line of the larger step lies higher; a re-sort past this
        // point may already have put them the other way.
        if ((pp > pr) != (step(p) > step(r))) {
            ++e;
            continue;
        }
        if (pp - pr == 1 || pr - pp == 1) {
            const int lo = std::min(pp, pr);
            std::swap(order[lo], order[lo + 1]);
            pos[order[lo]] = lo;
            pos[order[lo + 1]] = lo + 1;
            a[lo + 1] = a[lo] + da[order[lo]];
            b[lo + 1] = b[lo] + db[order[lo]];
            c[lo + 1] = c[lo] + dc[order[lo]];
            best = std::min(best, mo.affine_error(a[lo + 1], b[lo + 1], c[lo + 1]));
            ++e;
            continue;
        }
        // Not neighbours: other crossings coincide here (three lines through one point, or
        // crossings that rounding made equal). Sort again past every crossing at this s,
        // halfway to the next larger one.
        size_t next = e;
        while (next < cross.size() && cross[next].s == cross[e].s) ++next;
        rebuild(next < cross.size() ? 0.5 * (cross[e].s + cross[next].s) : 2 * cross[e].s);
        if (resorts) ++*resorts;
        e = next;
    }
    return best;
}

inline double min_error(const float* x, const float* w, const Lattice& l, int64_t* resorts = nullptr) {
    return l.affine ? min_affine(x, w, l.sub, static_cast<int>(l.level.size()) - 1, resorts) : min_symmetric(x, w, l.sub, l.level);
}

// For tests: the same minimum by trying every code vector (levels^n of them).
inline double min_error_brute(const float* x, const float* w, int n, const Lattice& l) {
    const Moments mo(x, w, n, std::max(std::fabs(l.level.front()), std::fabs(l.level.back())));
    const int levels = static_cast<int>(l.level.size());
    std::vector<int> code(n, 0);
    double best = l.affine ? mo.affine_error(0, 0, 0) : mo.xx;
    for (;;) {
        double a = 0, b = 0, c = 0;
        for (int i = 0; i < n; ++i) {
            const double v = l.level[code[i]];
            a += w[i] * v;
            b += w[i] * v * v;
            c += static_cast<double>(w[i]) * x[i] * v;
        }
        best = std::min(best, l.affine ? mo.affine_error(a, b, c) : mo.symmetric_error(b, c));
        int i = 0;
        while (i < n && ++code[i] == levels) code[i++] = 0;
        if (i == n) return best;
    }
}

}  // namespace test::bound
