// legacy, avx512 path: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 IQ4_NL.
//
// Dequantization equals quant/decode.h bit for bit: each value is the same float product
// (and for the _1 kinds the same sum) as the decoder's. vcvtph2ps quiets a signalling-NaN
// scale, which the decoder keeps, but every value is a product with the scale and the
// multiply quiets it there too, so the bits agree.
//
// Dot products: vpdpbusd of the unsigned weight codes against the signed activation codes (a
// weight's offset taken off with a second vpdpbusd of the offset against the activations).
// Q4_0, Q4_1, Q5_1 and IQ4_NL take blocks sixteen at a time, each block's integer sum added
// up exactly, then one float multiply-add per block; Q5_0 and Q8_0 two at a time (dot_pairs),
// which measured as fast or faster for them.
#include <immintrin.h>

#include <cstdint>

#include "legacy_simd.h"
#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;

// ---- The f16 fields of 8 consecutive blocks -------------------------------------------

// Word indices that pick field `offset` of blocks 0..7 (stride bytes apart, offsets even) out
// of two 128-byte windows: A at the first block, B at the first field A lacks (or ending with
// the eighth block, so no byte past the blocks is read); from_b marks the words B supplies.
struct FieldPlan {
    uint16_t a[32], b[32];
    uint32_t from_b;
    int b_start;
    bool ok;  // every field in a window
};
constexpr FieldPlan field_plan(int stride, int offset) {
    FieldPlan p{};
    p.b_start = 8 * stride - 128;
    for (int i = 0; i < 8; ++i)
        if (i * stride + offset + 2 > 128) {
            p.b_start = i * stride + offset < p.b_start ? i * stride + offset : p.b_start;
            break;
        }
    p.ok = p.b_start % 2 == 0;
    for (int i = 0; i < 8; ++i) {
        const int at = i * stride + offset;
        if (at + 2 <= 128) {
            p.a[i] = static_cast<uint16_t>(at / 2);
        } else {
            p.b[i] = static_cast<uint16_t>((at - p.b_start) / 2);
            p.from_b |= 1u << i;
            p.ok = p.ok && at >= p.b_start && at + 2 <= p.b_start + 128;
        }
    }
    return p;
}

template <int Stride, int Offset> __m256 fields8(const uint8_t* p) {
    static constexpr FieldPlan plan = field_plan(Stride, Offset);
    static_assert(Stride >= 16 && Offset % 2 == 0 && plan.ok);
    __m512i h = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), _mm512_loadu_si512(plan.a), _mm512_loadu_si512(p + 64));
    if constexpr (plan.from_b != 0) {
        const uint8_t* q = p + plan.b_start;
        const __m512i b = _mm512_permutex2var_epi16(_mm512_loadu_si512(q), _mm512_loadu_si512(plan.b), _mm512_loadu_si512(q + 64));
        h = _mm512_mask_blend_epi16(plan.from_b, h, b);
    }
    return _mm256_cvtph_ps(_mm512_castsi512_si128(h));
}

// Float lane i of v in every lane.
__m512 lane(__m256 v, int i) { return _mm512_permutexvar_ps(_mm512_set1_epi32(i), _mm512_castps256_ps512(v)); }

// ---- Dequantization ---------------------------------------------------------------------

// A type's block: its size, where the 4-bit codes are, and how codes become floats.
// Each `values` writes the block's 32 floats given its d (and m) broadcast.

__m512 table_of(float first) {  // first, first + 1, ..., first + 15
    return _mm512_add_ps(_mm512_set1_ps(first), _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

// The low (codes 0-15) and high (codes 16-31) nibbles of a 4-bit block, one per dword
// (the low one still has the high nibble above it: vpermps reads only bits 0-3).
struct Nibbles {
    __m512i low, high;
};
Nibbles nibbles(const uint8_t* qs) {
    const __m512i raw = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return {raw, _mm512_srli_epi32(raw, 4)};
}

struct Q4_0 {
    static constexpr int kBytes = 18;
    static void values(const uint8_t* b, __m512 d, __m512, float* y) {
        const __m512 table = table_of(-8);  // float(q - 8)
        const Nibbles q = nibbles(b + 2);
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_permutexvar_ps(q.low, table), d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_permutexvar_ps(q.high, table), d));
    }
};

struct Q4_1 {
    static constexpr int kBytes = 20;
    static void values(const uint8_t* b, __m512 d, __m512 m, float* y) {
        const __m512 table = table_of(0);
        const Nibbles q = nibbles(b + 4);
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(_mm512_permutexvar_ps(q.low, table), d), m));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_permutexvar_ps(q.high, table), d), m));
    }
};

// Q5: the fifth bit of code j is bit j of qh; it picks the upper table.
template <int First> void q5_values(const uint8_t* qh, const uint8_t* qs, __m512 d, __m512 m, bool affine, float* y) {
    const __m512 lower = table_of(First), upper = table_of(First + 16);
    const uint32_t bits = load_u32(qh);
    const Nibbles q = nibbles(qs);
    const __m512 lo = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(q.low, lower), _cvtu32_mask16(bits & 0xffff), q.low, upper);
    const __m512 hi = _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(q.high, lower), _cvtu32_mask16(bits >> 16), q.high, upper);
    if (affine) {
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(lo, d), m));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(hi, d), m));
    } else {
        _mm512_storeu_ps(y, _mm512_mul_ps(lo, d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(hi, d));
    }
}

struct Q5_0 {
    static constexpr int kBytes = 22;
    static void values(const uint8_t* b, __m512 d, __m512 m, float* y) { q5_values<-16>(b + 2, b + 6, d, m, false, y); }
};
struct Q5_1 {
    static constexpr int kBytes = 24;
    static void values(const uint8_t* b, __m512 d, __m512 m, float* y) { q5_values<0>(b + 4, b + 8, d, m, true, y); }
};

template <int Bytes> struct Q8 {
    static constexpr int kBytes = Bytes;
    static void values(const uint8_t* b, __m512 d, __m512, float* y) {
        const int8_t* qs = reinterpret_cast<const int8_t*>(b + Bytes - 32);
        for (int h = 0; h < 32; h += 16) {
            const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + h)));
            _mm512_storeu_ps(y + h, _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
        }
    }
};

struct IQ4_NL {
    static constexpr int kBytes = 18;
    static void values(const uint8_t* b, __m512 d, __m512, float* y) {
        const __m512 table = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels))));
        const Nibbles q = nibbles(b + 2);
        _mm512_storeu_ps(y, _mm512_mul_ps(d, _mm512_permutexvar_ps(q.low, table)));  // dl x level, as decode.h
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, _mm512_permutexvar_ps(q.high, table)));
    }
};

// d at byte 0 of every block; m (the _1 kinds) at byte 2.
template <class T, bool kAffine> void dequantize(const uint8_t* src, float* y, int64_t n_blocks) {
    int64_t b = 0;
    for (; b + 8 <= n_blocks; b += 8, src += 8 * T::kBytes, y += 256) {
        const __m256 d = fields8<T::kBytes, 0>(src);
        __m256 m = _mm256_setzero_ps();
        if constexpr (kAffine) m = fields8<T::kBytes, 2>(src);
        for (int i = 0; i < 8; ++i) T::values(src + i * T::kBytes, lane(d, i), lane(m, i), y + 32 * i);
    }
    for (; b < n_blocks; ++b, src += T::kBytes, y += 32)
        T::values(src, _mm512_set1_ps(half_to_float(src)), _mm512_set1_ps(kAffine ? half_to_float(src + 2) : 0.0f), y);
}

// ---- Dot products -----------------------------------------------------------------------

// Blocks go sixteen at a time, as four groups of four. For a group, vpermt2w picks out of
// two 64-byte windows of its four blocks (never a byte past them) the 16 bytes of codes of
// each block into one vector: after vpdpbusd, the 32-bit lanes 4k..4k+3 hold block k's
// products, so the codes of values 0-15 and 16-31 accumulate into the same lanes. The four
// groups' lanes are then added up in integers to one lane per block (merge16), so the 16
// blocks take one conversion to float (the exact 2^23 trick: cheaper than vcvtdq2ps here)
// and one multiply-add, with their f16 scales converted at once, lane b for block b. (On
// Zen 4 the vector units are the bottleneck: the scales are gathered with scalar loads.)

// Word indices of a vpermt2w over windows at bytes 0 and `second`: output word i is the
// word at byte source(i) (even), or anything where source(i) < 0. ok: every word found.
struct Pick {
    uint16_t index[32];
    bool ok;
};
template <class F> constexpr Pick make_pick(int second, F source) {
    Pick p{{}, true};
    for (int i = 0; i < 32; ++i) {
        const int at = source(i);
        if (at < 0) continue;
        if (at % 2 == 0 && at + 2 <= 64) {
            p.index[i] = static_cast<uint16_t>(at / 2);
        } else if (at % 2 == 0 && at >= second && at + 2 <= second + 64) {
            p.index[i] = static_cast<uint16_t>(32 + (at - second) / 2);
        } else {
            p.ok = false;
        }
    }
    return p;
}
// 16 bytes of each of 4 blocks (stride bytes apart), from byte `offset` of each.
constexpr Pick runs16(int stride, int offset, int second) {
    return make_pick(second, [=](int i) { return i / 8 * stride + offset + 2 * (i % 8); });
}
template <const Pick& P> __m512i pick(const uint8_t* p, int second) {
    static_assert(P.ok);
    return _mm512_permutex2var_epi16(_mm512_loadu_si512(p), _mm512_loadu_si512(P.index), _mm512_loadu_si512(p + second));
}

// Four Q8_0 blocks (136 bytes): codes 0-15 from windows at 0 and 64, codes 16-31 from
// windows at 8 and 72.
constexpr int kQ8Stride = kQ8_0Bytes;
constexpr Pick kQ8Low = runs16(kQ8Stride, 2, 64), kQ8High = runs16(kQ8Stride, 18 - 8, 64);

// Each weight type's group: the unsigned codes (low: values 0-15 of each block, high:
// 16-31) and kOffset to take off them; and one block's 32 codes in value order for the tail.
// The codes of two blocks for the pairwise kernel (dot_pairs): each block's 16 bytes of
// nibbles twice, the high nibbles shifted down in the second copy.
__m512i nibble_codes2(const uint8_t* qa, const uint8_t* qb) {
    const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qa)));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qb)));
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    return _mm512_and_si512(_mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4), _mm512_set1_epi8(0x0f));
}

template <int Bytes, int Qs> struct NibbleGroup {  // windows at 0 and 4 x Bytes - 64
    static constexpr int kBytes = Bytes, kSecond = 4 * Bytes - 64;
    static constexpr Pick kCodes = runs16(Bytes, Qs, kSecond);
    static void nibbles(const uint8_t* w, __m512i& low, __m512i& high) {
        const __m512i q = pick<kCodes>(w, kSecond);
        low = _mm512_and_si512(q, _mm512_set1_epi8(0x0f));
        high = _mm512_and_si512(_mm512_srli_epi16(q, 4), _mm512_set1_epi8(0x0f));
    }
};

// One block's 4-bit codes in value order: its 16 bytes twice, the high nibbles shifted
// down in the second copy.
__m256i nibble_codes1(const uint8_t* q) {
    const __m256i z = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    return _mm256_and_si256(_mm256_mask_srli_epi16(z, 0xff00u, z, 4), _mm256_set1_epi8(0x0f));
}

// The 5th bits of four Q5 blocks: bit j of each block's qh goes to code j, so values 0-15
// of block k take bits 16k..16k+15 of the low mask, values 16-31 those of the high mask.
template <int Bytes, int Qh> [[gnu::always_inline]] inline void fifth_bits(const uint8_t* w, __m512i& low, __m512i& high) {
    uint64_t lo = 0, hi = 0;
    for (int k = 0; k < 4; ++k) {
        const uint32_t h = load_u32(w + k * Bytes + Qh);
        lo |= uint64_t{h & 0xffff} << 16 * k;
        hi |= uint64_t{h >> 16} << 16 * k;
    }
    low = _mm512_mask_add_epi8(low, _cvtu64_mask64(lo), low, _mm512_set1_epi8(16));
    high = _mm512_mask_add_epi8(high, _cvtu64_mask64(hi), high, _mm512_set1_epi8(16));
}
template <int Qh> __m256i q5_codes1(const uint8_t* a) {
    const __m256i q = nibble_codes1(a + Qh + 4);
    return _mm256_mask_add_epi8(q, _cvtu32_mask32(load_u32(a + Qh)), q, _mm256_set1_epi8(16));
}

// Q4: the nibbles; Q5: the nibbles and, Qh bytes into the block, their fifth bits.
template <int Bytes, int Qs, int Offset, bool Affine> struct DotQ4 : NibbleGroup<Bytes, Qs> {
    static constexpr int kOffset = Offset;
    static constexpr bool kAffine = Affine;
    static void codes(const uint8_t* w, __m512i& low, __m512i& high) { DotQ4::nibbles(w, low, high); }
    static __m256i codes1(const uint8_t* a) { return nibble_codes1(a + Qs); }
};
template <int Bytes, int Qh, int Offset, bool Affine> struct DotQ5 : NibbleGroup<Bytes, Qh + 4> {
    static constexpr int kOffset = Offset;
    static constexpr bool kAffine = Affine;
    static void codes(const uint8_t* w, __m512i& low, __m512i& high) {
        DotQ5::nibbles(w, low, high);
        fifth_bits<Bytes, Qh>(w, low, high);
    }
    static __m256i codes1(const uint8_t* a) { return q5_codes1<Qh>(a); }
    static __m512i codes2(const uint8_t* a, const uint8_t* b) {
        const __m512i q = nibble_codes2(a + Qh + 4, b + Qh + 4);
        return _mm512_mask_add_epi8(q, _cvtu64_mask64(load_u32(a + Qh) | uint64_t{load_u32(b + Qh)} << 32), q, _mm512_set1_epi8(16));
    }
};
using DotQ4_0 = DotQ4<18, 2, 8, false>;
using DotQ4_1 = DotQ4<20, 4, 0, true>;
using DotQ5_0 = DotQ5<22, 2, 16, false>;
using DotQ5_1 = DotQ5<24, 4, 0, true>;
struct DotIQ4_NL : NibbleGroup<18, 2> {  // levels + 128, looked up from the nibbles
    static constexpr int kOffset = 128;
    static constexpr bool kAffine = false;
    static __m128i levels() { return _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)), _mm_set1_epi8(-128)); }
    static void codes(const uint8_t* w, __m512i& low, __m512i& high) {
        nibbles(w, low, high);
        const __m512i table = _mm512_broadcast_i32x4(levels());
        low = _mm512_shuffle_epi8(table, low);
        high = _mm512_shuffle_epi8(table, high);
    }
    static __m256i codes1(const uint8_t* a) { return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(levels()), nibble_codes1(a + 2)); }
};
struct DotQ8_0 {  // signed codes made unsigned by adding 128; the activations' layout
    static constexpr int kBytes = kQ8_0Bytes, kOffset = 128;
    static constexpr bool kAffine = false;
    static void codes(const uint8_t* w, __m512i& low, __m512i& high) {
        low = _mm512_xor_si512(pick<kQ8Low>(w, 64), _mm512_set1_epi8(-128));
        high = _mm512_xor_si512(pick<kQ8High>(w + 8, 64), _mm512_set1_epi8(-128));
    }
    static __m256i codes1(const uint8_t* a) {
        return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2)), _mm256_set1_epi8(-128));
    }
    static __m512i codes2(const uint8_t* a, const uint8_t* b) {
        return _mm512_xor_si512(load_2x32(a + 2, b + 2), _mm512_set1_epi8(-128));
    }
};

// The lanes of a group's four blocks: sum of (code - offset) x c over values j and j + 16
// (the low and high vectors), for 4 values j per lane; and, for the affine kinds, the sum of
// the activation codes c.
template <class T> [[gnu::always_inline]] inline __m512i code_sums(const uint8_t* w, const uint8_t* x, __m512i* c_sums) {
    __m512i low, high;
    T::codes(w, low, high);
    const __m512i xl = pick<kQ8Low>(x, 64), xh = pick<kQ8High>(x + 8, 64);
    const __m512i zero = _mm512_setzero_si512();
    __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, low, xl), high, xh);
    if constexpr (T::kOffset != 0) {
        const __m512i offset = _mm512_set1_epi8(static_cast<char>(T::kOffset));
        s = _mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, offset, xl), offset, xh));
    }
    if constexpr (T::kAffine) {
        const __m512i ones = _mm512_set1_epi8(1);
        *c_sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, ones, xl), ones, xh);
    }
    return s;
}

// Sum over blocks of dw x dx x (sum of signed code products), 16 blocks a step. The affine
// kinds (value dw x q + m) take, per block, t = dw x (sum of q x c)
// + m x (sum of c): m x (sum of c) is exact (11 + 12 bits), so t is one rounding of
// the block's exact sum of w x c, then dx x t is added. (dw x dx and m x dx apart would
// cancel after rounding: large errors where a block's values straddle zero.)
template <class T> [[gnu::always_inline]] inline __m512 sixteen_blocks(const uint8_t* w, const uint8_t* x, __m512 acc) {
    constexpr int kW = T::kBytes, kX = kQ8_0Bytes;
    __m512i c[4];
    const __m512i s = merge16(code_sums<T>(w, x, &c[0]), code_sums<T>(w + 4 * kW, x + 4 * kX, &c[1]),
                              code_sums<T>(w + 8 * kW, x + 8 * kX, &c[2]), code_sums<T>(w + 12 * kW, x + 12 * kX, &c[3]));
    const __m512 dx = f16_fields16<kX>(x), dw = f16_fields16<kW>(w);
    if constexpr (T::kAffine) {
        const __m512 m = f16_fields16<kW>(w + 2);
        const __m512 t = _mm512_fmadd_ps(small_to_float(s), dw, _mm512_mul_ps(small_to_float(merge16(c[0], c[1], c[2], c[3])), m));
        return _mm512_fmadd_ps(t, dx, acc);
    } else {
        return _mm512_fmadd_ps(small_to_float(s), _mm512_mul_ps(dw, dx), acc);
    }
}

template <class T> float dot(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    constexpr int kW = T::kBytes;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 16 <= n_blocks; b += 16, w += 16 * kW, x += 16 * kQ8_0Bytes) acc = sixteen_blocks<T>(w, x, acc);
    // The last blocks one at a time, into their own accumulator.
    __m256 tail = _mm256_setzero_ps();
    for (; b < n_blocks; ++b, w += kW, x += kQ8_0Bytes) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 2));
        const __m256i zero = _mm256_setzero_si256();
        __m256i s = _mm256_dpbusd_epi32(zero, T::codes1(w), xq);
        if constexpr (T::kOffset != 0) s = _mm256_sub_epi32(s, _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(static_cast<char>(T::kOffset)), xq));
        if constexpr (T::kAffine) {
            const __m256i c = _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(1), xq);
            const __m256 t =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(half_to_float(w)), _mm256_mul_ps(_mm256_cvtepi32_ps(c), _mm256_set1_ps(half_to_float(w + 2))));
            tail = _mm256_fmadd_ps(t, _mm256_set1_ps(half_to_float(x)), tail);
        } else {
            tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(half_to_float(w) * half_to_float(x)), tail);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, _mm512_castps256_ps512(tail)));
}

// The pairwise kernel, as fast or faster for Q8_0 and Q5_0 on Zen 4 (measured): blocks two
// at a time in 512-bit registers (the 64 codes of two weight blocks against those of two
// activation blocks), the 16 integer lanes converted and multiplied by their block's dw x dx
// into float accumulators, the scales of 8 blocks fetched at once by fields8.
template <class T> float dot_pairs(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    static_assert(!T::kAffine && T::kOffset != 0);
    constexpr int kX = kQ8_0Bytes;
    const __m512i offset = _mm512_set1_epi8(static_cast<char>(T::kOffset));
    auto sum2 = [&](const uint8_t* wa, const uint8_t* xa) {  // blocks wa, wa + 1 against xa, xa + 1
        const __m512i xq = load_2x32(xa + 2, xa + kX + 2);
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), T::codes2(wa, wa + T::kBytes), xq);
        return _mm512_cvtepi32_ps(_mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xq)));
    };
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    int64_t b = 0;
    for (; b + 8 <= n_blocks; b += 8, w += 8 * T::kBytes, x += 8 * kX) {
        const __m512 scale = _mm512_castps256_ps512(_mm256_mul_ps(fields8<T::kBytes, 0>(w), fields8<kX, 0>(x)));
        for (int p = 0; p < 4; ++p) {  // blocks 2p, 2p + 1: scales 2p in lanes 0-7, 2p + 1 in lanes 8-15
            const __m512i pair = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_set1_epi32(2 * p));
            __m512& acc = p % 2 ? acc1 : acc0;
            acc = _mm512_fmadd_ps(sum2(w + 2 * p * T::kBytes, x + 2 * p * kX), _mm512_permutexvar_ps(pair, scale), acc);
        }
    }
    __m256 tail = _mm256_setzero_ps();  // the last blocks one at a time
    for (; b < n_blocks; ++b, w += T::kBytes, x += kX) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 2));
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), T::codes1(w), xq);
        const __m256i o = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm512_castsi512_si256(offset), xq);
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(s, o)), _mm256_set1_ps(half_to_float(w) * half_to_float(x)), tail);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_castps256_ps512(tail)));
}

}  // namespace

void add_legacy(detail::Table& t) {
    t.set_dequantize(TypeId::Q4_0, dequantize<Q4_0, false>);
    t.set_dequantize(TypeId::Q4_1, dequantize<Q4_1, true>);
    t.set_dequantize(TypeId::Q5_0, dequantize<Q5_0, false>);
    t.set_dequantize(TypeId::Q5_1, dequantize<Q5_1, true>);
    t.set_dequantize(TypeId::Q8_0, dequantize<Q8<34>, false>);
    t.set_dequantize(TypeId::Q8_1, dequantize<Q8<kQ8_1Bytes>, false>);
    t.set_dequantize(TypeId::IQ4_NL, dequantize<IQ4_NL, false>);
    t.set_dot(TypeId::Q4_0, dot<DotQ4_0>);
    t.set_dot(TypeId::Q4_1, dot<DotQ4_1>);
    t.set_dot(TypeId::Q5_0, dot_pairs<DotQ5_0>);
    t.set_dot(TypeId::Q5_1, dot<DotQ5_1>);
    t.set_dot(TypeId::Q8_0, dot_pairs<DotQ8_0>);
    t.set_dot(TypeId::IQ4_NL, dot<DotIQ4_NL>);
}

}  // namespace kernels::avx512
