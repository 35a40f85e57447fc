// legacy, avx512 path: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 IQ4_NL.
//
// Dequantization equals quant/decode.h bit for bit: each value is the same float product
// (and for the _1 kinds the same sum) as the decoder's. vcvtph2ps quiets a signalling-NaN
// scale, which the decoder keeps, but every value is a product with the scale and the
// multiply quiets it there too, so the bits agree.
//
// Dot products take blocks two at a time in 512-bit registers: the 64 codes of two weight
// blocks against the 64 codes of two Q8_0 (Q8_1) blocks with vpdpbusd (unsigned weight codes
// times signed activation codes; a signed weight's offset is taken off with a second vpdpbusd
// of the offset against the activations), then the 16 integer lanes are converted and
// multiplied by their block's scale dw x dx into float accumulators. The scales of 8 blocks
// are fetched at once: two 128-byte windows and a word permutation pick the 8 f16 fields.
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's AVX-512 intrinsics (its bug 105593)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"
#include "table.h"

namespace kernels::avx512 {

namespace {

using gguf::TypeId;

constexpr int kQ8_0Bytes = sizeof(quant::BlockQ8_0), kQ8_1Bytes = sizeof(quant::BlockQ8_1);

// The 16 IQ4_NL levels (quant/decode.h iq4_level).
constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

uint16_t u16_at(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
uint32_t u32_at(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
float half_at(const uint8_t* p) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16_at(p)))); }

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
    const uint32_t bits = u32_at(qh);
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
        T::values(src, _mm512_set1_ps(half_at(src)), _mm512_set1_ps(kAffine ? half_at(src + 2) : 0.0f), y);
}

// ---- Dot products -----------------------------------------------------------------------

// Each weight type gives the unsigned codes of two blocks (64 bytes: block A's 32 in value
// order, then block B's) or of one (32 bytes), and the offset to take off them (the signed
// code is code - kOffset), or 0.

// 4-bit codes of two blocks: each 16 bytes of nibbles twice, the high nibbles shifted down
// in the second copy.
__m512i nibble_codes2(const uint8_t* qa, const uint8_t* qb) {
    const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qa)));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qb)));
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    return _mm512_and_si512(_mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4), _mm512_set1_epi8(0x0f));
}
__m256i nibble_codes1(const uint8_t* q) {
    const __m256i z = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    return _mm256_and_si256(_mm256_mask_srli_epi16(z, 0xff00u, z, 4), _mm256_set1_epi8(0x0f));
}

struct DotQ4_0 {
    static constexpr int kBytes = 18, kOffset = 8;
    static __m512i codes2(const uint8_t* a, const uint8_t* b) { return nibble_codes2(a + 2, b + 2); }
    static __m256i codes1(const uint8_t* a) { return nibble_codes1(a + 2); }
};
struct DotQ4_1 {
    static constexpr int kBytes = 20, kOffset = 0;
    static __m512i codes2(const uint8_t* a, const uint8_t* b) { return nibble_codes2(a + 4, b + 4); }
    static __m256i codes1(const uint8_t* a) { return nibble_codes1(a + 4); }
};
template <int Qh> __m512i q5_codes2(const uint8_t* a, const uint8_t* b) {
    const __mmask64 high = _cvtu64_mask64(u32_at(a + Qh) | uint64_t{u32_at(b + Qh)} << 32);
    const __m512i q = nibble_codes2(a + Qh + 4, b + Qh + 4);
    return _mm512_mask_add_epi8(q, high, q, _mm512_set1_epi8(16));
}
template <int Qh> __m256i q5_codes1(const uint8_t* a) {
    const __m256i q = nibble_codes1(a + Qh + 4);
    return _mm256_mask_add_epi8(q, _cvtu32_mask32(u32_at(a + Qh)), q, _mm256_set1_epi8(16));
}
struct DotQ5_0 {
    static constexpr int kBytes = 22, kOffset = 16;
    static __m512i codes2(const uint8_t* a, const uint8_t* b) { return q5_codes2<2>(a, b); }
    static __m256i codes1(const uint8_t* a) { return q5_codes1<2>(a); }
};
struct DotQ5_1 {
    static constexpr int kBytes = 24, kOffset = 0;
    static __m512i codes2(const uint8_t* a, const uint8_t* b) { return q5_codes2<4>(a, b); }
    static __m256i codes1(const uint8_t* a) { return q5_codes1<4>(a); }
};
struct DotQ8_0 {  // signed codes made unsigned by adding 128
    static constexpr int kBytes = 34, kOffset = 128;
    static __m512i codes2(const uint8_t* a, const uint8_t* b) {
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2))),
                                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), 1);
        return _mm512_xor_si512(q, _mm512_set1_epi8(-128));
    }
    static __m256i codes1(const uint8_t* a) {
        return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2)), _mm256_set1_epi8(-128));
    }
};
struct DotIQ4_NL {  // levels + 128, looked up from the nibbles
    static constexpr int kBytes = 18, kOffset = 128;
    static __m128i levels() {
        return _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)), _mm_set1_epi8(-128));
    }
    static __m512i codes2(const uint8_t* a, const uint8_t* b) {
        return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(levels()), nibble_codes2(a + 2, b + 2));
    }
    static __m256i codes1(const uint8_t* a) { return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(levels()), nibble_codes1(a + 2)); }
};

// Sum over blocks of dw x dx x (sum of codes products); the _1 kinds add m x s per block
// (Q8_1's s = dx x the sum of its codes, so m's share of the products).
template <class T, int XBytes, bool kMins> float dot(const uint8_t* w, const uint8_t* x, int64_t n_blocks) {
    const __m512i offset = _mm512_set1_epi8(static_cast<char>(T::kOffset));
    auto sum2 = [&](const uint8_t* wa, const uint8_t* xa) {  // blocks wa, wa + 1 against xa, xa + 1
        const __m512i xq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + XBytes - 32))),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 2 * XBytes - 32)), 1);
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), T::codes2(wa, wa + T::kBytes), xq);
        if constexpr (T::kOffset != 0) s = _mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xq));
        return _mm512_cvtepi32_ps(s);
    };
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    __m256 mins = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 8 <= n_blocks; b += 8, w += 8 * T::kBytes, x += 8 * XBytes) {
        const __m512 scale = _mm512_castps256_ps512(_mm256_mul_ps(fields8<T::kBytes, 0>(w), fields8<XBytes, 0>(x)));
        if constexpr (kMins) mins = _mm256_fmadd_ps(fields8<T::kBytes, 2>(w), fields8<XBytes, 2>(x), mins);
        const __m512i pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        acc0 = _mm512_fmadd_ps(sum2(w, x), _mm512_permutexvar_ps(pair, scale), acc0);
        acc1 = _mm512_fmadd_ps(sum2(w + 2 * T::kBytes, x + 2 * XBytes), _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(2)), scale), acc1);
        acc0 = _mm512_fmadd_ps(sum2(w + 4 * T::kBytes, x + 4 * XBytes), _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(4)), scale), acc0);
        acc1 = _mm512_fmadd_ps(sum2(w + 6 * T::kBytes, x + 6 * XBytes), _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(6)), scale), acc1);
    }
    // The last blocks one at a time, into their own accumulator.
    __m256 tail = _mm256_setzero_ps();
    float tail_mins = 0;
    for (; b < n_blocks; ++b, w += T::kBytes, x += XBytes) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + XBytes - 32));
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), T::codes1(w), xq);
        if constexpr (T::kOffset != 0) s = _mm256_sub_epi32(s, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm512_castsi512_si256(offset), xq));
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(half_at(w) * half_at(x)), tail);
        if constexpr (kMins) tail_mins += half_at(w + 2) * half_at(x + 2);
    }
    const __m256 rest = _mm256_add_ps(tail, mins);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(rest), _mm256_extractf128_ps(rest, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + _mm_cvtss_f32(r) + tail_mins;
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
    t.set_dot(TypeId::Q4_0, dot<DotQ4_0, kQ8_0Bytes, false>);
    t.set_dot(TypeId::Q4_1, dot<DotQ4_1, kQ8_1Bytes, true>);
    t.set_dot(TypeId::Q5_0, dot<DotQ5_0, kQ8_0Bytes, false>);
    t.set_dot(TypeId::Q5_1, dot<DotQ5_1, kQ8_1Bytes, true>);
    t.set_dot(TypeId::Q8_0, dot<DotQ8_0, kQ8_0Bytes, false>);
    t.set_dot(TypeId::IQ4_NL, dot<DotIQ4_NL, kQ8_0Bytes, false>);
}

}  // namespace kernels::avx512
