// Fitting the grid-based i-quants (IQ2_*, IQ3_*): each group of values is a grid entry (a
// pattern of magnitudes) times a sub-block scale, with signs stored apart. Internal to quant/.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace quant::detail {

// Part of a grid as points of a lattice: every coordinate of its entries is one of nv values
// (ascending), so an entry is a number in base nv, coordinate j its digit j; `entry` maps
// each such number to the (first) entry at that point, or -1 where no entry is.
struct Lattice {
    int nv = 0, lo = 0, hi = 0;  // the entries [lo, hi) of the grid
    float value[8] = {};
    float mid[7] = {};  // between value i and i + 1 (exact: the values are small multiples of 1/8)
    float max_abs = 0;
    std::vector<int16_t> entry;  // nv^k numbers
    // For each point that is no entry (IQ3_S's and IQ2_S's grids), the entries that may be the
    // nearest to values whose nearest point it is, when every value is further than the
    // fast pass's bound from the midpoints around it (the others are further than one of
    // these by more than that bound: see `with_near_entries`): those of the point's number p
    // are near_entry[near_first[p] .. near_first[p + 1]), each list padded with its last entry
    // to a multiple of 8; near_digits holds each one's point, coordinate j's value index in
    // bits 4j to 4j + 3. Empty where not built.
    std::vector<uint32_t> near_first;
    std::vector<int32_t> near_entry;
    std::vector<uint32_t> near_digits;
    // For each point that is no entry (IQ1's lattices, of groups of 8 over 3 values), the entries
    // one or two changes away (one or two coordinates on other values), for the fast pass's
    // one-change step on lanes: those of point p are list[first[p] .. first[p + 1]), by
    // ascending entry, padded with the last to a multiple of 8; each holds its coordinates'
    // value indices in bits 2j, 2j + 1 and its entry less `lo` in bits 16 on. Shared by IQ1's
    // two parts, whose entries lie at the same points. Null where not built.
    struct TwoAway {
        std::vector<uint32_t> first, list;
    };
    std::shared_ptr<const TwoAway> two_away;
};

// A grid unpacked to floats, by coordinate (so that searches run across entries): entry e's
// coordinate j at value[j x entries + e].
struct Grid {
    std::vector<float> value;
    int entries = 0, k = 0;  // entries: a multiple of 16
    float max_magnitude = 0;
    std::vector<float> magnitudes;  // the distinct non-zero magnitudes entries use, ascending
    float flat_magnitude = 0;       // the largest m of an entry whose coordinates are all +-m
    std::vector<Lattice> parts;     // the grid as one lattice (IQ1: one per shift)
};
const Grid& grid_iq2xxs();
const Grid& grid_iq2xs();
const Grid& grid_iq2s();
const Grid& grid_iq3xxs();
const Grid& grid_iq3s();
// IQ1: entries of signed values -1, 0, 1 plus a shift of +1/8 (entries 0-2047) or -1/8
// (2048-4095).
const Grid& grid_iq1();

// How a sub-block scale is stored: dl = d x alpha x (s + 0.5), s a code up to max_code;
// `scale` computes it exactly as the format's decoder does.
struct ScaleCode {
    float alpha;
    float (*scale)(float d, int s);
    int max_code = 15;
};

struct GridOptions {
    int scale_span = 32;        // values per sub-block scale
    bool parity_signs = false;  // signs per 8 values must have even parity
    bool signed_grid = false;   // grid values carry their signs (IQ1): no separate signs
    int entry_halves = 1;       // 2: a span takes all its entries from one half of the grid (IQ1_S's shared shift)
};

// Fits a super-block of 256 values: signs (none for a signed grid; with even parity per 8
// values when asked, one value stored with the wrong sign as GridSearch says), one grid entry
// per k values, a scale code per options.scale_span values and the d, stored as f16 by the
// caller. Exact nearest entries for every scale tried (the error of entry e at scale dl is
// C - 2 dl A_e + dl^2 B_e, with A and B computed once per group).
struct GridFit {
    float d = 0;
    uint8_t scale[16] = {};     // codes up to code.max_code, one per scale_span values
    uint16_t entry[64] = {};    // one per k values (IQ1: the option, entry + 2048 for a -1/8 shift)
    uint8_t signs[32] = {};     // per 8 values: bit j set = value j negative (parity kept when asked)
};
// How widely fit_grid searches.
// - Narrow (the default on the IQ2 and IQ3 types): the starting scales put a span's largest
//   value at 0.75, 0.9 and 1.05 times the largest magnitude, and, where no entry is made of
//   the largest magnitude alone, on the largest magnitude of an entry of equal ones (flat
//   spans; IQ2_XXS, IQ3_XXS, IQ3_S); where sign parity forces a flip, the value of least
//   w x^2 takes it; each stored scale code is tried nudged by one.
// - Wide (the only search before 2026-12-04; IQ1_S's and IQ1_M's default until 2026-12-05):
//   starts at 0.6 too and on every smaller magnitude; flips the value whose flip the grid fits
//   best; nudges codes by two.
//   Narrow is about 2x faster. Its error in the fits' weights is a little higher; in the
//   importance weights alone it is lower on heavy-tailed rows and under 1% higher on
//   gaussian ones.
// - Ternary (the default on IQ1_S and IQ1_M, whose grids are signed values -1, 0, 1 plus a
//   shift; elsewhere it is Narrow): one start per span, the best fit of the values to the
//   three levels without the grid (an exact sweep over the scale); the shift of that fit
//   (IQ1_S) fixes the half of the grid the span draws from; then the same rounds of nearest
//   entries and least-squares refits, and the entries for the scale as stored, not nudged.
//   About 6x faster than Wide on IQ1_S, 3.5x on IQ1_M (README, "IQ1: the ternary search").
// - Both (--effort best): the type's default search (Ternary on IQ1, else Narrow) and Wide,
//   keeping the fit of less error in the fits' weights over each super-block (the default
//   one on a tie).
enum class GridSearch : uint8_t { Narrow, Wide, Both, Ternary };
GridFit fit_grid(const float* x, const float* w, const Grid& grid, ScaleCode code, GridOptions options, GridSearch search);

// For tests: the ternary search's starting scale for a span of n values a with weights w in
// groups of 8 (to dl), and the pattern of shifts it chose (bit g set: group g's shift is -1/8;
// shared_shift: 0 or 1, the span's). Throws std::invalid_argument outside 8-32 values in whole
// groups, and (not shared) 2 groups, as IQ1_M's spans have.
int ternary_start_for_test(const float* a, const float* w, int n, bool shared_shift, float& dl);

}  // namespace quant::detail
