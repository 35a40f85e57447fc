// Tokenizers on tiny vocabularies written in the test with gguf::Writer (nothing outside
// the repository): each algorithm's rules, special tokens, decoding, and the errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "infer/tokenizer.h"

using gguf::OwnedValue;
using gguf::ValueType;
using infer::TokenId;
using infer::Tokenizer;

namespace {

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    TokenId add(std::string text, float score = 0.0f, int32_t type = 1) {
        tokens.push_back(std::move(text));
        scores.push_back(score);
        types.push_back(type);
        return static_cast<TokenId>(tokens.size() - 1);
    }
};

// A vocabulary-only file in memory, kept alive beside the File that views it.
struct MemoryFile {
    std::vector<uint8_t> bytes;
    gguf::File file;
    explicit MemoryFile(const gguf::Writer& w) : bytes(w.write_to_memory()), file(gguf::File::parse(bytes, "test.gguf")) {}
};

gguf::Writer writer_for(const std::string& model, const Vocab& v) {
    gguf::Writer w;
    w.set("general.architecture", OwnedValue::string("llama"));
    w.set("tokenizer.ggml.model", OwnedValue::string(model));
    w.set("tokenizer.ggml.tokens", OwnedValue::strings(v.tokens));
    w.set("tokenizer.ggml.scores", OwnedValue::numbers(ValueType::F32, v.scores, OwnedValue::f32));
    w.set("tokenizer.ggml.token_type", OwnedValue::numbers(ValueType::I32, v.types, OwnedValue::i32));
    return w;
}

std::string hex_byte(int b) {
    static const char* digits = "0123456789ABCDEF";
    return std::string("<0x") + digits[b >> 4] + digits[b & 15] + ">";
}

// A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces.
struct SpmVocab : Vocab {
    TokenId space, a, b, ab, space_ab, space_a, ba, tag;
    SpmVocab() {
        add("<unk>", 0, 2);
        add("<s>", 0, 3);
        add("</s>", 0, 3);
        for (int i = 0; i < 256; ++i) add(hex_byte(i), 0, 6);
        space = add("\xE2\x96\x81", -1);
        a = add("a", -2);
        b = add("b", -2);
        ab = add("ab", -3);
        space_ab = add("\xE2\x96\x81" "ab", -4);
        space_a = add("\xE2\x96\x81" "a", -5);
        ba = add("ba", -0.5f);  // the best-scoring pair merges first
        tag = add("<tag>", 0, 4);
    }
};

TEST_CASE("SentencePiece: space prefix, merges by score, byte fallback, BOS") {
    const SpmVocab v;
    gguf::Writer w = writer_for("llama", v);
    w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(1));
    w.set("tokenizer.ggml.eos_token_id", OwnedValue::u32(2));
    const MemoryFile f(w);
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.kind() == infer::TokenizerKind::SentencePiece);
    CHECK(tok.size() == v.tokens.size());
    CHECK(tok.add_bos());
    CHECK(tok.bos() == 1);

    // "▁ab ▁ab": ▁+a would score -5, a+b -3; ab wins, then ▁+ab -4.
    CHECK(tok.encode("ab ab", false) == std::vector<TokenId>{v.space_ab, v.space_ab});
    CHECK(tok.encode("ab", true) == std::vector<TokenId>{1, v.space_ab});
    // "aba": b+a (-0.5) beats a+b (-3): ▁ a ba, then ▁+a (-5).
    CHECK(tok.encode("aba", false) == std::vector<TokenId>{v.space_a, v.ba});
    // é (C3 A9) is no token: its bytes.
    CHECK(tok.encode("\xC3\xA9", false) == std::vector<TokenId>{v.space, 3 + 0xC3, 3 + 0xA9});
    CHECK(tok.encode("", false).empty());
    CHECK(tok.encode("", true) == std::vector<TokenId>{1});

    const auto ids = tok.encode("ab b\xC3\xA9", true);
    CHECK(tok.decode(ids) == "ab b\xC3\xA9");
    CHECK(tok.piece(v.space_ab) == "\xE2\x96\x81" "ab");
    CHECK(tok.token_to_text(v.space_ab) == " ab");
    CHECK(tok.token_to_text(3 + 'x') == "x");
    CHECK(tok.token_to_text(1).empty());
    CHECK(tok.token_to_text(1, true) == "<s>");
    CHECK_THROWS_AS((void)tok.piece(static_cast<TokenId>(v.tokens.size())), std::out_of_range);
}

TEST_CASE("special tokens: user-defined always, control only with parse_special, space prefix after each") {
    const SpmVocab v;
    const MemoryFile f(writer_for("llama", v));
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    // <tag> is user-defined: matched whole even without parse_special.
    CHECK(tok.encode("ab<tag>ab", false, false) == std::vector<TokenId>{v.space_ab, v.tag, v.space_ab});
    // <s> is a control token: text unless parse_special.
    const auto plain = tok.encode("<s>", false, false);
    CHECK(plain.size() > 1);
    CHECK(tok.encode("<s>ab", false, true) == std::vector<TokenId>{1, v.space_ab});
    CHECK(tok.encode("<s>", false, true) == std::vector<TokenId>{1});
}

TEST_CASE("SentencePiece: add_space_prefix false, add_eos") {
    const SpmVocab v;
    gguf::Writer w = writer_for("llama", v);
    w.set("tokenizer.ggml.add_space_prefix", OwnedValue::boolean(false));
    w.set("tokenizer.ggml.add_eos_token", OwnedValue::boolean(true));
    const MemoryFile f(w);
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.encode("ab", true) == std::vector<TokenId>{1, v.ab, 2});
    CHECK(tok.decode(tok.encode(" ab", false)) == " ab");
}

// GPT-2's byte alphabet, for building a byte-level vocabulary.
std::string byte_char(int b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    uint32_t cp = static_cast<uint32_t>(b);
    if (!printable) {
        cp = 256;
        for (int i = 0; i < b; ++i)
            if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE)) ++cp;
    }
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

struct BpeVocab : Vocab {
    std::vector<std::string> merges;
    TokenId he, ll, hell, hello, G_w, G_wo, endoftext;
    BpeVocab() {
        for (int b = 0; b < 256; ++b) add(byte_char(b));
        he = add("he");
        ll = add("ll");
        hell = add("hell");
        hello = add("hello");
        G_w = add("\xC4\xA0w");  // "Ġw": Ġ is the space
        G_wo = add("\xC4\xA0wo");
        endoftext = add("<|endoftext|>", 0, 3);
        merges = {"l l", "h e", "he ll", "hell o", "\xC4\xA0 w", "\xC4\xA0w o"};
    }
};

gguf::Writer bpe_writer(const BpeVocab& v, const std::string& pre) {
    gguf::Writer w = writer_for("gpt2", v);
    w.set("tokenizer.ggml.pre", OwnedValue::string(pre));
    w.set("tokenizer.ggml.merges", OwnedValue::strings(v.merges));
    w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(static_cast<uint32_t>(v.endoftext)));
    return w;
}

TEST_CASE("byte-level BPE: merges by rank within the words the pre-tokenizer cuts") {
    const BpeVocab v;
    const MemoryFile f(bpe_writer(v, "gpt-2"));
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.kind() == infer::TokenizerKind::BytePairEncoding);
    CHECK(tok.pre_name() == "gpt-2");
    CHECK_FALSE(tok.add_bos());
    CHECK(tok.encode("hello", true) == std::vector<TokenId>{v.hello});
    // " wo" is one word (" ?\p{L}+"); "rld" has no merges: its bytes.
    // (Token b is byte b's character.)
    CHECK(tok.encode("hello world", false) == std::vector<TokenId>{v.hello, v.G_wo, 'r', 'l', 'd'});
    // Merges never cross the pre-tokenizer's cuts: "hel", "1", "lo" are words of their own.
    CHECK(tok.encode("hel1lo", false) == std::vector<TokenId>{v.he, 'l', '1', 'l', 'o'});
    const std::string text = "hello world\n\t\xC3\xA9\xF0\x9F\x98\x80 <|endoftext|>";
    CHECK(tok.decode(tok.encode(text, false)) == text);
    CHECK(tok.encode("<|endoftext|>", false, true) == std::vector<TokenId>{v.endoftext});
    CHECK(tok.token_to_text(v.G_wo) == " wo");
}

TEST_CASE("byte-level BPE: llama-bpe adds BOS by default and takes a word that is a token whole") {
    BpeVocab v;
    const TokenId whole = v.add("\xC4\xA0world");  // no merge makes it
    const MemoryFile f(bpe_writer(v, "llama-bpe"));
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.add_bos());
    CHECK(tok.encode("hello world", true) == std::vector<TokenId>{v.endoftext, v.hello, whole});
}

TEST_CASE("byte-level BPE: the file's add_bos_token overrides the pre-tokenizer's default, either way") {
    const BpeVocab v;
    {
        gguf::Writer w = bpe_writer(v, "llama-bpe");  // adds BOS by default
        w.set("tokenizer.ggml.add_bos_token", OwnedValue::boolean(false));
        const MemoryFile f(std::move(w));
        const Tokenizer tok = Tokenizer::from_gguf(f.file);
        CHECK_FALSE(tok.add_bos());
        CHECK(tok.encode("hello", true) == std::vector<TokenId>{v.hello});
    }
    {
        gguf::Writer w = bpe_writer(v, "gpt-2");  // adds none by default
        w.set("tokenizer.ggml.add_bos_token", OwnedValue::boolean(true));
        const MemoryFile f(std::move(w));
        const Tokenizer tok = Tokenizer::from_gguf(f.file);
        CHECK(tok.add_bos());
        CHECK(tok.encode("hello", true) == std::vector<TokenId>{v.endoftext, v.hello});
    }
}

TEST_CASE("a Byte token spelled other than <0xHH> reads as its text, never an exception") {
    SpmVocab v;
    const TokenId odd = v.add("<0xZZ>", 0, 6);  // type 6: Byte
    const MemoryFile f(writer_for("llama", v));
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.token_to_text(odd) == "<0xZZ>");
}

TEST_CASE("WordPiece: lowercase, accents dropped, punctuation split, longest tokens, unknown words") {
    Vocab v;
    v.add("[PAD]", 0, 3);
    const TokenId unk = v.add("[UNK]", 0, 2);
    const TokenId cls = v.add("[CLS]", 0, 3);
    const TokenId sep = v.add("[SEP]", 0, 3);
    const TokenId play = v.add("\xE2\x96\x81play");
    const TokenId ing = v.add("ing");
    const TokenId bang = v.add("\xE2\x96\x81!");
    const TokenId cafe = v.add("\xE2\x96\x81" "cafe");
    gguf::Writer w = writer_for("bert", v);
    w.set("tokenizer.ggml.unknown_token_id", OwnedValue::u32(static_cast<uint32_t>(unk)));
    w.set("tokenizer.ggml.cls_token_id", OwnedValue::u32(static_cast<uint32_t>(cls)));
    w.set("tokenizer.ggml.seperator_token_id", OwnedValue::u32(static_cast<uint32_t>(sep)));
    const MemoryFile f(w);
    const Tokenizer tok = Tokenizer::from_gguf(f.file);
    CHECK(tok.kind() == infer::TokenizerKind::WordPiece);
    CHECK(tok.encode("Playing!", false) == std::vector<TokenId>{play, ing, bang});
    CHECK(tok.encode("CAF\xC3\x89  playing", true) == std::vector<TokenId>{cls, cafe, play, ing, sep});
    CHECK(tok.encode("plays", false) == std::vector<TokenId>{unk});
    CHECK(tok.decode(tok.encode("playing !", false)) == "playing !");
}

std::string error_of(const gguf::Writer& w) {
    const MemoryFile f(w);
    try {
        (void)Tokenizer::from_gguf(f.file);
    } catch (const gguf::Error& e) {
        return e.what();
    }
    return "";
}

TEST_CASE("bad or missing metadata: an error naming the file and the key") {
    const SpmVocab spm;
    const BpeVocab bpe;
    {
        gguf::Writer w = writer_for("llama", spm);
        w.remove("tokenizer.ggml.tokens");
        const std::string e = error_of(w);
        CHECK(e.find("test.gguf") != std::string::npos);
        CHECK(e.find("tokenizer.ggml.tokens: missing") != std::string::npos);
    }
    {
        gguf::Writer w = writer_for("llama", spm);
        w.remove("tokenizer.ggml.model");
        CHECK(error_of(w).find("tokenizer.ggml.model: missing") != std::string::npos);
    }
    {
        const std::string e = error_of(writer_for("rwkv", spm));
        CHECK(e.find("tokenizer.ggml.model") != std::string::npos);
        CHECK(e.find("'rwkv' is not supported") != std::string::npos);
    }
    {
        const std::string e = error_of(bpe_writer(bpe, "no-such-pre"));
        CHECK(e.find("tokenizer.ggml.pre") != std::string::npos);
        CHECK(e.find("'no-such-pre' is not supported") != std::string::npos);
        CHECK(e.find("qwen2") != std::string::npos);  // the list of supported ones
    }
    {
        gguf::Writer w = bpe_writer(bpe, "gpt-2");
        w.remove("tokenizer.ggml.merges");
        CHECK(error_of(w).find("tokenizer.ggml.merges: missing") != std::string::npos);
    }
    {
        gguf::Writer w = bpe_writer(bpe, "gpt-2");
        w.set("tokenizer.ggml.merges", OwnedValue::strings({"nospace"}));
        CHECK(error_of(w).find("tokenizer.ggml.merges: merge 0") != std::string::npos);
    }
    {
        gguf::Writer w = writer_for("llama", spm);
        w.set("tokenizer.ggml.scores", OwnedValue::numbers(ValueType::F32, std::vector<float>{1, 2}, OwnedValue::f32));
        CHECK(error_of(w).find("tokenizer.ggml.scores: 2 elements for") != std::string::npos);
    }
    {
        gguf::Writer w = writer_for("llama", spm);
        w.set("tokenizer.ggml.token_type", OwnedValue::strings(spm.tokens));
        CHECK(error_of(w).find("tokenizer.ggml.token_type: expected an array of i32") != std::string::npos);
    }
    {
        gguf::Writer w = writer_for("llama", spm);
        w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(100000));
        CHECK(error_of(w).find("tokenizer.ggml.bos_token_id: token id 100000 outside the vocabulary") != std::string::npos);
    }
}

TEST_CASE("every pre-tokenizer's patterns compile") {
    BpeVocab v;
    for (const std::string_view pre : Tokenizer::supported_pre_tokenizers()) {
        CAPTURE(pre);
        const MemoryFile f(bpe_writer(v, std::string(pre)));
        const Tokenizer tok = Tokenizer::from_gguf(f.file);
        const std::string text = "Hello, world! 12345 it's\n\n  \xE4\xBD\xA0\xE5\xA5\xBD  done";
        CHECK(tok.decode(tok.encode(text, false)) == text);
    }
}

}  // namespace
