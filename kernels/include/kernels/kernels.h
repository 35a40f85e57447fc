// Fast versions of what quant/ defines: dequantization, dot products and matrix tiles for
// every tensor type, on the instruction-set path chosen at run time (kernels/isa.h).
//
// Dequantization is exact on every path: the same bits as quant/'s reference decoders.
// Dot products are deterministic (the same bits on every run and every thread count) and
// within the bounds stated below of the exact sum.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gguf/types.h"
#include "kernels/isa.h"

namespace kernels {

using gguf::TypeId;

// ---- What each path has ----------------------------------------------------------------

// Which operations a path runs with its own code for a type; the rest fall back to the
// scalar path's code (correct, slower). The scalar path reports everything it can do.
struct Coverage {
    bool dequantize = false;
    bool dot = false;       // the dot product with prepared (8/16-bit) activations
    bool activations = false;  // quantizing activations to this type (Q8_0, Q8_1, Q8_K, F16, BF16)
};
Coverage coverage(TypeId type, Isa isa);

// ---- Dequantization --------------------------------------------------------------------

// Every live type quant/ dequantizes: the 27 quantized types, F32, F16, BF16 (and the
// integer and F64 tensors, through the scalar path).
bool can_dequantize(TypeId type);

// src holds exactly dst.size() values of `type` (a whole number of blocks). Throws
// std::invalid_argument when the sizes disagree or the type cannot be dequantized.
void dequantize(TypeId type, std::span<const uint8_t> src, std::span<float> dst, Isa isa = active_isa());
// The same values rounded to IEEE half or bfloat16 (to nearest even; NaN stays NaN), for a
// GPU upload or a GEMM panel.
void dequantize_f16(TypeId type, std::span<const uint8_t> src, std::span<uint16_t> dst, Isa isa = active_isa());
void dequantize_bf16(TypeId type, std::span<const uint8_t> src, std::span<uint16_t> dst, Isa isa = active_isa());

// ---- Dot products ----------------------------------------------------------------------

// The form activations take for the fast dot product with rows of `weights`: Q8_0 for the
// 32-value formats, Q8_K for the 256-value ones, F16 / BF16 for those weights, F32 where
// there is no integer product. The affine Q4_1 and Q5_1 (value d x q + m) take Q8_0 too, not
// ggml's Q8_1: a block's share of m is m x dx x (the sum of its activation codes, an exact
// integer), where Q8_1's s (an f16 rounding of dx x that sum) can err by more than the bound
// below when the block's values straddle zero. Q8_1 stays an activation format one can
// quantize to and dequantize.
TypeId activation_type(TypeId weights);

// A vector of activations prepared once for dot products with many rows of one weight type.
// Quantizing to 8 bits (Q8_0 / Q8_1 / Q8_K: a scale per block of 32 or 256 values and codes
// round(x / d), d = max|x| / 127) gives the same bytes on every path.
class Activations {
public:
    Activations(TypeId weights, std::span<const float> x, Isa isa = active_isa());
    TypeId weights() const { return weights_; }
    TypeId type() const { return type_; }
    int64_t size() const { return n_; }
    std::span<const uint8_t> bytes() const { return bytes_; }

private:
    TypeId weights_, type_;
    int64_t n_;
    std::vector<uint8_t> bytes_;
};

// n floats (a whole number of blocks) to an activation format directly: Q8_0, Q8_1, Q8_K,
// F16, BF16 or F32 (the bytes Activations holds for weights of that activation type; Q8_1,
// no weight type's activation format any more, stays available here). dst holds exactly
// those blocks; throws std::invalid_argument otherwise.
void quantize_activations(TypeId type, std::span<const float> x, std::span<uint8_t> dst, Isa isa = active_isa());

// Sum of row[i] x x[i] with the activations in 8-bit or 16-bit form. Bound: with w the
// row's exact values and x the float activations, |result - sum w x| is at most
//   sum over activation blocks b of (max|x| in b) / 127 x 0.57 x sum over b of |w|
//   + 2^-20 x sum |w x|
// (half a code step, and the scale's rounding to f16, per value; then float accumulation).
// For F16 / BF16 activations the first term is 2^-11 (F16) or 2^-8 (BF16) x sum |w x|.
float dot(TypeId type, std::span<const uint8_t> row, const Activations& x, Isa isa = active_isa());

// Sum of row[i] x x[i] with float activations: |result - sum w x| <= 2^-20 x sum |w x| for
// rows up to 2^16 values (float accumulation in a fixed order, several partial sums).
float dot(TypeId type, std::span<const uint8_t> row, std::span<const float> x, Isa isa = active_isa());

// ---- Matrix tiles ----------------------------------------------------------------------

enum class MatmulMethod : uint8_t {
    Auto,
    QuantizedActivations,  // quantize each x column once, integer dot products per row
    DequantizedPanel,      // dequantize panels of rows to f32 in cache, then a packed f32 product
    IntegerPanel,          // quantize each x column once, weights as 8-bit codes, a packed VNNI product
};

// Whether `isa` has the 8-bit packed product for weights of `type` (Q4_0, Q8_0, Q4_K, Q5_K,
// Q6_K on the avx512 path; the scalar path has it too, as the reference it is tested
// against). Where it has not, a caller uses DequantizedPanel with round_activations.
bool has_integer_panel(TypeId type, Isa isa = active_isa());

// The activations of one matrix product (n vectors of k floats), prepared once for every
// row range of it: each thread of a product multiplies its own rows by the same input.
//
// DequantizedPanel packs the vectors for the f32 product. Each output is then a chain of
// FMAs over k in ascending order, from 0, added to y at the end: the same bits on every
// path (scalar, avx2, avx512), for any blocking, any row range and any n. With
// `round_activations`, each vector is first rounded to the weights' activation format
// (activation_type(): f16, bf16, or 8-bit blocks and back to float): the values ggml's CPU
// kernels multiply, in f32 arithmetic. QuantizedActivations and IntegerPanel quantize each
// vector to that format for their integer products (the rounding is inherent; the flag
// changes nothing). IntegerPanel, ggml's arithmetic at VNNI speed: each weight value is its
// type's integer code times a float scale (minus an offset), each group of 16 or 32 codes
// meets the activation codes in an exact integer sum, and each output adds those sums times
// the scales in ascending order: again the same bits for any row range and any n, on every
// path that has it.
// Rows per panel of the f32 product: row ranges starting at multiples of it split a matrix
// between threads without splitting a panel.
constexpr int64_t kMatmulPanelRows = 32;

class MatmulInput {
public:
    // Throws std::invalid_argument when k is not a whole number of the weights' blocks (or of
    // their activation format's, for QuantizedActivations and rounding).
    MatmulInput(TypeId weights, int64_t k, int64_t n, MatmulMethod method = MatmulMethod::Auto, bool round_activations = false,
                Isa isa = active_isa());

    // Preparation comes in parts (groups of vectors) that threads may fill concurrently:
    // prepare(x, begin, end) reads the vectors of parts [begin, end) from x (all n vectors,
    // vector j at x + j x k). Every part must be prepared before matmul().
    int64_t parts() const { return parts_; }
    void prepare(const float* x, int64_t part_begin, int64_t part_end);
    void prepare(const float* x) { prepare(x, 0, parts_); }

    TypeId weights() const { return weights_; }
    MatmulMethod method() const { return method_; }
    int64_t k() const { return k_; }
    int64_t n() const { return n_; }
    Isa isa() const { return isa_; }
    // DequantizedPanel: the step of k values from i0 (a multiple of the product's step) of the
    // group of vectors `part`, k-major (kernels' own layout, table.h). A step's slices of every
    // group lie together, so the product's pass over them is one run of memory.
    const float* packed(int64_t part, int64_t i0) const { return packed_.get() + i0 * parts_ * kPanelCols + part * std::min(step_, k_ - i0) * kPanelCols; }
    const uint8_t* quantized(int64_t j) const;                     // QuantizedActivations: vector j
    // IntegerPanel, group of vectors `part` (kernels' own layout, table.h): codes, then per
    // group of weight codes the activation scale, -zero x the code sum, scale x the code sum.
    const int8_t* codes(int64_t part) const { return codes_.data() + part * k_ * kIntCols; }
    const float* scales(int64_t part) const { return sums_.data() + part * (k_ / group_) * kIntCols * 2; }
    const float* scaled_sums(int64_t part) const { return scales(part) + (k_ / group_) * kIntCols; }
    const int32_t* zero_sums(int64_t part) const { return zero_sums_.data() + part * (k_ / group_) * kIntCols; }
    static constexpr int64_t kIntCols = 6;
    static constexpr int64_t kPanelCols = 12;  // vectors per group of the f32 product

private:
    void prepare_codes(const float* x, int64_t part_begin, int64_t part_end);

    TypeId weights_;
    MatmulMethod method_;
    bool round_;
    Isa isa_;
    int64_t k_, n_, parts_ = 0, step_ = 1;
    size_t vector_bytes_ = 0;
    int64_t group_ = 1;
    std::unique_ptr<float[]> packed_;  // written whole by prepare() (not zeroed before: it is large)
    std::vector<uint8_t> quantized_;
    std::vector<int8_t> codes_;
    std::vector<float> sums_;
    std::vector<int32_t> zero_sums_;
};

// y += W x for the m rows of W (type `type`, row r at w + r x row_stride bytes) and every
// vector of `x` (prepared for this type): y[j x y_stride + r] += row r . vector j. Each y
// value is computed in a fixed order whatever the rows, so a matrix split into row ranges
// across threads gives the same bits as one call. Throws std::invalid_argument when x was
// prepared for another weight type. With `store`, y = W x instead: each y value is written
// as 0.0f + the product, the bits that zeroing y first and adding give (+0 for a -0 sum),
// without the pass that zeroes y and the read of it.
void matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, const MatmulInput& x, float* y, int64_t y_stride, bool store = false);

// The same in one call: x holds n vectors of k floats (vector j at x + j x k); y holds n
// vectors of m floats (y[j x m + r] += row r . vector j). Throws std::invalid_argument when
// k is not a whole number of blocks.
void matmul(TypeId type, const uint8_t* w, int64_t row_stride, int64_t m, int64_t k, const float* x, int64_t n,
            float* y, MatmulMethod method = MatmulMethod::Auto, Isa isa = active_isa());

}  // namespace kernels
