// Byte-level BPE (tokenizer.ggml.model "gpt2"): the pre-tokenizers and the merges.
//
// The pre-tokenizer named by tokenizer.ggml.pre is a list of regular expressions; each in
// turn cuts every piece of the text into its matches and the runs between them. Each
// resulting word's UTF-8 bytes are written in GPT-2's byte alphabet (printable bytes stand
// for themselves, the others for U+0100 onwards), one piece per byte; then the
// neighbouring pair with the lowest merge rank merges (on equal ranks the leftmost), until
// no pair has a merge. A final piece that is no token gives the tokens of its single
// bytes where those exist (as llama.cpp does), else nothing.
#include <array>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "unicode.h"
#include "vocab.h"

namespace infer {

namespace {

// The patterns (facts of each model's tokenizer, as llama.cpp writes them).
constexpr std::string_view kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))re";
constexpr std::string_view kLlama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kLlama3Original =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// The cased letters (Lu, Ll, Lt). Six code points are written as \u escapes: they have
// singleton canonical decompositions, and an editor that normalizes text would change them.
constexpr std::string_view kDeepseekLlmLetters =
    R"re(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)re";
constexpr std::string_view kCjk = R"re([一-龥ࠀ-一가-퟿]+)re";
constexpr std::string_view kFinnish = R"re( ?[^(\s|.,!?…。，、।۔،)]+)re";
constexpr std::string_view kTekken =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kGpt4o =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kBailing =
    R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re";
constexpr std::string_view kSeedCoder =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re";

struct PreTokenizer {
    std::vector<std::string_view> names;  // tokenizer.ggml.pre values
    std::vector<std::string_view> patterns;
    bool ignore_merges = false;  // a word that is a token whole is that token
    bool add_bos = false;        // add_bos_token's default
};

const std::vector<PreTokenizer>& pre_tokenizers() {
    static const std::vector<PreTokenizer> table = {
        {{"default"}, {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", "[0-9][0-9][0-9]"}},
        {{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}, {kLlama3}, true, true},
        {{"dbrx", "smaug-bpe"}, {kLlama3}},
        {{"deepseek-llm"}, {"[\r\n]", kDeepseekLlmLetters, R"re(\s?[!-/:-~！-／：-～‘-‟　-。]+)re", R"re(\s+$)re", kCjk, R"re(\p{N}+)re"}},
        {{"deepseek-coder"}, {"[\r\n]", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kCjk, R"re(\p{N})re"}},
        {{"falcon"}, {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, "[0-9][0-9][0-9]"}},
        {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}, {R"re(\p{N})re", kGpt2}},
        {{"gpt-2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", "gigachat", "mpt",
          "olmo", "jais", "trillion"},
         {kGpt2}},
        {{"qwen2", "stablelm2", "megrez", "deepseek-r1-qwen", "hunyuan"}, {kQwen2}},
        {{"poro-chat", "bloom", "gpt3-finnish"}, {kFinnish}},
        {{"chatglm-bpe"}, {kLlama3}},
        {{"viking"}, {kFinnish, R"re(\p{N})re"}},
        {{"tekken"}, {kTekken}, true, true},
        {{"chameleon"},
         {R"re(<sentinel:[0-9]+>)re", R"re((IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z)re", "([\t\n]|    |  )", R"re(\p{N})re", R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2},
         false,
         true},
        {{"gpt-4o", "llama4", "minimax-m2"}, {kGpt4o}},
        {{"superbpe"}, {R"re(\p{N}+)re", R"re((?=(\d{3})+(?!\d)))re"}},
        {{"bailingmoe", "llada-moe"}, {kBailing}},
        {{"seed-coder"}, {kSeedCoder}},
    };
    return table;
}

// How llama.cpp reads each pattern (see PatternText).
PatternText text_kind(std::string_view pattern) {
    if (pattern == kGpt2 || pattern == kLlama3 || pattern == kLlama3Original) return PatternText::Categories;
    for (std::string_view cat : {"\\p{N}", "\\p{L}", "\\p{P}", "\\p{M}", "\\p{S}"})
        if (pattern.find(cat) != std::string_view::npos) return PatternText::Collapsed;
    return PatternText::CodePoints;
}

// GPT-2's byte alphabet.
struct ByteAlphabet {
    std::array<std::string, 256> chars;
    std::array<int16_t, 324> bytes;  // code point -> byte, -1
    ByteAlphabet() {
        bytes.fill(-1);
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cp = printable ? b : next++;
            unicode::append_utf8(chars[b], cp);
            bytes[cp] = static_cast<int16_t>(b);
        }
    }
};
const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

int32_t intern(Tokenizer::Impl& v, std::string_view s) {
    const int32_t known = v.piece_of(s);
    if (known >= 0) return known;
    v.extra_piece_text.emplace_back(s);
    const auto id = static_cast<int32_t>(v.size() + v.extra_piece_text.size() - 1);
    v.extra_pieces.emplace(v.extra_piece_text.back(), id);
    return id;
}

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right); }

struct Symbol {
    uint32_t start, length;  // bytes of the word in the byte alphabet; length 0: merged away
    int32_t piece;           // -1: a string no merge mentions
    int32_t prev, next;
};

struct Candidate {
    uint32_t rank;
    int32_t left, right;
    uint32_t length;
    int32_t result;
    bool operator<(const Candidate& o) const {  // priority_queue pops the largest: lowest rank, then leftmost
        return rank > o.rank || (rank == o.rank && left > o.left);
    }
};

// One word, as code points, to tokens.
void encode_word(const Tokenizer::Impl& v, std::span<const uint32_t> cps, std::string& word, std::vector<Symbol>& symbols,
                 std::vector<TokenId>& out) {
    const ByteAlphabet& a = alphabet();
    word.clear();
    symbols.clear();
    std::string utf8;
    for (const uint32_t cp : cps) {
        utf8.clear();
        unicode::append_utf8(utf8, cp);
        for (const char c : utf8) {
            const auto b = static_cast<uint8_t>(c);
            const auto index = static_cast<int32_t>(symbols.size());
            symbols.push_back({static_cast<uint32_t>(word.size()), static_cast<uint32_t>(a.chars[b].size()), v.byte_pieces[b], index - 1, index + 1});
            word += a.chars[b];
        }
    }
    if (symbols.empty()) return;
    symbols.back().next = -1;
    if (v.ignore_merges) {
        if (const auto id = v.find(word)) {
            out.push_back(*id);
            return;
        }
    }

    std::priority_queue<Candidate> queue;
    auto consider = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0 || symbols[left].piece < 0 || symbols[right].piece < 0) return;
        const auto it = v.merges.find(pair_key(symbols[left].piece, symbols[right].piece));
        if (it == v.merges.end()) return;
        queue.push({it->second.rank, left, right, symbols[left].length + symbols[right].length, it->second.result});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) consider(i - 1, i);
    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& left = symbols[c.left];
        Symbol& right = symbols[c.right];
        if (left.length == 0 || right.length == 0 || left.length + right.length != c.length) continue;  // stale
        left.length += right.length;
        left.piece = c.result;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = c.left;
        consider(left.prev, c.left);
        consider(c.left, left.next);
    }

    const auto n_tokens = static_cast<int32_t>(v.size());
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
        const Symbol& s = symbols[i];
        if (s.piece >= 0 && s.piece < n_tokens) {
            out.push_back(s.piece);
            continue;
        }
        const std::string_view text = std::string_view(word).substr(s.start, s.length);
        if (const auto id = v.find(text)) {
            out.push_back(*id);
            continue;
        }
        for (const char& c : text)
            if (const auto id = v.find(std::string_view(&c, 1))) out.push_back(*id);
    }
}

}  // namespace

std::vector<std::string_view> pre_tokenizer_names() {
    std::vector<std::string_view> names;
    for (const PreTokenizer& p : pre_tokenizers()) names.insert(names.end(), p.names.begin(), p.names.end());
    return names;
}

bool set_pre_tokenizer(Tokenizer::Impl& v, std::string_view pre) {
    for (const PreTokenizer& p : pre_tokenizers()) {
        for (std::string_view name : p.names) {
            if (name != pre) continue;
            v.pre_patterns.clear();
            for (std::string_view pattern : p.patterns) v.pre_patterns.push_back({regex::Regex(pattern), text_kind(pattern)});
            v.ignore_merges = p.ignore_merges;
            v.add_bos = p.add_bos;
            return true;
        }
    }
    return false;
}

void add_merge(Tokenizer::Impl& v, std::string_view merge, uint32_t rank) {
    const size_t space = merge.find(' ', 1);
    if (space == std::string_view::npos) throw std::invalid_argument("'" + std::string(merge) + "' is not two strings separated by a space");
    const int32_t left = intern(v, merge.substr(0, space));
    const int32_t right = intern(v, merge.substr(space + 1));
    std::string joined(merge.substr(0, space));
    joined += merge.substr(space + 1);
    const int32_t result = intern(v, joined);
    v.merges.emplace(pair_key(left, right), Tokenizer::Impl::Merge{rank, result});  // the first of duplicates counts
}

void finish_bpe(Tokenizer::Impl& v) {
    for (int b = 0; b < 256; ++b) v.byte_pieces[b] = v.piece_of(alphabet().chars[b]);
}

std::string_view byte_char(uint8_t b) { return alphabet().chars[b]; }

std::optional<uint8_t> char_byte(uint32_t cp) {
    if (cp >= alphabet().bytes.size() || alphabet().bytes[cp] < 0) return std::nullopt;
    return static_cast<uint8_t>(alphabet().bytes[cp]);
}

void encode_bpe(const Tokenizer::Impl& v, std::string_view text, WordCache& seen_words, std::vector<TokenId>& out) {
    const std::vector<uint32_t> cps = unicode::decode(text);
    // The text each kind of pattern sees (PatternText); same length, so pieces line up.
    std::vector<uint32_t> seen[3];
    auto view_for = [&](PatternText kind) -> std::span<const uint32_t> {
        std::vector<uint32_t>& t = seen[static_cast<int>(kind)];
        if (t.empty()) {
            t = cps;
            for (uint32_t& cp : t) {
                if (cp < 0x80) continue;
                if (unicode::is_whitespace(cp)) cp = 0x0B;
                else if (kind == PatternText::Collapsed &&
                         !unicode::in(cp, unicode::kLetter | unicode::kNumber | unicode::kPunctuation | unicode::kSymbol | unicode::kMark))
                    cp = 0x4E00;  // any letter stands in: that view has only category groups
            }
        }
        return t;
    };
    std::vector<size_t> lengths, next;
    if (!cps.empty()) lengths.push_back(cps.size());
    for (const PrePattern& p : v.pre_patterns) {
        regex::split(p.re, view_for(p.text), lengths, next);
        lengths.swap(next);
    }
    // Texts repeat their words: each distinct word is merged once per encode() call.
    std::string word;
    std::vector<Symbol> symbols;
    size_t start = 0;
    for (const size_t len : lengths) {
        const auto cp_word = std::span<const uint32_t>(cps).subspan(start, len);
        start += len;
        std::u32string key(cp_word.begin(), cp_word.end());
        if (const auto it = seen_words.find(key); it != seen_words.end()) {
            const auto [first, count] = it->second;
            for (size_t i = 0; i < count; ++i) {
                const TokenId id = out[first + i];
                out.push_back(id);
            }
            continue;
        }
        const size_t first = out.size();
        encode_word(v, cp_word, word, symbols, out);
        seen_words.emplace(std::move(key), std::pair<size_t, size_t>{first, out.size() - first});
    }
}

}  // namespace infer
