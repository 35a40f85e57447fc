// WordPiece (tokenizer.ggml.model "bert"), as llama.cpp reads a BERT vocabulary: word-start
// tokens carry a leading "▁" and continuation tokens carry nothing (no "##").
//
// The text is read as code points, each replaced by the first code point of its canonical
// decomposition (so accented letters lose their accents) and lowercased; white space ends
// a word; control characters, U+0000 and U+FFFD are dropped; punctuation, ASCII symbols and
// CJK ideographs are words of their own. Each word, with "▁" in front, is covered left to
// right by the longest token that matches at each point; a word that cannot be covered
// whole is the unknown token.
#include "unicode.h"
#include "vocab.h"

namespace infer {

namespace {

// Control, format, surrogate and private-use code points (not unassigned ones) are dropped.
constexpr unicode::CategoryMask kControl = unicode::bit(unicode::Cc) | unicode::bit(unicode::Cf) | unicode::bit(unicode::Cs) | unicode::bit(unicode::Co);

bool is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

std::vector<std::string> words_of(std::string_view text) {
    std::vector<std::string> words(1);
    for (size_t pos = 0; pos < text.size();) {
        const uint32_t cp = unicode::nfd_first(unicode::decode_one(text, pos));
        if (unicode::is_whitespace(cp)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        if (cp == 0 || cp == unicode::kReplacement || unicode::in(cp, kControl)) continue;
        std::string c;
        unicode::append_utf8(c, unicode::to_lower(cp));
        if (unicode::in(cp, unicode::kPunctuation) || (cp < 0x7F && unicode::in(cp, unicode::kSymbol)) || is_cjk(cp)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = std::move(c);
            words.emplace_back();
        } else {
            words.back() += c;
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

}  // namespace

void encode_wordpiece(const Tokenizer::Impl& v, std::string_view text, std::vector<TokenId>& out) {
    for (const std::string& w : words_of(text)) {
        const std::string word = "\xE2\x96\x81" + w;
        const size_t before = out.size();
        for (size_t i = 0; i < word.size();) {
            size_t j = std::min(word.size(), i + v.max_token_bytes);
            for (; j > i; --j) {
                if (const auto id = v.find(std::string_view(word).substr(i, j - i))) {
                    out.push_back(*id);
                    break;
                }
            }
            if (j == i) {  // no token here: the whole word is unknown
                out.resize(before);
                break;
            }
            i = j;
        }
        if (out.size() == before && v.unk) out.push_back(*v.unk);
    }
}

}  // namespace infer
