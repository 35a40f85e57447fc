#include "grid_fit.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <iterator>
#include <limits>
#include <stdexcept>

#include "fit.h"
#include "iq_grids.h"
#include "quant/grids.h"
#include "quant/quant.h"

namespace quant::detail {

namespace {

template <class T, size_t N> Grid unpack(const T (&table)[N], int k) {
    Grid g;
    g.entries = static_cast<int>(N);
    g.k = k;
    g.value.resize(N * static_cast<size_t>(k));
    for (size_t e = 0; e < N; ++e)
        for (int j = 0; j < k; ++j) {
            const float v = static_cast<float>((table[e] >> (8 * j)) & 0xff);
            g.value[static_cast<size_t>(j) * N + e] = v;
            g.max_magnitude = std::max(g.max_magnitude, v);
            if (v > 0 && std::find(g.magnitudes.begin(), g.magnitudes.end(), v) == g.magnitudes.end()) g.magnitudes.push_back(v);
        }
    std::sort(g.magnitudes.begin(), g.magnitudes.end());
    return g;
}

Grid unpack_iq1() {
    Grid g;
    g.entries = 2 * 2048;
    g.k = 8;
    g.value.resize(static_cast<size_t>(g.entries) * 8);
    for (int half = 0; half < 2; ++half)
        for (int e = 0; e < 2048; ++e)
            for (int j = 0; j < 8; ++j) {
                const float v = static_cast<float>(static_cast<int8_t>(grids::kIQ1S[e] >> (8 * j))) + (half ? -0.125f : 0.125f);
                g.value[static_cast<size_t>(j * g.entries + half * 2048 + e)] = v;
                g.max_magnitude = std::max(g.max_magnitude, std::fabs(v));
            }
    g.magnitudes = {0.125f, 0.875f};
    return g;
}

// Entries [lo, hi) of g as a lattice over `values`, every coordinate being one of them.
Lattice lattice(const Grid& g, int lo, int hi, std::vector<float> values) {
    Lattice l;
    std::sort(values.begin(), values.end());
    l.nv = static_cast<int>(values.size());
    l.lo = lo;
    l.hi = hi;
    std::copy(values.begin(), values.end(), l.value);
    for (int i = 0; i + 1 < l.nv; ++i) l.mid[i] = (l.value[i] + l.value[i + 1]) / 2;
    for (float v : values) l.max_abs = std::max(l.max_abs, std::fabs(v));
    size_t points = 1;
    for (int j = 0; j < g.k; ++j) points *= values.size();
    l.entry.assign(points, -1);
    for (int e = lo; e < hi; ++e) {
        size_t point = 0, place = 1;
        for (int j = 0; j < g.k; ++j, place *= values.size()) {
            const float v = g.value[static_cast<size_t>(j * g.entries + e)];
            const auto at = std::find(values.begin(), values.end(), v);
            if (at == values.end()) throw std::logic_error("grid lattice: an entry's value is not among the lattice's values");
            point += place * static_cast<size_t>(at - values.begin());
        }
        if (l.entry[point] < 0) l.entry[point] = static_cast<int16_t>(e);  // the scan, too, keeps the first of equal entries
    }
    return l;
}

// The largest magnitude m of an entry made of m (or -m) alone: where a span's values are
// all alike, its scale puts them there.
Grid with_flat_magnitude(Grid g) {
    for (int e = 0; e < g.entries; ++e) {
        const float m = std::fabs(g.value[static_cast<size_t>(e)]);
        bool flat = true;
        for (int j = 1; j < g.k; ++j) flat = flat && std::fabs(g.value[static_cast<size_t>(j) * static_cast<size_t>(g.entries) + static_cast<size_t>(e)]) == m;
        if (flat) g.flat_magnitude = std::max(g.flat_magnitude, m);
    }
    return g;
}

Grid with_lattice(Grid g) {
    g.parts = {lattice(g, 0, g.entries, g.magnitudes)};
    return g;
}

// The near-entry lists of a lattice of groups of 4 or 8 (Lattice::near_first), built once
// with the grid (IQ3_S: 10 ms; IQ2_S: 75 ms). Take a group whose
// nearest point is p: coordinate j's value x (in units of the scale) lies in the cell of value
// p_j, between the midpoints around it. There, value L is surely nearer than value L' when,
// for every x in the cell, (x - L')^2 - (x - L)^2 is at least the least change at x (the
// excess of the nearer of p_j's neighbouring values over p_j). An entry whose coordinates are
// each equal to or surely nearer than another entry's has, in the weights, less error than it
// by at least one weighted least change; the fast pass takes these lists only where every
// least change exceeds its bound on the scan's float error, so an entry left out is further
// than another in float too, and the scan's first least entry is among those kept. The
// relation is transitive (the excesses add, and the least change is >= 0 in the cell), so it
// is enough to keep the entries no other entry is nearer than in this sense. IQ3_S keeps 8-80
// of its 512 entries a point (18.6 on average, padding to 8 included), IQ2_S 16-280 of its
// 1,024 (66.1).
Grid with_near_entries(Grid g) {
    Lattice& l = g.parts.at(0);
    const int nv = l.nv;
    const int k = g.k;
    if ((k != 4 && k != 8) || nv > 8) throw std::logic_error("near entries: a lattice of groups of 4 or 8 over up to 8 values");
    constexpr double inf = std::numeric_limits<double>::infinity();
    auto value = [&](int i) { return static_cast<double>(l.value[i]); };
    // surely[p][a][b]: value a surely nearer than value b (a != b) in the cell of value p.
    bool surely[8][8][8] = {};
    for (int p = 0; p < nv; ++p) {
        const double lo = p > 0 ? l.mid[p - 1] : -inf, hi = p + 1 < nv ? l.mid[p] : inf;
        for (int a = 0; a < nv; ++a)
            for (int b = 0; b < nv; ++b) {
                if (a == b) continue;
                // d_q(x) = gap(x) - change_q(x), linear: gap = (va - vb)(2x - va - vb), change_q =
                // (vp - vq)(2x - vp - vq) for each neighbour q of p. Wanted: max_q d_q >= 0 on the
                // cell. Where that fails it fails on an interval whose ends are among the cell's
                // ends and the roots of the d_q, open but at the cell's ends: test those ends, the
                // points halfway between these, and one past them where the cell is open.
                struct Line {
                    double m, c;
                };
                Line d[2];
                int lines = 0;
                for (int q : {p - 1, p + 1}) {
                    if (q < 0 || q >= nv) continue;
                    const double va = value(a), vb = value(b), vp = value(p), vq = value(q);
                    d[lines++] = {2 * (va - vb) - 2 * (vp - vq), -(va - vb) * (va + vb) + (vp - vq) * (vp + vq)};
                }
                std::vector<double> at;
                if (lo > -inf) at.push_back(lo);
                if (hi < inf) at.push_back(hi);
                for (int i = 0; i < lines; ++i)
                    if (d[i].m != 0) {
                        const double r = -d[i].c / d[i].m;
                        if (r > lo && r < hi) at.push_back(r);
                    }
                std::sort(at.begin(), at.end());
                std::vector<double> tests;  // (not the roots themselves, where rounding may go either way)
                if (lo > -inf) tests.push_back(lo);
                if (hi < inf) tests.push_back(hi);
                for (size_t i = 0; i + 1 < at.size(); ++i) tests.push_back((at[i] + at[i + 1]) / 2);
                if (lo == -inf) tests.push_back(at.front() - 1);
                if (hi == inf) tests.push_back(at.back() + 1);
                bool holds = true;
                for (double x : tests) {
                    double most = -inf;
                    for (int i = 0; i < lines; ++i) most = std::max(most, d[i].m * x + d[i].c);
                    holds = holds && most >= 0;
                }
                surely[p][a][b] = holds;
            }
    }
    // The lattice's entries (the first at each point) and their points' coordinates.
    struct Point {
        int pt;
        uint8_t d[8];
    };
    std::vector<Point> points;
    for (size_t pt = 0; pt < l.entry.size(); ++pt)
        if (l.entry[pt] >= 0) {
            Point p{static_cast<int>(pt), {}};
            for (int j = 0, r = p.pt; j < k; ++j, r /= nv) p.d[j] = static_cast<uint8_t>(r % nv);
            points.push_back(p);
        }
    // at_least[j][q][v]: the entries whose coordinate j is value v or one surely nearer than v
    // in the cell of value q, as a bit set over `points`.
    const size_t words = (points.size() + 63) / 64;
    std::vector<uint64_t> at_least(static_cast<size_t>(k) * 8 * 8 * words, 0);
    auto set_of = [&](int j, int q, int v) { return at_least.data() + ((static_cast<size_t>(j) * 8 + q) * 8 + v) * words; };
    for (int j = 0; j < k; ++j)
        for (int q = 0; q < nv; ++q)
            for (int v = 0; v < nv; ++v)
                for (size_t i = 0; i < points.size(); ++i) {
                    const int u = points[i].d[j];
                    if (u == v || surely[q][u][v]) set_of(j, q, v)[i / 64] |= uint64_t{1} << (i % 64);
                }
    l.near_first.assign(l.entry.size() + 1, 0);
    std::vector<const Point*> kept;
    for (size_t pt = 0; pt < l.entry.size(); ++pt) {
        l.near_first[pt] = static_cast<uint32_t>(l.near_entry.size());
        if (l.entry[pt] >= 0) continue;
        int p[8];
        for (int j = 0, r = static_cast<int>(pt); j < k; ++j, r /= nv) p[j] = r % nv;
        // Kept: the entries no other one is nearer than (on every coordinate the same value or a
        // surely nearer one); the entry itself is always in its set.
        kept.clear();
        for (size_t c = 0; c < points.size(); ++c) {
            const uint8_t* d = points[c].d;
            const uint64_t* sets[8];
            for (int j = 0; j < k; ++j) sets[j] = set_of(j, p[j], d[j]);
            bool other = false;
            for (size_t i = 0; i < words && !other; ++i) {
                uint64_t both = i == c / 64 ? ~(uint64_t{1} << (c % 64)) : ~uint64_t{0};
                for (int j = 0; j < k; ++j) both &= sets[j][i];
                other = both != 0;
            }
            if (!other) kept.push_back(&points[c]);
        }
        std::sort(kept.begin(), kept.end(), [&](const Point* x, const Point* y) { return l.entry[static_cast<size_t>(x->pt)] < l.entry[static_cast<size_t>(y->pt)]; });
        while (kept.size() % 8) kept.push_back(kept.back());
        for (const Point* c : kept) {
            l.near_entry.push_back(l.entry[static_cast<size_t>(c->pt)]);
            uint32_t digits = 0;
            for (int j = 0; j < k; ++j) digits |= static_cast<uint32_t>(c->d[j]) << (4 * j);
            l.near_digits.push_back(digits);
        }
    }
    l.near_first.back() = static_cast<uint32_t>(l.near_entry.size());
    return g;
}

// Lattice::two_away for IQ1's two parts (6,561 points; 4,513 of them no entry, with 36 entries
// one or two changes away on average, 83 at most: 0.7 MB).
constexpr size_t kTwoAwayMost = 88;  // entries a list may hold, padding included (two_away_minimum's arrays)
Grid iq1_with_lattices(Grid g) {
    g.parts = {lattice(g, 0, 2048, {-0.875f, 0.125f, 1.125f}), lattice(g, 2048, 4096, {-1.125f, -0.125f, 0.875f})};
    const Lattice &l0 = g.parts[0], &l1 = g.parts[1];
    constexpr int k = 8, nv = 3;
    if (g.k != k || l0.nv != nv || l1.nv != nv || l0.entry.size() != l1.entry.size())
        throw std::logic_error("IQ1 lattices: groups of 8 over 3 values");
    for (size_t pt = 0; pt < l0.entry.size(); ++pt)
        if ((l0.entry[pt] < 0) != (l1.entry[pt] < 0) || (l0.entry[pt] >= 0 && l1.entry[pt] - l1.lo != l0.entry[pt] - l0.lo))
            throw std::logic_error("IQ1 lattices: the two shifts' entries are not at the same points");
    auto two = std::make_shared<Lattice::TwoAway>();
    int place[k];
    for (int j = 0, p = 1; j < k; ++j, p *= nv) place[j] = p;
    std::vector<uint32_t> found;
    for (size_t pt = 0; pt < l0.entry.size(); ++pt) {
        two->first.push_back(static_cast<uint32_t>(two->list.size()));
        if (l0.entry[pt] >= 0) continue;
        int digit[k];
        for (int j = 0, r = static_cast<int>(pt); j < k; ++j, r /= nv) digit[j] = r % nv;
        found.clear();
        auto add = [&](int point) {
            const int e = l0.entry[static_cast<size_t>(point)];
            if (e < 0) return;
            uint32_t packed = static_cast<uint32_t>(e - l0.lo) << 16;
            for (int j = 0, r = point; j < k; ++j, r /= nv) packed |= static_cast<uint32_t>(r % nv) << (2 * j);
            found.push_back(packed);
        };
        for (int j1 = 0; j1 < k; ++j1)
            for (int v1 = 0; v1 < nv; ++v1) {
                if (v1 == digit[j1]) continue;
                const int p1 = static_cast<int>(pt) + (v1 - digit[j1]) * place[j1];
                add(p1);
                for (int j2 = j1 + 1; j2 < k; ++j2)
                    for (int v2 = 0; v2 < nv; ++v2)
                        if (v2 != digit[j2]) add(p1 + (v2 - digit[j2]) * place[j2]);
            }
        std::sort(found.begin(), found.end(), [](uint32_t x, uint32_t y) { return (x >> 16) < (y >> 16); });
        while (!found.empty() && found.size() % 8) found.push_back(found.back());
        if (found.size() > kTwoAwayMost) throw std::logic_error("IQ1 lattices: more entries two changes from a point than the fast pass holds");
        two->list.insert(two->list.end(), found.begin(), found.end());
    }
    two->first.push_back(static_cast<uint32_t>(two->list.size()));
    g.parts[0].two_away = two;
    g.parts[1].two_away = two;
    return g;
}

constexpr int kSuper = 256;

// The grid searches below run entries side by side in 8-lane vectors (one AVX2 register,
// two SSE ones), each lane computing exactly what a scalar loop over the entries would, so
// every clone finds the same bits. (GCC's 16-lane vectors in an AVX-512 clone measured
// slower; the entry scan has an AVX-512 path of its own, in intrinsics.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // the vectors never cross a call
using F8 = float __attribute__((vector_size(32)));
using I8 = int __attribute__((vector_size(32)));
constexpr I8 kLane = {0, 1, 2, 3, 4, 5, 6, 7};

// Lane by lane, (v, at) becomes the lesser of (v, at) and (v2, at2): the smaller value, or
// the lower entry of equal ones. Always inlined and by reference: the AVX2 clone and the
// default one pass vectors in different registers, so an out-of-line copy taking them by
// value (an -O1 build) would be called with the wrong convention.
[[gnu::always_inline]] inline void fold_lanes(F8& v, I8& at, const F8& v2, const I8& at2) {
    const I8 other = (v2 < v) | ((v2 == v) & (at2 < at));
    v = other ? v2 : v;
    at = other ? at2 : at;
}

// The least (v, at) pair of the eight lanes, into lane 0: folded pairwise.
[[gnu::always_inline]] inline void fold_to_lane0(F8& v, I8& at) {
    fold_lanes(v, at, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3), __builtin_shufflevector(at, at, 4, 5, 6, 7, 0, 1, 2, 3));
    fold_lanes(v, at, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5), __builtin_shufflevector(at, at, 2, 3, 0, 1, 6, 7, 4, 5));
    fold_lanes(v, at, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6), __builtin_shufflevector(at, at, 1, 0, 3, 2, 5, 4, 7, 6));
}

// The scan's step over entries [e, hi) one by one, from the least (best_v, best_e) so far.
// A2 holds 2 A_e (the doubling is exact, so these are the bits of 2 * A_e).
[[gnu::always_inline]] inline int scan_rest(const float* A2, const float* B, int e, int hi, float dl, float& best_v, int best_e) {
    for (; e < hi; ++e) {
        const float t = dl * (dl * B[e] - A2[e]);
        if (t < best_v) {
            best_v = t;
            best_e = e;
        }
    }
    return best_e;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(QUANT_NO_CLONES)
#define GRID_AVX512 1
// The same scan on 32 lanes (two AVX-512 registers); the answer does not depend on the lane
// count.
#pragma GCC diagnostic push  // GCC 12's _mm512_reduce_* read an uninitialized half-vector
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) int first_minimum_avx512(const float* A2, const float* B, int lo, int hi, float dl,
                                                            float& best_v) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    const __m512 vdl = _mm512_set1_ps(dl);
    __m512 v0 = _mm512_set1_ps(inf), v1 = v0;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i e0 = _mm512_set1_epi32(lo), e1 = e0;  // the first entry of the 32 where each lane's value was found
    int e = lo;
    for (; e + 32 <= hi; e += 32) {
        const __m512 a0 = _mm512_loadu_ps(A2 + e), a1 = _mm512_loadu_ps(A2 + e + 16);
        const __m512 b0 = _mm512_loadu_ps(B + e), b1 = _mm512_loadu_ps(B + e + 16);
        const __m512 t0 = _mm512_mul_ps(vdl, _mm512_sub_ps(_mm512_mul_ps(vdl, b0), a0));
        const __m512 t1 = _mm512_mul_ps(vdl, _mm512_sub_ps(_mm512_mul_ps(vdl, b1), a1));
        const __mmask16 s0 = _mm512_cmp_ps_mask(t0, v0, _CMP_LT_OQ), s1 = _mm512_cmp_ps_mask(t1, v1, _CMP_LT_OQ);
        v0 = _mm512_mask_mov_ps(v0, s0, t0);
        v1 = _mm512_mask_mov_ps(v1, s1, t1);
        const __m512i at = _mm512_set1_epi32(e);
        e0 = _mm512_mask_mov_epi32(e0, s0, at);
        e1 = _mm512_mask_mov_epi32(e1, s1, at);
    }
    e0 = _mm512_add_epi32(e0, lane);  // the entries themselves (lanes still at +inf hold no entry)
    e1 = _mm512_add_epi32(e1, _mm512_add_epi32(lane, _mm512_set1_epi32(16)));
    // The least (v, entry) pair: v1's lane wins where smaller, or equal with a lower entry.
    const __mmask16 other = _mm512_cmp_ps_mask(v1, v0, _CMP_LT_OQ) |
                            (_mm512_cmp_ps_mask(v1, v0, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(e1, e0));
    v0 = _mm512_mask_mov_ps(v0, other, v1);
    e0 = _mm512_mask_mov_epi32(e0, other, e1);
    best_v = _mm512_reduce_min_ps(v0);
    int best_e = lo;
    if (best_v < inf) best_e = _mm512_mask_reduce_min_epi32(_mm512_cmp_ps_mask(v0, _mm512_set1_ps(best_v), _CMP_EQ_OQ), e0);
    return scan_rest(A2, B, e, hi, dl, best_v, best_e);  // past the last whole 32: later than any lane's
}
#pragma GCC diagnostic pop
#endif

// The first e in [lo, hi) with the least v_e = dl (dl B[e] - A2[e]), A2 = 2 A (NaNs never chosen;
// lo, with v = +inf, when no v_e is finite), and that v: what a scan keeping each strictly
// smaller value finds. Most of the grid i-quants' time is here. Sixteen lanes (two
// vectors): lane l keeps the first least value among the entries e = l (mod 16), and the
// least (v, e) pair over the lanes is the scan's answer. Where the CPU has AVX-512 (and the
// library its clones), the same scan runs on 32 lanes: 1.2-1.3x faster on IQ3_XXS/IQ3_S.
QUANT_AVX2_CLONE
int first_minimum(const float* A2, const float* B, int lo, int hi, float dl, float& best_v) {
#ifdef GRID_AVX512
    if (wide_paths()) return first_minimum_avx512(A2, B, lo, hi, dl, best_v);
#endif
    constexpr float inf = std::numeric_limits<float>::infinity();
    F8 v0 = F8{} + inf, v1 = v0;
    I8 e0 = I8{} + lo, e1 = e0;
    int e = lo;
    for (; e + 16 <= hi; e += 16) {
        F8 a0, a1, b0, b1;
        std::memcpy(&a0, A2 + e, sizeof a0);
        std::memcpy(&a1, A2 + e + 8, sizeof a1);
        std::memcpy(&b0, B + e, sizeof b0);
        std::memcpy(&b1, B + e + 8, sizeof b1);
        const F8 t0 = dl * (dl * b0 - a0), t1 = dl * (dl * b1 - a1);
        const I8 s0 = t0 < v0, s1 = t1 < v1;
        v0 = s0 ? t0 : v0;
        v1 = s1 ? t1 : v1;
        e0 = s0 ? e + kLane : e0;
        e1 = s1 ? e + 8 + kLane : e1;
    }
    // Fold the lanes pairwise down to one. A lane that never found a finite value holds
    // (+inf, lo), and lo is no later than any lane's entry.
    fold_lanes(v0, e0, v1, e1);
    fold_to_lane0(v0, e0);
    best_v = v0[0];
    int best_e = v0[0] < inf ? e0[0] : lo;
    return scan_rest(A2, B, e, hi, dl, best_v, best_e);  // past the last whole 16: later than any lane's
}

// 2 A_e (to A2) and B_e for every entry of the grid, A_e = sum_j w_j a_j g_ej and
// B_e = sum_j w_j g_ej^2 for one group's k targets a and weights w, each summed over j in
// order (sums_of's arithmetic, on lanes).
QUANT_AVX2_CLONE
void entry_sums(const Grid& g, const float* a, const float* w, float* A2, float* B) {
    for (int e = 0; e < g.entries; e += 8) {
        F8 sa{}, sb{};
        for (int j = 0; j < g.k; ++j) {
            F8 ge;
            std::memcpy(&ge, g.value.data() + j * g.entries + e, sizeof ge);
            sa += (w[j] * a[j]) * ge;
            sb += (w[j] * ge) * ge;
        }
        sa += sa;
        std::memcpy(A2 + e, &sa, sizeof sa);
        std::memcpy(B + e, &sb, sizeof sb);
    }
}

// For k = g.k targets a: the least weighted error over all entries with a_f negated, for
// each f (to flipped[f]), and with none negated (returned). Each error is summed over j in
// order, as one search per flip would sum it (the same bits), but the sums share their
// terms: those before f are the unflipped prefix, those after it the unflipped terms.
QUANT_AVX2_CLONE
float flip_errors(const Grid& g, const float* a, const float* w, float dl, float* flipped) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    const int k = g.k;
    F8 best[9];
    for (int f = 0; f <= k; ++f) best[f] = F8{} + inf;
    for (int e = 0; e < g.entries; e += 8) {
        F8 term[8], term_flipped[8];
        for (int j = 0; j < k; ++j) {
            F8 ge;
            std::memcpy(&ge, g.value.data() + j * g.entries + e, sizeof ge);
            const F8 d = a[j] - dl * ge, df = -a[j] - dl * ge;
            term[j] = (w[j] * d) * d;
            term_flipped[j] = (w[j] * df) * df;
        }
        F8 prefix{};
        for (int f = 0; f < k; ++f) {
            F8 err = prefix + term_flipped[f];
            for (int j = f + 1; j < k; ++j) err += term[j];
            best[f] = err < best[f] ? err : best[f];
            prefix += term[f];
        }
        best[k] = prefix < best[k] ? prefix : best[k];
    }
    auto least = [](const F8& v) {
        float m = inf;
        for (int l = 0; l < 8; ++l) m = std::min(m, v[l]);
        return m;
    };
    for (int f = 0; f < k; ++f) flipped[f] = least(best[f]);
    return least(best[k]);
}
#pragma GCC diagnostic pop

// One entry's A = sum_j w_j a_j g_j and B = sum_j w_j g_j^2 (g_j = value(j)), summed over j
// in order: the arithmetic of entry_sums lane by lane, so the same bits; and the v_e the
// scan compares, dl (dl B - 2 A). Everything that stands in for the scan computes with these.
template <class Value>
[[gnu::always_inline]] inline void sums_of(int k, const float* a, const float* w, Value value, float& A, float& B) {
    float sa = 0, sb = 0;
    for (int j = 0; j < k; ++j) {
        const float ge = value(j);
        sa += (w[j] * a[j]) * ge;
        sb += (w[j] * ge) * ge;
    }
    A = sa;
    B = sb;
}
inline float scan_v(float dl, float A, float B) { return dl * (dl * B - 2 * A); }

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
// out[i] = table[index[i]], index in [0, 8).
[[gnu::always_inline]] inline void pick(const F8& table, const I8& index, F8& out) {
#if defined(__clang__)  // clang has no shuffle by a variable index
    for (int i = 0; i < 8; ++i) out[i] = table[index[i] & 7];
#else
    out = __builtin_shuffle(table, index);
#endif
}

// For one group of K targets a, weights w at scale dl whose nearest point `at` is no entry:
// the first least v_e among the point's near entries (Lattice::near_first), to best_v; the
// arithmetic is entry_sums' and first_minimum's, lane by lane, so the bits are the scan's.
template <int K>
[[gnu::always_inline]] inline int near_minimum(const Lattice& l, const F8& table, int at, const float* a, const float* w, float dl,
                                               float& best_v) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    F8 v = F8{} + inf;
    I8 found = I8{} + std::numeric_limits<int>::max();
    float wa[K];
    for (int j = 0; j < K; ++j) wa[j] = w[j] * a[j];
    for (uint32_t c = l.near_first[static_cast<size_t>(at)]; c < l.near_first[static_cast<size_t>(at) + 1]; c += 8) {
        I8 digits, entries;
        std::memcpy(&digits, l.near_digits.data() + c, sizeof digits);
        std::memcpy(&entries, l.near_entry.data() + c, sizeof entries);
        F8 sa{}, sb{};
        for (int j = 0; j < K; ++j) {
            F8 ge;
            pick(table, (digits >> (4 * j)) & 0xf, ge);
            sa += wa[j] * ge;
            sb += (w[j] * ge) * ge;
        }
        sa += sa;
        fold_lanes(v, found, dl * (dl * sb - sa), entries);
    }
    fold_to_lane0(v, found);
    best_v = v[0];
    return found[0];
}

// The one-change step on lanes (Lattice::two_away), for one group of 8 targets a, weights w
// at scale dl whose nearest point `at` (value index nearest[j] on coordinate j, lane j) is no
// entry. As the step below computes them: each coordinate's excess on each value over its
// nearest value, and the three least changes (of a coordinate to a neighbouring value).
// A point c changes away is at least the c least changes away, so the entries one or two
// changes away hold the nearest ones when the least of their excesses, found, is below the
// sum of the three least by more than `margin` (which covers the scan's rounding and the
// excesses' own); then the scan's answer is the first least v_e among the entries within
// found + margin, and otherwise -1. The excesses add as the step adds them (a change's own,
// or two changes' sum) and v_e is near_minimum's arithmetic, so the bits are the step's. (One
// difference: where a candidate's v_e is NaN, its sums past float's range, the step took it
// if it came first and left the group to the search; here a NaN is never taken, as in the
// scan.) testing::use_two_away_lists(false) turns it off, for the test that compares the two.
std::atomic<bool> g_use_two_away{true};
[[gnu::always_inline]] inline int two_away_minimum(const Lattice& l, const F8& table, int at, const I8& nearest, const float* a, const float* w,
                                                   float dl, float margin, float& best_v) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    constexpr int K = 8, NV = 3;
    // On lanes, one a coordinate: the excesses X_i of value i over the nearest one (0 there),
    // and each coordinate's change to a neighbouring value (the lesser of its excesses below
    // and above, as the step takes it); then each coordinate's table of excesses, and the
    // three least changes, kept by compares and selects that insert a change below a kept one
    // as the step's swaps do (the three least, NaNs never kept, whatever the order).
    F8 A, W;
    std::memcpy(&A, a, sizeof A);
    std::memcpy(&W, w, sizeof W);
    F8 vn;
    pick(table, nearest, vn);
    const F8 tn = A - dl * vn, sn = tn * tn;
    F8 excess_of[NV];
    for (int i = 0; i < NV; ++i) {
        const F8 t = A - dl * l.value[i];
        excess_of[i] = nearest == i ? F8{} : W * (t * t - sn);
    }
    const F8 below = nearest == 1 ? excess_of[0] : nearest == 2 ? excess_of[1] : F8{} + inf,
             above = nearest == 0 ? excess_of[1] : nearest == 1 ? excess_of[2] : F8{} + inf;
    const F8 changes = below < above ? below : above;
    F8 excess[K];
    float least0 = inf, least1 = inf, least2 = inf;
    for (int j = 0; j < K; ++j) {
        excess[j] = F8{excess_of[0][j], excess_of[1][j], excess_of[2][j]};
        const float change = changes[j];
        const bool in0 = change < least0;
        const float out0 = in0 ? least0 : change;
        least0 = in0 ? change : least0;
        const bool in1 = out0 < least1;
        const float out1 = in1 ? least1 : out0;
        least1 = in1 ? out0 : least1;
        least2 = out1 < least2 ? out1 : least2;
    }
    const float three = least0 + least1 + least2;
    const Lattice::TwoAway& two = *l.two_away;
    const uint32_t begin = two.first[static_cast<size_t>(at)], end = two.first[static_cast<size_t>(at) + 1];
    if (begin == end) return -1;
    float wa[K];
    for (int j = 0; j < K; ++j) wa[j] = w[j] * a[j];
    F8 xs[kTwoAwayMost / 8], vs[kTwoAwayMost / 8];  // (iq1_with_lattices checks the lists' lengths)
    I8 es[kTwoAwayMost / 8];
    F8 found = F8{} + inf;
    int chunks = 0;
    for (uint32_t c = begin; c < end; c += 8, ++chunks) {
        I8 packed;
        std::memcpy(&packed, two.list.data() + c, sizeof packed);
        F8 sa{}, sb{}, x{};
        for (int j = 0; j < K; ++j) {
            const I8 digit = (packed >> (2 * j)) & 3;
            F8 ge, xj;
            pick(table, digit, ge);
            pick(excess[j], digit, xj);
            x += xj;
            sa += wa[j] * ge;
            sb += (w[j] * ge) * ge;
        }
        sa += sa;
        xs[chunks] = x;
        vs[chunks] = dl * (dl * sb - sa);
        es[chunks] = ((packed >> 16) & 0xffff) + l.lo;
        found = x < found ? x : found;
    }
    float least_found = inf;
    for (int i = 0; i < 8; ++i) least_found = found[i] < least_found ? found[i] : least_found;
    const float limit = least_found + margin;
    if (!(limit < three)) return -1;
    F8 v = F8{} + inf;
    I8 e = I8{} + std::numeric_limits<int>::max();
    for (int i = 0; i < chunks; ++i) fold_lanes(v, e, xs[i] <= limit ? vs[i] : F8{} + inf, es[i]);
    fold_to_lane0(v, e);
    best_v = v[0];
    return e[0];
}

// The fast pass of `assign`: for the groups [first, first + count) of K values (count K a
// multiple of 8) at scale dl > 0, over lattice part l, the scan's answer where the lattice
// proves it, on lanes. Proven: a group whose nearest point (every coordinate on its nearest
// value) is an entry, every other point further by more than T, its bound (from `bound`:
// lattice_search's slack plus this pass's own float error). With one_away also a group
// whose nearest point is no entry, where the candidates are its entries one or two
// coordinates away (see below); with near (the lattices with near-entry lists: IQ3_S, IQ2_S),
// a group whose nearest point is no entry, among the point's near entries. Each proven group's entry goes to entry[q] and the scan's v_e to v[q],
// and bit q of the result is set. The nearest values come from compares with the
// midpoints; where one is wrong (a value on a midpoint) its neighbour is no further, and
// the group is left to the search or the scan.
template <int K, int NV>
[[gnu::always_inline]] inline unsigned nearest_points(const Lattice& l, const float* a, const float* w, const float* const* bound,
                                                      int count, float dl, bool one_away, bool near, int* entry, float* v) {
    constexpr float inf = std::numeric_limits<float>::infinity();
    F8 table{};
    for (int i = 0; i < NV; ++i) table[i] = l.value[i];
    I8 place;  // of each lane's digit in its group's point
    for (int i = 0, p = 1; i < 8; ++i, p = i % K ? p * NV : 1) place[i] = p;
    unsigned done = 0;
    for (int c = 0; c < count * K; c += 8) {
        F8 A, W, T2, T1, T0;
        std::memcpy(&A, a + c, sizeof A);
        std::memcpy(&W, w + c, sizeof W);
        std::memcpy(&T2, bound[2] + c, sizeof T2);
        std::memcpy(&T1, bound[1] + c, sizeof T1);
        std::memcpy(&T0, bound[0] + c, sizeof T0);
        const F8 T = ((dl * dl) * T2 + dl * T1 + T0) * (1 + 0x1p-18f);  // rounded up past float's errors
        I8 n{};
        for (int i = 0; i + 1 < NV; ++i) n -= A > dl * l.mid[i];
        const I8 below = n > 0 ? n - 1 : n, above = n < NV - 1 ? n + 1 : n;
        F8 vn, vb, va;
        pick(table, n, vn);
        pick(table, below, vb);
        pick(table, above, va);
        const F8 tn = A - dl * vn, tb = A - dl * vb, ta = A - dl * va;
        const F8 sn = tn * tn;
        F8 eb = W * (tb * tb - sn), ea = W * (ta * ta - sn);
        eb = n > 0 ? eb : inf;
        ea = n < NV - 1 ? ea : inf;
        // Summed over each group's lanes: its point, and how many of its lanes are settled
        // (-K when all are).
        I8 point = n * place, ok = (eb < ea ? eb : ea) > T;
        point += __builtin_shufflevector(point, point, 1, 0, 3, 2, 5, 4, 7, 6);
        ok += __builtin_shufflevector(ok, ok, 1, 0, 3, 2, 5, 4, 7, 6);
        point += __builtin_shufflevector(point, point, 2, 3, 0, 1, 6, 7, 4, 5);
        ok += __builtin_shufflevector(ok, ok, 2, 3, 0, 1, 6, 7, 4, 5);
        if constexpr (K == 8) {
            point += __builtin_shufflevector(point, point, 4, 5, 6, 7, 0, 1, 2, 3);
            ok += __builtin_shufflevector(ok, ok, 4, 5, 6, 7, 0, 1, 2, 3);
        }
        for (int q = c / K; q < (c + 8) / K; ++q) {
            const int lane = q * K - c;  // the group's first
            if (ok[lane] != -K) continue;
            const float *ag = a + q * K, *wg = w + q * K;
            // v_e for the entry at the nearest point with coordinates j1 and j2 (where >= 0)
            // on values i1 and i2 (its coordinates are the lattice's values: no strided grid
            // reads).
            auto entry_v = [&](int j1, int i1, int j2 = -1, int i2 = 0) {
                float sa, sb;
                sums_of(K, ag, wg, [&](int j) { return l.value[j == j1 ? i1 : j == j2 ? i2 : n[lane + j]]; }, sa, sb);
                return scan_v(dl, sa, sb);
            };
            const int at = point[lane];
            int e = l.entry[static_cast<size_t>(at)];
            float best_v = 0;
            if (e >= 0) {
                best_v = entry_v(-1, 0);
            } else if (near && !one_away) {
                if (l.near_first.empty()) continue;
                e = near_minimum<K>(l, table, at, ag, wg, dl, best_v);
            } else if (!one_away) {
                continue;
            } else if (K == 8 && NV == 3 && l.two_away && g_use_two_away.load(std::memory_order_relaxed)) {  // (IQ1's lattices)
                if constexpr (K == 8 && NV == 3) {  // (a group fills the lanes: lane is 0)
                    e = two_away_minimum(l, table, at, n, ag, wg, dl, 3 * T[lane], best_v);
                    if (e < 0) continue;
                }
            } else {
                // The nearest point is no entry: the points one coordinate away, and where
                // those may not be the nearest entries, two away. Every coordinate's least
                // change is more than T, so a point c changes away is at least the c least
                // changes (of c coordinates) away; the candidates (within `found` + 3T, which
                // covers the scan's rounding and these excesses' own) are the entries one or
                // two changes away when that is less than the three least changes.
                float least[3] = {inf, inf, inf};
                for (int j = 0; j < K; ++j) {
                    float change = eb[lane + j] < ea[lane + j] ? eb[lane + j] : ea[lane + j];
                    for (int r = 0; r < 3; ++r)
                        if (change < least[r]) std::swap(change, least[r]);
                }
                const float margin = 3 * T[lane], two = least[0] + least[1], three = two + least[2];
                struct Change {
                    float excess;
                    int j, i, step;  // coordinate j to value i: the point moves by `step`
                };
                Change change[K * (NV - 1)];
                int changes = 0;
                for (int j = 0, place_j = 1; j < K; ++j, place_j *= NV) {
                    const int nj = n[lane + j];
                    const float tn_j = ag[j] - dl * l.value[nj], sn_j = tn_j * tn_j;
                    for (int step : {-1, 1})
                        for (int i = nj + step; i >= 0 && i < NV; i += step) {
                            const float t = ag[j] - dl * l.value[i], x = wg[j] * (t * t - sn_j);
                            if (!(x <= three + margin)) break;  // and so are those further (convexity)
                            change[changes++] = {x, j, i, (i - nj) * place_j};
                        }
                }
                struct Candidate {
                    float excess;
                    int e, c1, c2;  // changes c1 and (where >= 0) c2
                };
                Candidate candidate[K * (NV - 1) * (K * (NV - 1) + 1) / 2];
                int candidates = 0;
                float found = inf;
                // The entries one change away, those up to two + margin or those beyond it (the
                // bound computed once, so that none is dropped or taken twice).
                const float two_bound = two + margin;
                auto add_singles = [&](bool beyond_two) {
                    for (int ci = 0; ci < changes; ++ci) {
                        if ((change[ci].excess <= two_bound) == beyond_two) continue;
                        const int f = l.entry[static_cast<size_t>(at + change[ci].step)];
                        if (f < 0) continue;
                        candidate[candidates++] = {change[ci].excess, f, ci, -1};
                        found = std::min(found, change[ci].excess);
                    }
                };
                add_singles(false);
                float limit = found + margin;
                if (!(limit < two)) {  // a point two changes away may be nearer: those too, and the single changes up to three
                    add_singles(true);
                    for (int c1 = 0; c1 < changes; ++c1)
                        for (int c2 = c1 + 1; c2 < changes; ++c2) {
                            const float x = change[c1].excess + change[c2].excess;
                            if (change[c1].j == change[c2].j || !(x <= three + margin)) continue;
                            const int f = l.entry[static_cast<size_t>(at + change[c1].step + change[c2].step)];
                            if (f < 0) continue;
                            candidate[candidates++] = {x, f, c1, c2};
                            found = std::min(found, x);
                        }
                    limit = found + margin;
                    if (!(limit < three)) continue;
                }
                for (int ci = 0; ci < candidates; ++ci) {
                    const Candidate& cand = candidate[ci];
                    if (!(cand.excess <= limit)) continue;
                    const Change& c1 = change[cand.c1];
                    const float sv = cand.c2 < 0 ? entry_v(c1.j, c1.i) : entry_v(c1.j, c1.i, change[cand.c2].j, change[cand.c2].i);
                    if (e < 0 || sv < best_v || (sv == best_v && cand.e < e)) {
                        e = cand.e;
                        best_v = sv;
                    }
                }
            }
            if (!std::isfinite(best_v)) continue;  // the scan's choice among errors past float's range is no nearest point
            entry[q] = e;
            v[q] = best_v;
            done |= 1u << q;
        }
    }
    return done;
}

QUANT_AVX2_CLONE
unsigned nearest_points_4x8(const Lattice& l, const float* a, const float* w, const float* const* bound, int count, float dl,
                            bool one_away, bool near, int* entry, float* v) {
    return nearest_points<4, 8>(l, a, w, bound, count, dl, one_away, near, entry, v);
}
QUANT_AVX2_CLONE
unsigned nearest_points_8x3(const Lattice& l, const float* a, const float* w, const float* const* bound, int count, float dl,
                            bool one_away, bool near, int* entry, float* v) {
    return nearest_points<8, 3>(l, a, w, bound, count, dl, one_away, near, entry, v);
}
#pragma GCC diagnostic pop

// A_e and B_e of one entry, from the grid.
inline void entry_sum(const Grid& g, int e, const float* a, const float* w, float& A, float& B) {
    sums_of(g.k, a, w, [&](int j) { return g.value[static_cast<size_t>(j * g.entries + e)]; }, A, B);
}

// Twice the bound on the float error of the scan's v_e, for a group of k values with
// sw = sum w_j and swa = sum |w_j a_j| at scale d over values of magnitude up to m:
// |fl(v_e) - v_e| <= (k + 5) u (d^2 sw m^2 + 2 d swa m), u = 2^-24, taken with a margin, and
// a little more for results below the normal range (where errors are absolute).
inline double scan_slack(int k, double d, double m, double sw, double swa) {
    return 3.0 * (k + 6) * 0x1p-24 * (d * d * sw * m * m + 2 * d * swa * m) + 0x1p-140;
}

// The scan's v_e for one entry, bit for bit.
inline float entry_v(const Grid& g, int e, const float* a, const float* w, float dl) {
    float A, B;
    entry_sum(g, e, a, w, A, B);
    return scan_v(dl, A, B);
}

// What first_minimum finds among the entries of lattice part l, for one group's K targets a
// and weights w at scale dl, found without a scan where the lattice proves it; -1 where it
// cannot (the caller scans).
//
// The error of an entry, sum_j w_j (a_j - dl g_j)^2, is the lattice's least error (each
// coordinate on its nearest value) plus each coordinate's excess over its own least. The
// scan compares v_e computed in float, each within slack/2 of its exact value (the bound
// below), so the entry it picks has an exact excess within `slack` of the least excess of
// any entry. Those candidates are found by walking the lattice points within a bound of
// excess (raised until an entry is among them); their v_e are computed as the scan computes
// them, and the first least is its answer. sw = sum w_j and swa = sum |w_j a_j| bound the
// float errors: |fl(v_e) - v_e| <= (K + 5) u (dl^2 sw max^2 + 2 dl swa max), u = 2^-24.
template <int K, int NV>
[[gnu::always_inline]] inline int lattice_search(const Grid& g, const Lattice& l, const float* a, const float* w, double sw,
                                                 double swa, float dl, float& best_v) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    const double d = dl;
    if (!(d > 0) || !(d < inf)) return -1;
    // excess[i][j]: coordinate j's error at value i over its least, so >= 0, and 0 at
    // nearest[j]. Branch-free, across coordinates, so that it runs on lanes.
    double excess[NV][K], lowest[K], change[K];
    int nearest[K];
    bool usable = true;
    for (int j = 0; j < K; ++j) usable &= w[j] >= 0;
    for (int i = 0; i < NV; ++i)
        for (int j = 0; j < K; ++j) {
            const double t = static_cast<double>(a[j]) - d * l.value[i];
            excess[i][j] = static_cast<double>(w[j]) * t * t;
        }
    for (int j = 0; j < K; ++j) {
        lowest[j] = excess[0][j];
        nearest[j] = 0;
    }
    for (int i = 1; i < NV; ++i)
        for (int j = 0; j < K; ++j) {
            const bool less = excess[i][j] < lowest[j];
            lowest[j] = less ? excess[i][j] : lowest[j];
            nearest[j] = less ? i : nearest[j];
        }
    for (int j = 0; j < K; ++j) {
        usable &= lowest[j] < inf;  // not a number, or too large
        change[j] = inf;
    }
    if (!usable) return -1;
    for (int i = 0; i < NV; ++i)
        for (int j = 0; j < K; ++j) {
            excess[i][j] -= lowest[j];
            change[j] = nearest[j] != i && excess[i][j] < change[j] ? excess[i][j] : change[j];
        }
    double least1 = inf, least2 = inf;  // the two least excesses of a change of one coordinate
    int place[K], point = 0;
    for (int j = 0, p = 1; j < K; ++j, p *= NV) {
        least2 = std::min(least2, std::max(least1, change[j]));
        least1 = std::min(least1, change[j]);
        place[j] = p;
        point += nearest[j] * p;
    }
    const double slack = scan_slack(K, d, l.max_abs, sw, swa);
    if (!(slack < inf)) return -1;
    const int at = l.entry[static_cast<size_t>(point)];
    if (at >= 0 && least1 > slack) {  // the nearest point is an entry, and every other point is further than slack
        best_v = entry_v(g, at, a, w, dl);
        return std::isfinite(best_v) ? at : -1;
    }
    // The entries at points of excess up to `bound`, into `found` (false: too many).
    struct Found {
        double excess;
        int e;
    };
    Found found[64];
    int n_found = 0;
    auto walk = [&](auto&& self, int j, int pt, double sum, double bound) -> bool {
        if (j == K) {
            const int e = l.entry[static_cast<size_t>(pt)];
            if (e < 0) return true;
            if (n_found == 64) return false;
            found[n_found++] = {sum, e};
            return true;
        }
        for (int i = 0; i < NV; ++i)
            if (sum + excess[i][j] <= bound && !self(self, j + 1, pt + (i - nearest[j]) * place[j], sum + excess[i][j], bound))
                return false;
        return true;
    };
    double bound = (at >= 0 ? 0 : least1) + slack, least = inf;
    for (int tries = 0;; ++tries) {
        n_found = 0;
        if (tries == 8 || !walk(walk, 0, point, 0.0, bound)) return -1;
        least = inf;
        for (int c = 0; c < n_found; ++c) least = std::min(least, found[c].excess);
        if (least + slack <= bound) break;  // every candidate is among those found
        bound = n_found > 0 ? least + slack : 4 * std::max(bound, least1 + least2);
    }
    int best = -1;
    float bv = std::numeric_limits<float>::infinity();
    for (int c = 0; c < n_found; ++c) {
        if (found[c].excess > least + slack) continue;
        const int e = found[c].e;
        const float v = entry_v(g, e, a, w, dl);
        if (!std::isfinite(v)) return -1;
        if (v < bv || (v == bv && e < best)) {
            bv = v;
            best = e;
        }
    }
    best_v = bv;
    return best;
}

// Where the lattice pays, measured on this code's first machine (AVX-512; CPU ns per value
// of 2 rows of 4096, normal values with Student-t tails and log-normal importance, lattice
// on and off alternating in one process, least of 11): scanning a few hundred entries on
// lanes costs less than the fast pass plus the scans of the groups it leaves (IQ2_XS, 512
// entries of 8: 626 -> 661), and the search's and the one-change step's scalar arithmetic
// and branches cost more than a scan of up to 1024 entries (IQ2_S 802 -> 852 with the
// one-change step). The fast pass pays on IQ3_S (512 entries of 4: 1226 -> 1072) and IQ2_S
// (1024 of 8: 831 -> 717); all three on IQ1 (2048 a shift: IQ1_S 3199 -> 1315, IQ1_M
// 3025 -> 1519). With the near entries in place of the scans (2026-12-05; CPU ns a value of
// 32 rows of 4096, Student-t values, log-normal importance, median of 5): IQ3_S 178 -> 100,
// IQ2_S 172 -> 70; IQ3_XXS (256 entries) measured the same with and without the fast pass
// and its near entries (113-116), and keeps its scans.
constexpr int kSettleFrom4 = 512, kSettleFrom8 = 1024, kSearchFrom = 2048;

std::atomic<bool> g_use_lattice{true};

QUANT_AVX2_CLONE
int lattice_search_4x8(const Grid& g, const Lattice& l, const float* a, const float* w, double sw, double swa, float dl, float& v) {
    return lattice_search<4, 8>(g, l, a, w, sw, swa, dl, v);
}
QUANT_AVX2_CLONE
int lattice_search_8x3(const Grid& g, const Lattice& l, const float* a, const float* w, double sw, double swa, float dl, float& v) {
    return lattice_search<8, 3>(g, l, a, w, sw, swa, dl, v);
}

// Per group of k values: C = sum w a^2, the bounds lattice_search takes, and (built when a
// group first needs a scan) A_e and B_e for every entry.
struct Tables {
    const Grid* g = nullptr;
    const float *a = nullptr, *w = nullptr;
    std::vector<float> A2, B, C;  // A2: 2 A_e (entry_sums)
    std::vector<double> sw, swa;
    std::vector<uint8_t> built;
    enum class Shape { None, K4V8, K8V3 } shape = Shape::None;  // the lattice's, where the fast pass is used
    bool search = false;                                         // and lattice_search too
    // Per value, its group's bound on the fast pass's error as d^2 bound[2] + d bound[1] +
    // bound[0]: lattice_search's slack, plus 32 u (C + d^2 m^2 sw) for the pass's own
    // float arithmetic (its excesses are within 24 u w_j (a_j^2 + d^2 m^2) each).
    float bound[3][kSuper];

    void build(const Grid& grid, const float* targets, const float* weights, int groups) {
        g = &grid;
        a = targets;
        w = weights;
        A2.resize(static_cast<size_t>(groups * g->entries));
        B.resize(A2.size());
        C.assign(static_cast<size_t>(groups), 0);
        sw.assign(static_cast<size_t>(groups), 0);
        swa.assign(static_cast<size_t>(groups), 0);
        built.assign(static_cast<size_t>(groups), 0);
        for (int q = 0; q < groups; ++q) {
            const float* ag = a + q * g->k;
            const float* wg = w + q * g->k;
            for (int j = 0; j < g->k; ++j) {
                C[q] += wg[j] * ag[j] * ag[j];
                sw[q] += wg[j];
                swa[q] += std::fabs(static_cast<double>(wg[j]) * ag[j]);
            }
        }
        // For every grid, also those the fast pass skips (testing::grid_entry runs it on all).
        if (!g->parts.empty()) {  // (IQ1's two parts have the same largest magnitude)
            constexpr double u = 0x1p-24;
            const double m = g->parts[0].max_abs, c = 3.0 * (g->k + 6) * u;
            for (int i = 0; i < groups * g->k; ++i) {
                const int q = i / g->k;
                bound[2][i] = static_cast<float>((c + 32 * u) * m * m * sw[q]);
                bound[1][i] = static_cast<float>(2 * c * m * swa[q]);
                bound[0][i] = static_cast<float>(32 * u * C[q] + 0x1p-140);
            }
        }
        shape = Shape::None;
        search = false;
        const int part = g->parts.empty() || !g_use_lattice.load(std::memory_order_relaxed) ? 0 : g->parts[0].hi - g->parts[0].lo;
        if (part >= kSettleFrom4 && g->k == 4 && g->parts[0].nv == 8) shape = Shape::K4V8;
        if (part >= kSettleFrom8 && g->k == 8 && g->parts[0].nv == 3) shape = Shape::K8V3;
        search = shape != Shape::None && part >= kSearchFrom;
    }
    // A_e and B_e of group q's entry e.
    void sums(int q, int e, float& Ae, float& Be) const { entry_sum(*g, e, a + q * g->k, w + q * g->k, Ae, Be); }
    // The fast pass over groups [first, first + count) at scale dl, entries [lo, hi): the
    // groups it settles (bit q - first), their entries and v_e (at q - first).
    unsigned settle(int first, int count, float dl, int lo, int hi, int* entry, float* v) const {
        const double d = dl;
        if (shape == Shape::None || !(d > 0) || !(d < std::numeric_limits<double>::infinity())) return 0;
        unsigned done = ~0u >> (32 - count);
        bool first_part = true;
        const float* const bounds[3] = {bound[0] + first * g->k, bound[1] + first * g->k, bound[2] + first * g->k};
        for (const Lattice& l : g->parts) {
            if (l.lo < lo || l.hi > hi) continue;
            int e[8];
            float part_v[8];
            const float *ag = a + first * g->k, *wg = w + first * g->k;
            done &= shape == Shape::K4V8 ? nearest_points_4x8(l, ag, wg, bounds, count, dl, search, true, e, part_v)
                                         : nearest_points_8x3(l, ag, wg, bounds, count, dl, search, true, e, part_v);
            for (int q = 0; q < count; ++q)
                if (done >> q & 1 && (first_part || part_v[q] < v[q])) {  // a later part only with a smaller v
                    entry[q] = e[q];
                    v[q] = part_v[q];
                }
            first_part = false;
        }
        return done;
    }
    // The best entry in [lo, hi) (the whole grid or its parts) for group q at scale dl, and
    // its error: the first of least v_e, as first_minimum finds it.
    int best(int q, int lo, int hi, float dl, float& err) {
        float best_v = 0;
        int e = -1;
        if (search)
            for (const Lattice& l : g->parts) {
                if (l.lo < lo || l.hi > hi) continue;
                float v;
                const float *ag = a + q * g->k, *wg = w + q * g->k;
                const int found = shape == Shape::K4V8 ? lattice_search_4x8(*g, l, ag, wg, sw[q], swa[q], dl, v)
                                                       : lattice_search_8x3(*g, l, ag, wg, sw[q], swa[q], dl, v);
                if (found < 0) {
                    e = -1;
                    break;
                }
                if (e < 0 || v < best_v) {  // a later part only with a smaller v
                    e = found;
                    best_v = v;
                }
            }
        if (e < 0) {
            const size_t at = static_cast<size_t>(q * g->entries);
            if (!built[q]) {
                entry_sums(*g, a + q * g->k, w + q * g->k, A2.data() + at, B.data() + at);
                built[q] = 1;
            }
            e = first_minimum(A2.data() + at, B.data() + at, lo, hi, dl, best_v);
        }
        err = C[q] + best_v;
        return e;
    }
};

// Error of groups [first, first + count) at scale dl, their entries (from [lo, hi)) written
// to `entry`.
float assign(Tables& t, int first, int count, float dl, uint16_t* entry, int lo, int hi) {
    int settled[8];
    float v[8];
    const unsigned done = t.settle(first, count, dl, lo, hi, settled, v);
    float err = 0;
    for (int q = first; q < first + count; ++q) {
        float e;
        if (done >> (q - first) & 1) {
            entry[q] = static_cast<uint16_t>(settled[q - first]);
            e = t.C[q] + v[q - first];
        } else {
            entry[q] = static_cast<uint16_t>(t.best(q, lo, hi, dl, e));
        }
        err += e;
    }
    return err;
}

// Least-squares scale for the entries chosen: sum A / sum B over the groups.
float refit(const Tables& t, int first, int count, const uint16_t* entry) {
    float sa = 0, sb = 0;
    for (int q = first; q < first + count; ++q) {
        float A, B;
        t.sums(q, entry[q], A, B);
        sa += A;
        sb += B;
    }
    return sb > 0 ? std::max(0.0f, sa / sb) : 0.0f;
}

}  // namespace

const Grid& grid_iq2xxs() { static const Grid g = with_flat_magnitude(with_lattice(unpack(grids::kIQ2XXS, 8))); return g; }
const Grid& grid_iq2xs() { static const Grid g = with_flat_magnitude(with_lattice(unpack(grids::kIQ2XS, 8))); return g; }
const Grid& grid_iq2s() { static const Grid g = with_flat_magnitude(with_near_entries(with_lattice(unpack(grids::kIQ2S, 8)))); return g; }
const Grid& grid_iq3xxs() { static const Grid g = with_flat_magnitude(with_lattice(unpack(grids::kIQ3XXS, 4))); return g; }
const Grid& grid_iq3s() { static const Grid g = with_flat_magnitude(with_near_entries(with_lattice(unpack(grids::kIQ3S, 4)))); return g; }
const Grid& grid_iq1() { static const Grid g = with_flat_magnitude(iq1_with_lattices(unpack_iq1())); return g; }

namespace {

// For 8 values whose signs have odd parity, the one to store with the wrong sign: the one
// whose flip leaves the least error once the grid does its best, at a provisional scale.
int best_flip(const Grid& g, const float* a, const float* w, float dl) {
    // Each part of g.k values: its least error with each value negated, and as it is.
    float flipped[8], unflipped[2];
    for (int h = 0; h < 8; h += g.k) unflipped[h / g.k] = flip_errors(g, a + h, w + h, dl, flipped + h);
    int best_j = 0;
    float best = std::numeric_limits<float>::infinity();
    for (int j = 0; j < 8; ++j) {
        float err = 0;
        for (int h = 0; h < 8; h += g.k) err += j / g.k == h / g.k ? flipped[j] : unflipped[h / g.k];
        if (err < best) {
            best = err;
            best_j = j;
        }
    }
    return best_j;
}

}  // namespace

namespace {

std::atomic<int> g_forced_search{0};  // testing::force_grid_search: 0 none, 1 narrow, 2 wide

// IQ1's starting scale for a span of n values a (weights w, groups of 8), from the ternary fit
// without the grid: each value on one of the levels dl (-1 + s), dl s, dl (1 + s), s = +-1/8
// its group's shift. For a given dl the nearest level of a value a > 0 is the top one until
// dl passes a / (1/2 + s), then the middle one; of a < 0 the bottom one until -a / (1/2 - s)
// (of 0, the middle one); so as dl grows from 0 the nearest levels change once per value, and
// the n + 1 assignments met on the way include the best fit of all: for each, the
// least-squares scale sum w a L / sum w L^2 lowers the error by (sum w a L)^2 / sum w L^2. Over
// every pattern of shifts (shared_shift, IQ1_S: the span's one shift, either sign; else
// IQ1_M's, each group its own: 2^groups patterns), the scale of the largest lowering, and the
// pattern (returned; 0 when no assignment has a positive scale, and then dl = 0).
// The sweep is done on lanes: lane c is the assignment met once dl has passed every
// breakpoint up to c's own (equal ones together), its sums those of the first assignment plus
// each value's step whose breakpoint is no later; a further one is the first assignment. This
// does n x n additions instead of putting the breakpoints in order (by counting, on lanes) and
// sweeping them, and no branch depends on the values: 2.1x faster on IQ1_M's spans (51 -> 25
// ns a value, AVX-512; 29 with AVX2) and 2.4x on IQ1_S's (23 -> 12). Without AVX2 (the
// 'default' clone), 1.4x slower than the ordered sweep. The sums are added in another order
// than the sweep's, so a scale may differ in its last bit where two orders round apart (none
// did on 400,000 spans of each kind).
constexpr int kIq1Group = 8;  // values per grid entry
template <int kVectors>  // of four lanes: 4 x kVectors values at most
[[gnu::always_inline]] inline int ternary_start_lanes(const float* a, const float* w, int n, bool shared_shift, float& dl) {
    using V4d = double __attribute__((vector_size(32)));
    const V4d zero{};
    const int patterns = shared_shift ? 2 : 1 << (n / kIq1Group);
    double best_num2 = 0, best_den = 0;
    int best_pattern = 0;
    dl = 0;
    for (int p = 0; p < patterns; ++p) {
        float start_level[32], step_num[32], step_den[32], brk[32];
        const int shift_bits = shared_shift ? (p ? -1 : 0) : p;  // bit g: group g's shift is -1/8
        for (int g = 0; g < n / kIq1Group; ++g) {
            const float sh = (shift_bits >> g & 1) ? -0.125f : 0.125f;
#pragma omp simd
            for (int i = kIq1Group * g; i < kIq1Group * (g + 1); ++i) {
                const float sign = static_cast<float>((a[i] > 0) - (a[i] < 0));
                const float level = sh + sign;  // the nearest level as dl -> 0
                start_level[i] = level;
                step_num[i] = w[i] * a[i] * (sh - level);  // moving to the middle level
                step_den[i] = w[i] * (sh * sh - level * level);
                brk[i] = std::fabs(a[i]) / (0.5f + sign * sh);  // 0 for a zero
            }
        }
        double num0 = 0, den0 = 0;  // the first assignment's sums (in double, as the lanes')
        alignas(32) double lane_brk[4 * kVectors];
        for (int i = 0; i < n; ++i) {
            num0 += static_cast<double>(w[i]) * a[i] * start_level[i];
            den0 += static_cast<double>(w[i]) * start_level[i] * start_level[i];
            lane_brk[i] = brk[i];
        }
        for (int i = n; i < 4 * kVectors; ++i) lane_brk[i] = -1;  // lanes past n take no step
        V4d at[kVectors], num[kVectors], den[kVectors];
        for (int v = 0; v < kVectors; ++v) {
            std::memcpy(&at[v], lane_brk + 4 * v, sizeof(V4d));
            num[v] = zero + num0;
            den[v] = zero + den0;
        }
        for (int k = 0; k < n; ++k) {
            const V4d bk = zero + static_cast<double>(brk[k]), sn = zero + static_cast<double>(step_num[k]), sd = zero + static_cast<double>(step_den[k]);
            for (int v = 0; v < kVectors; ++v) {
                num[v] += bk <= at[v] ? sn : zero;
                den[v] += bk <= at[v] ? sd : zero;
            }
        }
        double nums[4 * kVectors + 1], dens[4 * kVectors + 1], lowering[4 * kVectors + 1];
        for (int v = 0; v < kVectors; ++v) {
            std::memcpy(nums + 4 * v, &num[v], sizeof(V4d));
            std::memcpy(dens + 4 * v, &den[v], sizeof(V4d));
        }
        nums[n] = num0;
        dens[n] = den0;
        // The pattern's largest lowering num^2 / den (num, den > 0), the first lane of it; then
        // compared with the best so far as num^2 x best_den > best_num2 x den.
#pragma omp simd
        for (int c = 0; c <= n; ++c) lowering[c] = (nums[c] > 0) & (dens[c] > 0) ? nums[c] * nums[c] / dens[c] : 0.0;
        double most = 0;
#pragma omp simd reduction(max : most)
        for (int c = 0; c <= n; ++c) most = std::max(most, lowering[c]);
        if (most > 0) {
            int c = 0;
            while (lowering[c] != most) ++c;
            const double nu = nums[c], de = dens[c];
            if (best_den == 0 || nu * nu * best_den > best_num2 * de) {
                best_num2 = nu * nu;
                best_den = de;
                dl = static_cast<float>(nu / de);
                best_pattern = p;
            }
        }
    }
    return best_pattern;
}

QUANT_AVX2_CLONE int ternary_start(const float* a, const float* w, int n, bool shared_shift, float& dl) {
    return n <= 16 ? ternary_start_lanes<4>(a, w, n, shared_shift, dl) : ternary_start_lanes<8>(a, w, n, shared_shift, dl);
}

// The fit of one super-block by one search (GridSearch::Narrow, Wide or Ternary).
GridFit fit_grid_search(const float* x, const float* w, const Grid& grid, ScaleCode code, GridOptions options, GridSearch search) {
    const bool wide = search == GridSearch::Wide, ternary = search == GridSearch::Ternary && options.signed_grid;
    const int scale_span = options.scale_span;
    const bool parity_signs = options.parity_signs;
    GridFit f;
    // Signs, and the signed targets a: |x|, or -|x| for a value whose sign parity forced.
    float a[kSuper];
    for (int o = 0; o < kSuper / 8; ++o) {
        uint8_t mask = 0;
        for (int j = 0; j < 8; ++j) {
            const int i = 8 * o + j;
            if (x[i] < 0 && !options.signed_grid) mask |= static_cast<uint8_t>(1u << j);
            a[i] = options.signed_grid ? x[i] : std::fabs(x[i]);
        }
        if (parity_signs && (std::popcount(mask) & 1)) {
            const int span = (8 * o) / scale_span * scale_span;
            float amax = 0;
            for (int i = span; i < span + scale_span; ++i) amax = std::max(amax, std::fabs(x[i]));
            int j = 0;
            if (wide) {
                j = best_flip(grid, a + 8 * o, w + 8 * o, amax / grid.max_magnitude * 0.8f);
            } else {  // the value of least w x^2 (the first of equal ones)
                float least = std::numeric_limits<float>::infinity();
                for (int i = 0; i < 8; ++i)
                    if (const float c = w[8 * o + i] * a[8 * o + i] * a[8 * o + i]; c < least) {
                        least = c;
                        j = i;
                    }
            }
            mask ^= static_cast<uint8_t>(1u << j);
            a[8 * o + j] = -a[8 * o + j];
        }
        f.signs[o] = mask;
    }
    const int groups = kSuper / grid.k, per_scale = scale_span / grid.k, scales = kSuper / scale_span;
    static thread_local Tables t;
    t.build(grid, a, w, groups);

    // Each scale's span on its own (for each half of the grid it may draw from).
    const int half_size = grid.entries / options.entry_halves;
    // only_half >= 0: from that half alone.
    auto span_error = [&](int first, float dl_s, uint16_t* entries, int only_half = -1) {
        float best = std::numeric_limits<float>::infinity();
        uint16_t tmp[64];
        for (int h = 0; h < options.entry_halves; ++h) {
            if (only_half >= 0 && h != only_half) continue;
            const float err = assign(t, first, per_scale, dl_s, tmp, h * half_size, (h + 1) * half_size);
            if (err < best) {
                best = err;
                std::copy(tmp + first, tmp + first + per_scale, entries + first);
            }
        }
        return best;
    };
    float dl[16], dl_weight[16];
    uint16_t trial[64];
    for (int s = 0; s < scales; ++s) {
        const int first = s * per_scale;
        float amax = 0;
        for (int i = s * scale_span; i < (s + 1) * scale_span; ++i) amax = std::max(amax, std::fabs(a[i]));
        float best = std::numeric_limits<float>::infinity();
        dl[s] = 0;
        // Starting scales: the largest value on the largest magnitude (and a little short of
        // it; the wide search also at 0.6), and, where that is smaller, on the largest
        // magnitude of an entry of equal ones (for flat spans); the wide search puts it on
        // every smaller magnitude instead.
        // The ternary search (IQ1) starts from the best fit without the grid alone, and keeps
        // to the half of the grid of its shift (IQ1_S; IQ1_M's groups choose theirs).
        float starts[16];
        int n_starts = 0, half = -1;
        if (ternary) {
            const int pattern = ternary_start(a + s * scale_span, w + s * scale_span, scale_span, options.entry_halves == 2, starts[0]);
            n_starts = 1;
            if (options.entry_halves == 2) half = pattern;
        } else {
            if (wide) starts[n_starts++] = amax / grid.max_magnitude * 0.6f;
            for (float factor : {0.75f, 0.9f, 1.05f}) starts[n_starts++] = amax / grid.max_magnitude * factor;
            if (!wide && grid.flat_magnitude > 0 && grid.flat_magnitude < grid.max_magnitude) starts[n_starts++] = amax / grid.flat_magnitude;
            if (wide)
                for (float m : grid.magnitudes)
                    if (m < grid.max_magnitude && n_starts < 16) starts[n_starts++] = amax / m;
        }
        // The rounds from different starts often reach the same scale (a third of the trials
        // on IQ2_XS): a scale tried before gives the same entries and error without a search.
        struct Tried {
            float d, err;
            uint16_t entries[8];
        };
        Tried tried[64];
        int n_tried = 0;
        auto trial_error = [&](float d) {
            for (int i = 0; i < n_tried; ++i)
                if (tried[i].d == d) {
                    std::copy(tried[i].entries, tried[i].entries + per_scale, trial + first);
                    return tried[i].err;
                }
            const float err = span_error(first, d, trial, half);
            if (n_tried < 64 && per_scale <= 8) {
                tried[n_tried] = {d, err, {}};
                std::copy(trial + first, trial + first + per_scale, tried[n_tried++].entries);
            }
            return err;
        };
        for (int i = 0; i < n_starts; ++i) {
            float d = starts[i];
            for (int round = 0; round < 3 && d > 0; ++round) {
                const float err = trial_error(d);
                if (err < best) {
                    best = err;
                    dl[s] = d;
                    std::copy(trial + first, trial + first + per_scale, f.entry + first);
                }
                d = refit(t, first, per_scale, trial);
            }
        }
        dl_weight[s] = 0;
        for (int q = first; q < first + per_scale; ++q) {
            float A, B;
            t.sums(q, f.entry[q], A, B);
            dl_weight[s] += B;
        }
    }

    // The 4-bit scale codes against d: dl = d x alpha x (s + 0.5).
    float v[16];
    float vmax = 0;
    for (int s = 0; s < scales; ++s) vmax = std::max(vmax, v[s] = dl[s] / code.alpha);
    float best_err = std::numeric_limits<float>::infinity();
    const float codes = static_cast<float>(code.max_code);
    for (float top : {codes + 0.5f, codes - 0.5f, codes - 1.5f, codes - 2.5f}) {
        float d = as_stored_f16(vmax / top);
        for (int round = 0; round < 3 && d > 0; ++round) {
            float err = 0, num = 0, den = 0;
            uint8_t sc[16];
            for (int s = 0; s < scales; ++s) {
                const float c = std::clamp(std::nearbyint(v[s] / d - 0.5f), 0.0f, codes);
                sc[s] = static_cast<uint8_t>(c);
                const float e = v[s] - d * (c + 0.5f);
                err += dl_weight[s] * e * e;
                num += dl_weight[s] * v[s] * (c + 0.5f);
                den += dl_weight[s] * (c + 0.5f) * (c + 0.5f);
            }
            if (err < best_err) {
                best_err = err;
                f.d = d;
                std::copy(sc, sc + scales, f.scale);
            }
            if (den <= 0) break;
            d = as_stored_f16(num / den);
        }
    }

    // Entries for the scales as stored, each code nudged (by up to one, or two in the wide
    // search; the ternary search neither nudges nor leaves the half it chose) where that helps.
    const int nudge = ternary ? 0 : wide ? 2 : 1;
    for (int s = 0; s < scales; ++s) {
        const int first = s * per_scale;
        float best = std::numeric_limits<float>::infinity();
        const int base = f.scale[s];
        const int half = ternary && options.entry_halves == 2 ? f.entry[first] / half_size : -1;
        for (int c = std::max(0, base - nudge); c <= std::min(code.max_code, base + nudge); ++c) {
            const float err = span_error(first, code.scale(f.d, c), trial, half);
            if (err < best) {
                best = err;
                f.scale[s] = static_cast<uint8_t>(c);
                std::copy(trial + first, trial + first + per_scale, f.entry + first);
            }
        }
    }
    return f;
}

// The weighted squared error of a fit: sum w_i (x_i - y_i)^2 over the super-block, y as the
// format decodes it (dl x the entry's value, with the stored sign).
double fit_error(const float* x, const float* w, const Grid& grid, ScaleCode code, GridOptions options, const GridFit& f) {
    double err = 0;
    for (int i = 0; i < kSuper; ++i) {
        const float dl = code.scale(f.d, f.scale[i / options.scale_span]);
        const float g = grid.value[static_cast<size_t>(i % grid.k) * static_cast<size_t>(grid.entries) + f.entry[i / grid.k]];
        float y = dl * g;
        if (!options.signed_grid && (f.signs[i / 8] >> (i % 8) & 1)) y = -y;
        const double e = static_cast<double>(x[i]) - y;
        err += w[i] * e * e;
    }
    return err;
}

}  // namespace

int ternary_start_for_test(const float* a, const float* w, int n, bool shared_shift, float& dl) {
    if (n < 8 || n > 32 || n % 8 != 0 || (!shared_shift && n > 16)) throw std::invalid_argument("ternary_start_for_test: 8 to 32 values in groups of 8, up to 2 groups without a shared shift");
    return ternary_start(a, w, n, shared_shift, dl);
}

GridFit fit_grid(const float* x, const float* w, const Grid& grid, ScaleCode code, GridOptions options, GridSearch search) {
    if (const int forced = g_forced_search.load(std::memory_order_relaxed)) search = forced == 1 ? GridSearch::Narrow : GridSearch::Wide;
    if (search != GridSearch::Both) return fit_grid_search(x, w, grid, code, options, search);
    // Both: the type's default search (IQ1's ternary one, else the narrow one) beside the wide one.
    const GridFit first = fit_grid_search(x, w, grid, code, options, options.signed_grid ? GridSearch::Ternary : GridSearch::Narrow);
    const GridFit wide = fit_grid_search(x, w, grid, code, options, GridSearch::Wide);
    return fit_error(x, w, grid, code, options, wide) < fit_error(x, w, grid, code, options, first) ? wide : first;
}

}  // namespace quant::detail

namespace quant {

void testing::use_grid_lattice(bool on) { detail::g_use_lattice.store(on); }
void testing::use_two_away_lists(bool on) { detail::g_use_two_away.store(on); }
void testing::force_grid_search(GridSearchWay way) {
    detail::g_forced_search.store(way == GridSearchWay::Narrow ? 1 : way == GridSearchWay::Wide ? 2 : 0);
}

int testing::grid_entry(TypeId type, int part, std::span<const float> a, std::span<const float> w, float dl, GridWay way, float* v) {
    using namespace detail;
    const Grid* grid = type == TypeId::IQ2_XXS ? &grid_iq2xxs()
                       : type == TypeId::IQ2_XS ? &grid_iq2xs()
                       : type == TypeId::IQ2_S  ? &grid_iq2s()
                       : type == TypeId::IQ3_XXS ? &grid_iq3xxs()
                       : type == TypeId::IQ3_S  ? &grid_iq3s()
                       : type == TypeId::IQ1_S  ? &grid_iq1()
                                                : nullptr;
    const int k = grid ? grid->k : 0;
    if (!grid || part < 0 || part >= static_cast<int>(grid->parts.size()) || a.size() != static_cast<size_t>(k) || w.size() != a.size())
        throw std::invalid_argument("grid_entry: a grid type, its part and one group of targets and weights");
    const Lattice& l = grid->parts[static_cast<size_t>(part)];
    // The group, repeated to fill the eight lanes the fast pass takes.
    std::vector<float> ar, wr;
    for (int r = 0; r < 8 / k; ++r) {
        ar.insert(ar.end(), a.begin(), a.end());
        wr.insert(wr.end(), w.begin(), w.end());
    }
    Tables t;
    t.build(*grid, ar.data(), wr.data(), 8 / k);
    float found_v = 0;
    int e = -1;
    switch (way) {
    case GridWay::Scan:
        entry_sums(*grid, ar.data(), wr.data(), t.A2.data(), t.B.data());
        e = first_minimum(t.A2.data(), t.B.data(), l.lo, l.hi, dl, found_v);
        break;
    case GridWay::Settle:
    case GridWay::Near: {
        int entries[8];
        float vs[8];
        const auto settle = k == 4 ? nearest_points_4x8 : nearest_points_8x3;
        const float* const bounds[3] = {t.bound[0], t.bound[1], t.bound[2]};
        if (dl > 0 && dl < std::numeric_limits<float>::infinity() && (settle(l, ar.data(), wr.data(), bounds, 8 / k, dl, way == GridWay::Settle, way == GridWay::Near, entries, vs) & 1)) {
            e = entries[0];
            found_v = vs[0];
        }
        break;
    }
    case GridWay::Search:
        e = (k == 4 ? lattice_search_4x8 : lattice_search_8x3)(*grid, l, ar.data(), wr.data(), t.sw[0], t.swa[0], dl, found_v);
        break;
    }
    if (v) *v = found_v;
    return e;
}

const IqGrids& host_grids() {
    using namespace detail::grids;
    static_assert(std::size(kIQ2XXS) == kIQ2XXSGridSize && std::size(kIQ2XS) == kIQ2XSGridSize && std::size(kIQ2S) == kIQ2SGridSize);
    static_assert(std::size(kIQ3XXS) == kIQ3XXSGridSize && std::size(kIQ3S) == kIQ3SGridSize && std::size(kIQ1S) == kIQ1SGridSize);
    static const IqGrids grids{kIQ2XXS, kIQ2XS, kIQ2S, kIQ3XXS, kIQ3S, kIQ1S};
    return grids;
}

}  // namespace quant
