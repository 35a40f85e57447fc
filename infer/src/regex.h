// A small backtracking regular-expression engine over code points, for the pre-tokenizer
// patterns of byte-level BPE vocabularies (GPT-2, Llama 3, Qwen 2, DeepSeek, ...).
//
// Supported: literals (any code point), '.', classes [...] with ranges and negation,
// \s \S \d \D \w \W, \p{X} \P{X} for a general category or its group (L, Lu, N, P, ...),
// \r \n \t \f \v \xHH \uHHHH, groups (...) and (?:...) (never capturing), (?i:...) for
// case-insensitive parts, lookahead (?=...) (?!...), ^ and $ (at the ends of the text),
// and the quantifiers ? * + {n} {n,} {n,m}, greedy or lazy (a trailing ?).
// Alternatives are tried in order and the first that matches wins (Perl's leftmost-first
// rule, which is what std::regex's ECMAScript mode and Python's re do).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "unicode.h"

namespace infer::regex {

class Regex {
public:
    // Throws std::invalid_argument naming the pattern and the position of an error.
    explicit Regex(std::string_view pattern);

    // The end of the match that starts exactly at `pos` of `text` (the text ends where the
    // span ends: $ and lookahead see no further), or npos when none does.
    size_t match_at(std::span<const uint32_t> text, size_t pos) const;
    static constexpr size_t npos = ~size_t{0};

    struct Item {
        enum Kind : uint8_t { Range, Categories, NotCategories, Space, NotSpace } kind;
        uint32_t lo = 0, hi = 0;
        unicode::CategoryMask mask = 0;
    };
    struct Class {
        bool negate = false;
        bool icase = false;
        uint64_t ascii[2] = {0, 0};  // the answer for code points below 128, precomputed
        std::vector<Item> items;
        bool matches(uint32_t c) const {
            if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
            return slow_matches(c);
        }
        bool slow_matches(uint32_t c) const;
        bool item_matches(uint32_t c) const;
        void finish();  // fills `ascii`
    };
    enum class Op : uint8_t { Char, CharFold, Class, Any, Split, Jmp, Look, NegLook, Bol, Eol, Match };
    struct Inst {
        Op op;
        uint32_t a = 0;  // Char: the code point; Class: its index; Split/Jmp: target; Look: end
        uint32_t b = 0;  // Split: the second target
    };

private:
    size_t run(std::span<const uint32_t> text, uint32_t pc, size_t pos) const;
    friend class Compiler;
    std::vector<Inst> program_;
    std::vector<Class> classes_;
};

// Cuts each piece of `text` (the pieces are `lengths`, in code points, in order) into the
// matches of `re` and the runs between them, both kept, searching each piece on its own;
// the new lengths go to `out`. The pre-tokenizers of byte-level BPE apply their patterns
// one after another this way.
void split(const Regex& re, std::span<const uint32_t> text, std::span<const size_t> lengths, std::vector<size_t>& out);

}  // namespace infer::regex
