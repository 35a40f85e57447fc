// The dispatch table: what one instruction-set path provides. Internal to kernels/.
//
// dispatch.cpp fills one Table per path: it starts from the scalar path (quant/'s reference
// decoders, and generic dot products), then each family file of the path overwrites the
// entries it makes faster. So a path without a kernel for some type still works, at scalar
// speed, and `gguf bench` shows which entries a path really has (Table::provided).
//
// Rules for a family file compiled with an ISA's flags (legacy_avx2.cpp, ...):
//  - everything except its one add_<family>() function lives in an anonymous namespace;
//  - it includes only <immintrin.h>, the C++ headers without inline code of their own
//    (<cstdint>, <cstring>, <cmath>), quant/blocks.h, simd.h and its family's <family>_simd.h
//    (whose code is in an anonymous namespace: each file compiles its own copy) and this
//    header: an inline function of another header compiled there with AVX-512 could be the
//    copy the linker keeps for the scalar path (tests/check_isa_symbols.sh fails the build's
//    tests if that happens).
#pragma once

#include <cstdint>

#include "gguf/types.h"
#include "kernels/isa.h"

namespace kernels::detail {

// n_blocks blocks of the type at src to n_blocks x block_size floats.
using DequantizeFn = void (*)(const uint8_t* src, float* dst, int64_t n_blocks);
// Sum over n_blocks weight blocks of w . x, x in the weight type's activation format
// (activation_type()), covering the same values.
using DotFn = float (*)(const uint8_t* w, const uint8_t* x, int64_t n_blocks);
// n floats (a multiple of the activation block) to the activation format.
using QuantizeFn = void (*)(const float* x, uint8_t* dst, int64_t n);
using ToHalfFn = void (*)(const float* x, uint16_t* dst, int64_t n);  // f16 or bf16, round to nearest even
using DotF32Fn = float (*)(const float* a, const float* b, int64_t n);
// The packed f32 matrix product (MatmulMethod::DequantizedPanel). A panel is kGemmRows
// weight rows dequantized and stored k-major (a[i x kGemmRows + r], rows past the matrix's
// end zero); activations are packed in groups of kGemmCols columns, k-major
// (x[i x kGemmCols + j] within a group, columns past n zero). The kernel runs `k` steps of
//   c[j x kGemmRows + r] = fma(a[i][r], x[i][j], c[j x kGemmRows + r])   for j < cols, every r,
// i ascending, one rounding per step: the same sequence of operations on every path (the
// scalar one with std::fma), so every path gives the same bits, and an output's value
// depends only on its row and column, never on where they fall in the blocking. `c` holds
// the accumulators in and out, so k may be split into blocks without changing a bit.
constexpr int64_t kGemmRows = 32;  // kernels::kMatmulPanelRows (kernels.cpp checks)
constexpr int64_t kGemmCols = 12;
// With `zero` the accumulators start from 0 rather than from c (which is then only written).
using GemmPackedFn = void (*)(const float* a, const float* x, int64_t k, int cols, float* c, bool zero);
// `count` (<= kGemmRows) rows of `len` values (row r at rows + r x stride elements) to a
// panel of floats: panel[i x kGemmRows + r], rows count ... kGemmRows - 1 zero. The f32
// form moves bits (it packs the 8-bit product's codes too); the f16 and bf16 forms convert
// exactly, so F16 / BF16 weights go to the panel in one pass.
using PackPanelFn = void (*)(const float* rows, int64_t stride, int64_t len, int64_t count, float* panel);
using PackPanelHalfFn = void (*)(const uint16_t* rows, int64_t stride, int64_t len, int64_t count, float* panel);

// The 8-bit product (MatmulMethod::IntegerPanel), VNNI's form of the packed product. Weights
// are read as integer codes: value = scale_g x (u - zero) - offset_g for the u8 code u of each
// value, per group g of `group` values (kernels.cpp: code_format, unpack_codes). A panel holds
// kIntRows rows: codes [i / 4][row][i % 4] (the four codes of a row that one 32-bit lane of
// vpdpbusd sums), scales and offsets [g][row] (floats). Activations are quantized to the
// weights' activation format (Q8_0 / Q8_K) and packed per group of kIntCols vectors: codes
// [i / 4][col][i % 4] (int8), and per (group g, col): xd the activation block's scale, xz =
// -zero x the sum of the group's codes (int32), xs = xd x that sum (for the offsets). Over
// `groups` groups of `quads` x 4 values, each output runs
//   s = xz + sum of u x code (exact int32, vpdpbusd)
//   c = fma(float(s), scale x xd, c);  with offsets: c = fma(-offset, xs, c)
// in ascending order of g: the same bits on every path that has the kernel.
constexpr int64_t kIntRows = 32;
constexpr int64_t kIntCols = 6;
using IntProductFn = void (*)(const uint8_t* codes, const float* scales, const float* offsets, const int8_t* x, const float* xd,
                              const int32_t* xz, const float* xs, int64_t groups, int quads, int cols, float* c);

// Provenance bits for `gguf bench` and the ISA table in spec/ARCHITECTURE.md.
enum Provided : uint8_t { kDequantize = 1, kDot = 2, kQuantize = 4 };

struct TypeKernels {
    DequantizeFn dequantize = nullptr;
    DotFn dot = nullptr;            // with activations of activation_type(type)
    QuantizeFn quantize = nullptr;  // for an activation type: floats to it
    uint8_t provided = 0;           // which of the three this path's own code provides
};

struct Table {
    Isa isa = Isa::Scalar;
    TypeKernels types[gguf::kTypeCount] = {};  // by type id (a C array: no inline accessors, see above)
    ToHalfFn to_f16 = nullptr;
    ToHalfFn to_bf16 = nullptr;
    DotF32Fn dot_f32 = nullptr;  // sum a[i] b[i], float accumulation in a fixed order
    GemmPackedFn gemm_packed = nullptr;
    PackPanelFn pack_panel = nullptr;
    PackPanelHalfFn pack_panel_f16 = nullptr;
    PackPanelHalfFn pack_panel_bf16 = nullptr;
    IntProductFn int_product = nullptr;  // only where a path has its own (not inherited from scalar)

    // A path's own kernels (marked provided). Out of line on purpose (dispatch.cpp): family
    // files compiled with ISA flags call them without instantiating anything inline.
    void set_dequantize(gguf::TypeId t, DequantizeFn f);
    void set_dot(gguf::TypeId t, DotFn f);
    void set_quantize(gguf::TypeId t, QuantizeFn f);
    const TypeKernels& at(gguf::TypeId t) const;
};

// The table of a path (built on first use); throws std::runtime_error if the path is not
// available on this CPU.
const Table& table(Isa isa);

// Instructions beyond a path's baseline, for family files that register a kernel only
// where the CPU has them (functions marked __attribute__((target("avx512bf16"))) etc.).
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vbmi();

// The scalar path: the reference every other path is tested against (scalar.cpp).
void add_scalar(Table& t);

}  // namespace kernels::detail

// Each ISA's family files (one file per family and ISA, beside the scalar code they equal:
// quant/decode.h for dequantization, scalar.cpp for activation quantization).
#define GGUFKIT_FAMILIES(isa)                                                                             \
    namespace kernels::isa {                                                                              \
    void add_floats(detail::Table& t);       /* F32, F16, BF16; f16/bf16 output; dot_f32; activations */ \
    void add_legacy(detail::Table& t);       /* Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 IQ4_NL */                  \
    void add_kquants(detail::Table& t);      /* Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K IQ4_XS */                   \
    void add_iquants(detail::Table& t);      /* IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S */         \
    void add_microscaling(detail::Table& t); /* MXFP4 NVFP4 */                                           \
    void add_ternary(detail::Table& t);      /* TQ1_0 TQ2_0 Q1_0 Q2_0 */                                 \
    void add_gemm(detail::Table& t);         /* the packed f32 product of dequantized panels */         \
    }
GGUFKIT_FAMILIES(avx2)
GGUFKIT_FAMILIES(avx512)
#undef GGUFKIT_FAMILIES
