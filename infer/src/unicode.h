// Unicode facts for the tokenizers: general categories, White_Space, lowercase, the first
// code point of a canonical decomposition, and UTF-8 as llama.cpp's tokenizers read it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace infer::unicode {

// General categories, in the order of scripts/gen-unicode-tables (Cn: unassigned).
enum Category : uint8_t {
    Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
    Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, kCategoryCount
};
using CategoryMask = uint32_t;  // bit c set: category c
constexpr CategoryMask bit(Category c) { return CategoryMask{1} << c; }
constexpr CategoryMask kLetter = bit(Lu) | bit(Ll) | bit(Lt) | bit(Lm) | bit(Lo);
constexpr CategoryMask kMark = bit(Mn) | bit(Mc) | bit(Me);
constexpr CategoryMask kNumber = bit(Nd) | bit(Nl) | bit(No);
constexpr CategoryMask kPunctuation = bit(Pc) | bit(Pd) | bit(Ps) | bit(Pe) | bit(Pi) | bit(Pf) | bit(Po);
constexpr CategoryMask kSymbol = bit(Sm) | bit(Sc) | bit(Sk) | bit(So);
constexpr CategoryMask kSeparator = bit(Zs) | bit(Zl) | bit(Zp);
constexpr CategoryMask kOther = bit(Cn) | bit(Cc) | bit(Cf) | bit(Cs) | bit(Co);

constexpr uint8_t kWhiteSpaceBit = 0x80;
constexpr uint32_t kReplacement = 0xFFFD;

// Category | kWhiteSpaceBit, for any value (above U+10FFFF: Cn).
uint8_t properties(uint32_t cp);
inline Category category(uint32_t cp) { return static_cast<Category>(properties(cp) & 0x7F); }
inline bool is_whitespace(uint32_t cp) { return (properties(cp) & kWhiteSpaceBit) != 0; }
inline bool in(uint32_t cp, CategoryMask mask) { return (mask >> category(cp)) & 1; }

uint32_t to_lower(uint32_t cp);   // the single-code-point lowercase, or cp
uint32_t nfd_first(uint32_t cp);  // the first code point of cp's canonical decomposition

// UTF-8. Decoding reads an invalid or truncated sequence as U+FFFD and moves on one byte.
uint32_t decode_one(std::string_view s, size_t& pos);
std::vector<uint32_t> decode(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);
// The length of the sequence a lead byte starts (1 for a stray continuation byte).
inline size_t sequence_length(uint8_t lead) {
    static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLengths[lead >> 4];
}

}  // namespace infer::unicode
