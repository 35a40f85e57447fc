// What a Tokenizer holds, shared by the three algorithms (spm.cpp, bpe.cpp, wordpiece.cpp).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "infer/tokenizer.h"
#include "regex.h"

namespace infer {

// How a pre-tokenizer pattern sees the text. llama.cpp runs the GPT-2 and Llama 3 patterns
// through hand-written splitters (true categories), other patterns with \p{..} through
// std::regex over text where each non-ASCII code point stands for its category group (and
// a code point of none of L, N, P, S, M counts as a letter), and the rest through
// std::wregex over the code points. In all three a non-ASCII white-space code point reads
// as U+000B.
enum class PatternText : uint8_t { Categories, Collapsed, CodePoints };

struct PrePattern {
    regex::Regex re;
    PatternText text;
};

struct Tokenizer::Impl {
    std::string file;  // for errors
    TokenizerKind kind = TokenizerKind::SentencePiece;
    std::string model, pre;

    // Token strings back to back; token i is arena[offsets[i], offsets[i + 1]).
    std::string arena;
    std::vector<uint32_t> offsets;
    std::vector<float> scores;
    std::vector<TokenType> types;
    std::unordered_map<std::string_view, TokenId> ids;  // string -> id (the last of duplicates)
    size_t max_token_bytes = 0;

    std::optional<TokenId> bos, eos, unk, pad, sep, cls;
    bool add_bos = false, add_eos = false, add_space_prefix = false;

    // Tokens matched whole in the text before the algorithm runs (control, user-defined and
    // unknown tokens), longest first.
    std::vector<TokenId> specials;

    // SentencePiece: the <0xXX> token of each byte, or -1.
    TokenId byte_tokens[256];

    // BPE. Pieces are strings that merges mention: ids below size() are the tokens; more
    // pieces (merge parts that are not tokens) follow. A merge is keyed by its two pieces.
    std::vector<PrePattern> pre_patterns;
    bool ignore_merges = false;
    struct Merge {
        uint32_t rank;
        int32_t result;  // piece id of the merged string
    };
    std::unordered_map<uint64_t, Merge> merges;
    std::deque<std::string> extra_piece_text;
    std::unordered_map<std::string_view, int32_t> extra_pieces;
    int32_t byte_pieces[256];  // the piece of each byte's GPT-2 character, or -1

    size_t size() const { return types.size(); }
    std::string_view text(TokenId id) const { return std::string_view(arena).substr(offsets[id], offsets[id + 1] - offsets[id]); }
    std::optional<TokenId> find(std::string_view s) const {
        const auto it = ids.find(s);
        if (it == ids.end()) return std::nullopt;
        return it->second;
    }
    int32_t piece_of(std::string_view s) const {
        if (auto id = find(s)) return *id;
        const auto it = extra_pieces.find(s);
        return it == extra_pieces.end() ? -1 : it->second;
    }
};

// The algorithms: each appends the tokens of one stretch of text without special tokens.
// `first`: the stretch starts the text or follows a special token.
void encode_spm(const Tokenizer::Impl& v, std::string_view text, bool first, std::vector<TokenId>& out);
// BPE's words already merged in this encode() call: word -> [first, first + count) of `out`.
using WordCache = std::unordered_map<std::u32string, std::pair<size_t, size_t>>;
void encode_bpe(const Tokenizer::Impl& v, std::string_view text, WordCache& cache, std::vector<TokenId>& out);
void encode_wordpiece(const Tokenizer::Impl& v, std::string_view text, std::vector<TokenId>& out);

// BPE set-up (bpe.cpp): the pre-tokenizer named `pre` (false: unknown name), and the merges.
bool set_pre_tokenizer(Tokenizer::Impl& v, std::string_view pre);
void add_merge(Tokenizer::Impl& v, std::string_view merge, uint32_t rank);  // throws std::invalid_argument
void finish_bpe(Tokenizer::Impl& v);
std::vector<std::string_view> pre_tokenizer_names();
// GPT-2's byte alphabet: the UTF-8 of the character standing for byte b, and back.
std::string_view byte_char(uint8_t b);
std::optional<uint8_t> char_byte(uint32_t cp);

}  // namespace infer
