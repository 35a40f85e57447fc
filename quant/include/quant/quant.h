// The numbers inside GGUF tensors: how the bytes of each tensor type turn into floats.
//
// This is the reference that faster kernels are tested against: plain, exact code that
// rounds the way ggml does, bit for bit. Every type is reached through one table indexed
// by type id (traits()); nothing outside quant/ switches on a type.
//
// Rows are independent: a tensor of type T and row length n is n_rows consecutive rows of
// row_bytes(T, n) bytes each, so callers may split any range of rows across threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "gguf/types.h"

namespace quant {

using gguf::TypeId;

// Converts `n_blocks` consecutive blocks at `src` into n_blocks x block_size floats.
using DequantizeFn = void (*)(const uint8_t* src, float* dst, int64_t n_blocks);

// Quantizes one row of n finite values (n a multiple of the block size) into
// row_bytes(type, n) bytes. `importance` is n non-negative weights, or nullptr.
using QuantizeRowFn = void (*)(const float* x, uint8_t* dst, int64_t n, const float* importance);

// Where a block keeps a scale, the number its other fields are multiplied by (what a data
// check validates): how it is encoded and its byte offset in the block.
enum class ScaleKind : uint8_t {
    None,
    F16,         // IEEE half
    F32,         // IEEE single
    E8M0,        // power of two; 0xff is NaN
    UE4M3,       // unsigned small float; 0x7f is NaN
    F16Nibbles,  // an f16 spread over the top nibbles of four u16 words (IQ1_M)
};
struct ScaleField {
    ScaleKind kind = ScaleKind::None;
    uint16_t offset = 0;
    const char* name = "";
};

// How hard the quantizers search (gguf requant --effort). Default: the search each type runs
// (its error below ggml's quantizers'). Fast: where that search costs far more than ggml's
// rounding, the legacy Q4_0, Q4_1, Q5_0, Q5_1 without importance weights try only the
// candidates ggml's reference rounding takes, with the nearest codes for the scale as stored:
// never more error than that rounding (the fit 4-5x faster than the default on Q4_0 and Q5_0, 1.6x on
// Q4_1 and Q5_1, whose default searches less without weights); Q8_0 without importance weights
// is ggml's rounding (its bytes; the default searches, about 2x its time), with them (which
// ggml's Q8_0 ignores) it tries ggml's scale and that scale's weighted refit, never more
// error than ggml's scale in the fit's own weights, about 1.3x faster than its default. Best:
// a wider search (the legacy types, Q8_0; Q4_K and Q5_K: more starting
// scales and two rounds of the super-block refit, which is their default with importance
// weights; Q2_K: the two rounds and a wider re-pick of its sub-blocks' codes), or both grid searches
// with the better fit kept per block (the grid i-quants IQ1_S to IQ3_S: the default search,
// narrow or IQ1's ternary one, and the wide one). A type without a choice
// quantizes alike at every effort; Traits::fast_changes and best_changes say where an effort
// changes the bytes.
enum class Effort : uint8_t { Fast, Default, Best };
inline constexpr Effort kEfforts[] = {Effort::Fast, Effort::Default, Effort::Best};
std::string_view effort_name(Effort e);  // "fast", "default", "best"
std::optional<Effort> effort_from_name(std::string_view name);

// How each block's scale is set once its codes are chosen (gguf requant --unbiased-scales).
// LeastSquares: the fit's own scales, which minimize the (weighted) squared error; such a fit
// shrinks: its dequantized values y keep about sum w x y = sum w y y < sum w x x, short by
// about the error's share of the energy (a few percent at 2 and 3 bits). Unbiased: every
// block's f16 scale fields (d, and dmin or m, all of them together) multiplied by
// c = sum x x / sum x y over the block (unweighted, with or without importance weights), so
// the dequantized block keeps the source's projection (sum x y = sum x x, up to the f16
// rounding of the scales): more squared error, less KL divergence where the error is large
// (the 2- and 3-bit types of a trained model; README). Where it applies:
// scale_fit_applies(); elsewhere, and in a block whose c is not within (0.5, 2) or whose
// scaled fields would not be finite, the bytes are the least-squares ones. Default: least
// squares, but the grid i-quants at 1 and 2 bits go part of the way, their scale fields times
// c^p (default_scale_power): IQ1_S, IQ1_M, IQ2_XXS and IQ2_XS halfway (p = 1/2), IQ2_S a
// quarter (p = 1/4, which keeps iq2_s within issue 18's 0.95x of ggml's weighted RMSE on
// rmse.tsv's gauss row). Measured, mean KL divergence / llama.cpp's file on the trained model
// (files made by libllama in the same run, bench_kld_mixes trained --every-file): IQ2_XS
// 1.040 -> 0.975 (2026-12-04); IQ1_S / IQ1_M / IQ2_XXS / IQ2_M imatrix 1.175 / 1.083 / 1.054 /
// 1.033 with least squares -> README: Scales at 1 and 2 bits.
enum class ScaleFit : uint8_t { Default, LeastSquares, Unbiased };
// The power of c that ScaleFit::Default applies to `type`'s scales: 0 (least squares) but on
// IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS (1/2) and IQ2_S (1/4), taken by square roots.
double default_scale_power(TypeId type);

struct Traits {
    TypeId type;
    ScaleField scales[4] = {};           // a quantized block's scale fields
    DequantizeFn dequantize = nullptr;   // nullptr where not (yet) implemented
    QuantizeRowFn quantize = nullptr;    // likewise (the default effort)
    QuantizeRowFn fast = nullptr, best = nullptr;  // other efforts, where the type has them
    // Whether fast and best write other bytes than the default, [0] without importance
    // weights, [1] with them (the legacy types' fast only without; Q8_0's both; Q4_K's and
    // Q5_K's best only without).
    bool fast_changes[2] = {false, false}, best_changes[2] = {false, false};
    bool needs_importance = false;       // quantizing without importance weights is refused
    bool fitted_scales = false;          // its quantizer fits block scales to the values
};

// The entry for `type`, or nullptr for ids beyond the table and retired ids.
const Traits* traits(TypeId type);

bool can_dequantize(TypeId type);

// Bytes of one row of `n` values; throws std::invalid_argument when n is not a multiple of
// the type's block size or the type is retired.
uint64_t row_bytes(TypeId type, int64_t n);

// Converts whole rows: src holds exactly dst.size() values of `type`. Throws
// std::invalid_argument when the sizes disagree or the type cannot be dequantized.
void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst);

bool can_quantize(TypeId type);
bool needs_importance(TypeId type);
// Whether ScaleFit::Unbiased changes `type`'s blocks: its scales are fitted
// (Traits::fitted_scales: the legacy, k-quant and i-quant types) and all stored as f16 fields
// (IQ1_M's spread over four words' top nibbles). Not MXFP4, NVFP4, nor the rounding formats
// TQ1_0, TQ2_0, Q1_0, Q2_0.
bool scale_fit_applies(TypeId type);

// Quantizes whole rows: src holds n_rows x n_per_row values, dst receives exactly n_rows x
// row_bytes(type, n_per_row) bytes. With `importance` (n_per_row non-negative finite
// weights, as an importance matrix gives for the tensor; empty for none) the quantizer
// minimizes the weighted squared error (but for the scales ScaleFit moves afterwards). Throws std::invalid_argument, naming the row and
// column, for NaN or Inf in src, a bad weight, a row length that is not a whole number of
// blocks, missing weights for a type that needs them, or sizes that disagree. `first_row`
// only numbers the rows in messages (for callers that split a tensor into ranges). `effort`:
// see Effort; `scale_fit`: see ScaleFit.
void quantize(TypeId type, std::span<const float> src, int64_t n_per_row, std::span<const float> importance,
              std::span<uint8_t> dst, int64_t first_row = 0, Effort effort = Effort::Default,
              ScaleFit scale_fit = ScaleFit::Default);

// The number of threads to use for a request: `requested` when positive, else one per core.
int thread_count(int requested);

// Calls fn(begin, end) on min(threads, n_rows) contiguous ranges that cover [0, n_rows), on
// up to `threads` threads at once (the calling thread among them, the others from
// default_executor(), so no more than it has); rethrows the first exception thrown, after
// which no further range starts. executor.h has the options this leaves out (progress,
// cancellation, finer ranges).
void for_each_row_range(int64_t n_rows, int threads, const std::function<void(int64_t begin, int64_t end)>& fn);

// IEEE half and bfloat16 to float: exact (every such value is a float).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
// Float to IEEE half, rounding to nearest even; too large becomes infinity.
uint16_t f32_to_f16(float f);
// Float to bfloat16, rounding to nearest even; NaN stays a (quiet) NaN.
uint16_t f32_to_bf16(float f);

namespace testing {
// The grid i-quants (IQ1_*, IQ2_*, IQ3_XXS, IQ3_S) take a group's entry from the lattice of
// grid points where that proves to be the entry a scan of the whole grid would choose, and
// scan otherwise. false: always scan, for the tests that compare the bytes of the two. Not
// to be changed while a quantization runs.
void use_grid_lattice(bool on);
// IQ1's fast pass takes the entries one or two changes from a group's nearest point from a list
// per point, on lanes (Lattice::two_away in quant/src/grid_fit.h). false: from the scalar step
// the other grids' tests use, for the test that compares the two. Not to be changed while a
// quantization runs.
void use_two_away_lists(bool on);

// The grid i-quants' searches (GridSearch in quant/src/grid_fit.h): by default narrow on
// the IQ2 and IQ3 types and wide on IQ1_S and IQ1_M, both at --effort best. Narrow or Wide:
// that search alone at every effort, for the tests that pin their bytes and the benchmarks
// that compare them; AsEffortSays: as above. Not to be changed while a quantization runs.
enum class GridSearchWay { AsEffortSays, Narrow, Wide };
void force_grid_search(GridSearchWay way);

// With an importance matrix the fits weight each value by its importance times the fourth
// root of (sigma^2 + x^2), sigma^2 the row's mean square; true: the square root on every
// type, as before 2026-12-04 (on Q4_K before 2026-12-05), for the tests whose pinned bytes
// were taken with it. Not to be changed while a quantization runs.
void importance_square_root(bool on);
// importance_square_root(true) while it lives; false again when it goes, exceptions included.
struct ImportanceSquareRoot {
    ImportanceSquareRoot() { importance_square_root(true); }
    ~ImportanceSquareRoot() { importance_square_root(false); }
    ImportanceSquareRoot(const ImportanceSquareRoot&) = delete;
    ImportanceSquareRoot& operator=(const ImportanceSquareRoot&) = delete;
};

// Where the CPU has AVX-512, the fits run wider paths (sixteen blocks a register for the
// legacy, k-quant and IQ4 fits, one block at a time for Q4_0 and Q5_0's fast effort, the grid
// scan on 32 lanes) with the same bytes as the AVX2 and portable ones. false: those other
// paths, for the tests that compare the bytes; true: AVX-512 again where the CPU has it.
// Returns whether the AVX-512 paths run now. Not to be changed while a quantization runs.
bool use_avx512(bool on);

// One group's entry as the grid search of `type` (IQ2_XXS/XS/S, IQ3_XXS/S, IQ1_S) chooses it,
// for targets a and weights w (one group: 4 or 8 values) at scale dl, among the entries of
// part `part` of the grid (IQ1: 0 for the +1/8 shift, 1 for -1/8; others: 0, the whole
// grid). How: GridWay::Scan, every entry (the reference); Settle, the lattice's fast pass
// with the entries one or two changes from the nearest point; Near, the fast pass with the
// nearest point's near entries (IQ3_S, IQ2_S; elsewhere only groups whose nearest point is
// an entry); Search, the lattice's search. -1 where that way leaves the group to a scan; v:
// the error term the search compares (its bits are the scan's).
enum class GridWay { Scan, Settle, Search, Near };
int grid_entry(TypeId type, int part, std::span<const float> a, std::span<const float> w, float dl, GridWay way, float* v = nullptr);
}  // namespace testing

}  // namespace quant
