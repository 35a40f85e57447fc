// The legacy block formats: 32 values per block, one f16 scale (and for the _1 kinds an f16
// minimum), 4, 5 or 8 bits per value.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "bytes.h"
#include "family.h"
#include "fit.h"

namespace quant::detail {

namespace {

// Each quantizer fits every block of 32 on its own (fit.h), with weights from the
// importance of its columns when given.

// Packs 32 codes (already offset to be non-negative) as Q4_0-style nibbles, and for 5-bit
// codes their fifth bits into qh.
void pack_nibbles(const int* c, uint8_t (&qs)[16], uint8_t (*qh)[4]) {
    uint32_t high = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = static_cast<uint8_t>((c[j] & 0x0f) | (c[j + 16] & 0x0f) << 4);
        high |= static_cast<uint32_t>((c[j] >> 4) & 1) << j | static_cast<uint32_t>((c[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh)
        for (int k = 0; k < 4; ++k) (*qh)[k] = static_cast<uint8_t>(high >> (8 * k));
}

// The searches by effort (Effort): fast tries only the scales that send the largest value to
// an end of the code range (ggml's reference rounding takes the one for the negative end) with
// the nearest codes for each as stored; default and best refit by least squares around them.
constexpr Search kFastSearch{0, 0}, kDefaultLegacy{1, 2}, kBestLegacy{2, 3};

// Packs a symmetric block: its scale and codes q in [kLo, kHi] (Q8_0 keeps them as they are).
template <int kLo, class Block>
void pack_symmetric(float d, const int8_t* q, Block& b) {
    store_half(b.d, d);
    if constexpr (std::is_same_v<Block, BlockQ8_0>) {
        std::copy(q, q + 32, b.qs);
    } else {
        int c[32];
        for (int j = 0; j < 32; ++j) c[j] = q[j] - kLo;
        if constexpr (requires { b.qh; }) pack_nibbles(c, b.qs, &b.qh);
        else pack_nibbles(c, b.qs, nullptr);
    }
}

// The symmetric kinds fit eight blocks at a time (fit_symmetric8: the bits of one block at a
// time), weighted as quantize_blocks weights them, or by 1 (`kWeighted` false: the fast
// effort without an importance matrix). A row's last blocks short of eight fill the idle
// lanes with copies of its first block of the group.
template <int kLo, int kHi, class Block, Search kSearch, bool kWeighted = true>
void quantize_symmetric(const float* x, uint8_t* dst, int64_t n, const float* importance) {
    Block* b = blocks<Block>(dst);
    for_each_group8(x, n, importance, kWeighted, [&](const float* xs, const float* w, int g) {
        float d[8];
        int8_t q[8 * 32];
        fit_symmetric8(xs, w, 32, kLo, kHi, q, true, kSearch, d);
        for (int k = 0; k < g; ++k) pack_symmetric<kLo>(d[k], q + 32 * k, *b++);
    });
}

template <int kHi, class Block, Search kSearch = Search{}>
void fill_affine(const float* x, const float* w, Block& b) {
    uint8_t q[32];
    float d, m;
    fit_affine(x, w, 32, kHi, q, d, m, true, false, kSearch);
    store_half(b.d, d);
    store_half(b.m, m);
    int c[32];
    for (int j = 0; j < 32; ++j) c[j] = q[j];
    if constexpr (requires { b.qh; }) pack_nibbles(c, b.qs, &b.qh);
    else pack_nibbles(c, b.qs, nullptr);
}

// The affine kinds with weights fit eight blocks at a time, as quantize_symmetric does.
// (Without weights, the fast effort, the one-block fit sums x in another order.)
template <int kHi, class Block, Search kSearch = Search{}>
void quantize_affine(const float* x, uint8_t* dst, int64_t n, const float* importance) {
    Block* b = blocks<Block>(dst);
    for_each_group8(x, n, importance, true, [&](const float* xs, const float* w, int g) {
        float d[8], m[8];
        uint8_t q[8 * 32];
        fit_affine8(xs, w, 32, kHi, q, true, false, kSearch, d, m);
        for (int k = 0; k < g; ++k, ++b) {
            store_half(b->d, d[k]);
            store_half(b->m, m[k]);
            int c[32];
            for (int j = 0; j < 32; ++j) c[j] = q[32 * k + j];
            if constexpr (requires { b->qh; }) pack_nibbles(c, b->qs, &b->qh);
            else pack_nibbles(c, b->qs, nullptr);
        }
    });
}

// Fast effort without importance weights: every block judged by its plain squared error (no
// per-value weights computed), so its scale is at least as good as the reference rounding's
// one, which is among the candidates.
template <class Block, int kValues, class Fill>
void quantize_blocks_plain(const float* x, uint8_t* dst, int64_t n, Fill fill) {
    Block* b = blocks<Block>(dst);
    for (int64_t i = 0; i < n; i += kValues, ++b) fill(x + i, nullptr, *b);
}
template <class Block, auto kFill>
void plain(const float* x, uint8_t* dst, int64_t n, const float*) {
    quantize_blocks_plain<Block, 32>(x, dst, n, kFill);
}

template <Search kSearch = kDefaultLegacy>
void quantize_q4_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_symmetric<-8, 7, BlockQ4_0, kSearch>(x, dst, n, imp);
}
template <Search kSearch = kDefaultLegacy>
void quantize_q5_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_symmetric<-16, 15, BlockQ5_0, kSearch>(x, dst, n, imp);
}
template <Search kSearch = Search{}>
void quantize_q4_1(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_affine<15, BlockQ4_1, kSearch>(x, dst, n, imp);
}
template <Search kSearch = Search{}>
void quantize_q5_1(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    quantize_affine<31, BlockQ5_1, kSearch>(x, dst, n, imp);
}
// Q8_0 without importance weights: the scale maps the largest magnitude to 127 and the
// codes round half away from zero, computed with the unrounded scale, as llama.cpp does:
// its error is a few parts in ten thousand, a search buys little, and the bytes are then
// exactly llama.cpp's. With importance weights, the weighted search below.
// std::round for |v| < 2^23 (halves away from zero) as an integer, with integer selects
// only so that the loop vectorizes: a - trunc(a) is exact there.
inline int32_t round_half_away(float v) {
    const float a = std::fabs(v);
    const int32_t t = static_cast<int32_t>(a);
    const int32_t r = t + (a - static_cast<float>(t) >= 0.5f ? 1 : 0);
    return v < 0 ? -r : r;
}

// Cloned for AVX2: rounding, max and one multiply per value give the same bits on any path.
QUANT_AVX2_CLONE void quantize_q8_0(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    if (imp) return quantize_symmetric<-127, 127, BlockQ8_0, Search{}>(x, dst, n, imp);
    BlockQ8_0* b = blocks<BlockQ8_0>(dst);
    for (int64_t i = 0; i < n; i += 32, ++b) {
        float amax = 0;
#pragma omp simd reduction(max : amax)
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i + j]));
        const float d = amax / 127.0f;
        if (d > 65504.0f) {  // beyond f16 (llama.cpp would store Inf): the largest scale, codes clamped
            store_half(b->d, 65504.0f);
            for (int j = 0; j < 32; ++j) b->qs[j] = static_cast<int8_t>(std::clamp(std::round(x[i + j] / 65504.0f), -127.0f, 127.0f));
            continue;
        }
        const float id = d != 0 ? 1.0f / d : 0.0f;
        store_half(b->d, d);
        for (int j = 0; j < 32; ++j) b->qs[j] = static_cast<int8_t>(round_half_away(x[i + j] * id));
    }
}

// Fast effort: the few candidates without importance weights, where ggml rounds once; with
// them ggml searches too (a weighted search over many scales), and so does the default here.
template <QuantizeRowFn kFast, QuantizeRowFn kDefault>
void fast(const float* x, uint8_t* dst, int64_t n, const float* imp) {
    (imp ? kDefault : kFast)(x, dst, n, imp);
}

}  // namespace

void register_legacy(TraitsTable& t) {
    using K = ScaleKind;
    add_block_type<BlockQ4_0>(t, quantize_q4_0<>, {{K::F16, offsetof(BlockQ4_0, d), "d"}});
    add_block_type<BlockQ4_1>(t, quantize_q4_1<>, {{K::F16, offsetof(BlockQ4_1, d), "d"}, {K::F16, offsetof(BlockQ4_1, m), "m"}});
    add_block_type<BlockQ5_0>(t, quantize_q5_0<>, {{K::F16, offsetof(BlockQ5_0, d), "d"}});
    add_block_type<BlockQ5_1>(t, quantize_q5_1<>, {{K::F16, offsetof(BlockQ5_1, d), "d"}, {K::F16, offsetof(BlockQ5_1, m), "m"}});
    set_efforts(t, TypeId::Q4_0, fast<quantize_symmetric<-8, 7, BlockQ4_0, kFastSearch, false>, quantize_q4_0<>>, quantize_q4_0<kBestLegacy>);
    set_efforts(t, TypeId::Q5_0, fast<quantize_symmetric<-16, 15, BlockQ5_0, kFastSearch, false>, quantize_q5_0<>>, quantize_q5_0<kBestLegacy>);
    set_efforts(t, TypeId::Q4_1, fast<plain<BlockQ4_1, fill_affine<15, BlockQ4_1, kFastSearch>>, quantize_q4_1<>>, quantize_q4_1<Search{3, 4}>);
    set_efforts(t, TypeId::Q5_1, fast<plain<BlockQ5_1, fill_affine<31, BlockQ5_1, kFastSearch>>, quantize_q5_1<>>, quantize_q5_1<Search{3, 4}>);
    add_block_type<BlockQ8_0>(t, quantize_q8_0, {{K::F16, offsetof(BlockQ8_0, d), "d"}});
    // The activation format of dot products (kernels/ quantizes to it): read, not written here.
    add_block_type<BlockQ8_1>(t, nullptr, {{K::F16, offsetof(BlockQ8_1, d), "d"}, {K::F16, offsetof(BlockQ8_1, s), "s"}});
}

}  // namespace quant::detail
