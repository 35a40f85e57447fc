// Reading the vocabulary from the metadata, special tokens, and decoding.
#include "infer/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "unicode.h"
#include "vocab.h"

namespace infer {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

class Reader {
public:
    explicit Reader(const gguf::File& f) : file_(f) {}

    [[noreturn]] void fail(const gguf::KeyValue* kv, std::string_view key, const std::string& what) const {
        throw gguf::Error(file_.path(), kv ? std::optional<uint64_t>(kv->file_offset) : std::nullopt,
                          std::string(key) + ": " + what);
    }
    const gguf::KeyValue* find(std::string_view key) const { return file_.find(key); }
    const gguf::KeyValue& require(std::string_view key) const {
        const gguf::KeyValue* kv = find(key);
        if (!kv) fail(nullptr, key, "missing (the vocabulary needs it)");
        return *kv;
    }
    std::string string(std::string_view key) const {
        const gguf::KeyValue& kv = require(key);
        if (kv.value.type() != gguf::ValueType::String) fail(&kv, key, "expected a string");
        return std::string(kv.value.str());
    }
    std::optional<TokenId> token_id(std::string_view key, size_t n_tokens) const {
        const gguf::KeyValue* kv = find(key);
        if (!kv) return std::nullopt;
        if (!kv->value.is_integer()) fail(kv, key, "expected an integer token id");
        const int64_t id = kv->value.type() == gguf::ValueType::U64 ? static_cast<int64_t>(std::min<uint64_t>(kv->value.as_uint(), INT64_MAX))
                                                                      : kv->value.as_int();
        if (id == -1) return std::nullopt;  // llama.cpp's "no such token"
        if (id < 0 || static_cast<uint64_t>(id) >= n_tokens)
            fail(kv, key, "token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(n_tokens));
        return static_cast<TokenId>(id);
    }
    std::optional<bool> boolean(std::string_view key) const {
        const gguf::KeyValue* kv = find(key);
        if (!kv) return std::nullopt;
        if (kv->value.type() != gguf::ValueType::Bool) fail(kv, key, "expected a bool");
        return kv->value.boolean();
    }
    // An array of `elem` with `count` elements (count 0: any length).
    gguf::ArrayView array(std::string_view key, gguf::ValueType elem, uint64_t count) const {
        const gguf::KeyValue& kv = require(key);
        if (kv.value.type() != gguf::ValueType::Array || kv.value.array().element_type() != elem)
            fail(&kv, key, std::string("expected an array of ") + std::string(gguf::value_type_name(elem)));
        const gguf::ArrayView a = kv.value.array();
        if (count && a.size() != count)
            fail(&kv, key, std::to_string(a.size()) + " elements for " + std::to_string(count) + " tokens");
        return a;
    }
    const gguf::KeyValue* kv(std::string_view key) const { return find(key); }

private:
    const gguf::File& file_;
};

void read_tokens(const Reader& r, Tokenizer::Impl& v) {
    const gguf::ArrayView tokens = r.array("tokenizer.ggml.tokens", gguf::ValueType::String, 0);
    if (tokens.empty()) r.fail(r.kv("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", "no tokens");
    if (tokens.size() > INT32_MAX) r.fail(r.kv("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", "too many tokens");
    const size_t n = tokens.size();
    v.arena.reserve(tokens.byte_size());
    v.offsets.reserve(n + 1);
    v.offsets.push_back(0);
    for (const gguf::Value t : tokens) {
        v.arena += t.str();
        v.max_token_bytes = std::max(v.max_token_bytes, t.str().size());
        if (v.arena.size() > UINT32_MAX) r.fail(r.kv("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", "token strings too long");
        v.offsets.push_back(static_cast<uint32_t>(v.arena.size()));
    }
    v.ids.reserve(n);
    for (TokenId id = 0; id < static_cast<TokenId>(n); ++id) v.ids[v.text(id)] = id;

    v.types.assign(n, TokenType::Normal);
    if (r.find("tokenizer.ggml.token_type")) {
        const gguf::ArrayView types = r.array("tokenizer.ggml.token_type", gguf::ValueType::I32, n);
        for (size_t i = 0; i < n; ++i) {
            const int32_t t = types.at(i).i32();
            if (t < 0 || t > 6) r.fail(r.kv("tokenizer.ggml.token_type"), "tokenizer.ggml.token_type", "token " + std::to_string(i) + " has type " + std::to_string(t));
            v.types[i] = static_cast<TokenType>(t);
        }
    }
    v.scores.assign(n, 0.0f);
    if (r.find("tokenizer.ggml.scores")) {
        const gguf::ArrayView scores = r.array("tokenizer.ggml.scores", gguf::ValueType::F32, n);
        for (size_t i = 0; i < n; ++i) v.scores[i] = scores.at(i).f32();
    }
}

void read_special_ids(const Reader& r, Tokenizer::Impl& v) {
    const size_t n = v.size();
    auto pick = [&](std::string_view key, std::optional<TokenId> fallback) -> std::optional<TokenId> {
        if (r.find(key)) return r.token_id(key, n);
        return fallback && static_cast<size_t>(*fallback) < n ? fallback : std::nullopt;
    };
    // llama.cpp's defaults when the keys are absent.
    switch (v.kind) {
    case TokenizerKind::SentencePiece:
        v.bos = pick("tokenizer.ggml.bos_token_id", 1);
        v.eos = pick("tokenizer.ggml.eos_token_id", 2);
        v.unk = pick("tokenizer.ggml.unknown_token_id", 0);
        v.add_bos = true;
        v.add_space_prefix = true;
        break;
    case TokenizerKind::BytePairEncoding:
        v.bos = pick("tokenizer.ggml.bos_token_id", 11);
        v.eos = pick("tokenizer.ggml.eos_token_id", 11);
        v.unk = pick("tokenizer.ggml.unknown_token_id", std::nullopt);
        break;
    case TokenizerKind::WordPiece:
        v.bos = pick("tokenizer.ggml.bos_token_id", 101);
        v.eos = pick("tokenizer.ggml.eos_token_id", std::nullopt);
        v.unk = pick("tokenizer.ggml.unknown_token_id", 100);
        v.add_bos = true;
        break;
    }
    v.pad = pick("tokenizer.ggml.padding_token_id", v.kind == TokenizerKind::WordPiece ? std::optional<TokenId>(0) : std::nullopt);
    v.sep = pick("tokenizer.ggml.seperator_token_id", v.kind == TokenizerKind::WordPiece ? std::optional<TokenId>(102) : std::nullopt);
    v.cls = pick("tokenizer.ggml.cls_token_id", v.bos);
}

// The file's flags, over the defaults of its kind and of its pre-tokenizer (so read last).
void read_flags(const Reader& r, Tokenizer::Impl& v) {
    if (auto b = r.boolean("tokenizer.ggml.add_bos_token")) v.add_bos = *b;
    if (auto b = r.boolean("tokenizer.ggml.add_eos_token")) v.add_eos = *b;
    if (auto b = r.boolean("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;
}

// The byte a piece "<0xHH>" stands for, or nothing (a Byte token of another spelling reads
// as its text).
std::optional<uint8_t> byte_of(std::string_view s) {
    if (s.size() != 6 || !s.starts_with("<0x") || s[5] != '>') return std::nullopt;
    auto digit = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        return -1;
    };
    const int hi = digit(s[3]), lo = digit(s[4]);
    if (hi < 0 || lo < 0) return std::nullopt;
    return static_cast<uint8_t>(hi * 16 + lo);
}

void find_specials(Tokenizer::Impl& v) {
    for (TokenId id = 0; id < static_cast<TokenId>(v.size()); ++id) {
        const TokenType t = v.types[id];
        if ((t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown) && !v.text(id).empty())
            v.specials.push_back(id);
    }
    std::stable_sort(v.specials.begin(), v.specials.end(), [&](TokenId a, TokenId b) { return v.text(a).size() > v.text(b).size(); });
}

void read_sentencepiece(Tokenizer::Impl& v) {
    char name[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto id = v.find(name);
        v.byte_tokens[b] = id ? *id : -1;
    }
}

void read_bpe(const Reader& r, Tokenizer::Impl& v) {
    v.pre = r.find("tokenizer.ggml.pre") ? r.string("tokenizer.ggml.pre") : "default";
    if (!set_pre_tokenizer(v, v.pre)) {
        std::string known;
        for (auto name : pre_tokenizer_names()) known += (known.empty() ? "" : ", ") + std::string(name);
        r.fail(r.kv("tokenizer.ggml.pre"), "tokenizer.ggml.pre", "pre-tokenizer '" + v.pre + "' is not supported (supported: " + known + ")");
    }
    const gguf::ArrayView merges = r.array("tokenizer.ggml.merges", gguf::ValueType::String, 0);
    uint32_t rank = 0;
    for (const gguf::Value m : merges) {
        try {
            add_merge(v, m.str(), rank++);
        } catch (const std::invalid_argument& e) {
            r.fail(r.kv("tokenizer.ggml.merges"), "tokenizer.ggml.merges", "merge " + std::to_string(rank - 1) + ": " + e.what());
        }
    }
    finish_bpe(v);
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_gguf(const gguf::Model& model) { return from_gguf(model.first()); }

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
    const Reader r(file);
    auto v = std::make_unique<Impl>();
    v->file = file.path();
    v->model = r.string("tokenizer.ggml.model");
    if (v->model == "llama") v->kind = TokenizerKind::SentencePiece;
    else if (v->model == "gpt2") v->kind = TokenizerKind::BytePairEncoding;
    else if (v->model == "bert") v->kind = TokenizerKind::WordPiece;
    else r.fail(r.kv("tokenizer.ggml.model"), "tokenizer.ggml.model", "tokenizer model '" + v->model + "' is not supported (supported: llama, gpt2, bert)");
    read_tokens(r, *v);
    read_special_ids(r, *v);
    find_specials(*v);
    switch (v->kind) {
    case TokenizerKind::SentencePiece:
        v->pre = r.find("tokenizer.ggml.pre") ? r.string("tokenizer.ggml.pre") : "default";
        read_sentencepiece(*v);
        break;
    case TokenizerKind::BytePairEncoding: read_bpe(r, *v); break;
    case TokenizerKind::WordPiece:
        v->pre = r.find("tokenizer.ggml.pre") ? r.string("tokenizer.ggml.pre") : "default";
        break;
    }
    read_flags(r, *v);
    return Tokenizer(std::move(v));
}

std::vector<std::string_view> Tokenizer::supported_pre_tokenizers() { return pre_tokenizer_names(); }

TokenizerKind Tokenizer::kind() const { return impl_->kind; }
std::string_view Tokenizer::model_name() const { return impl_->model; }
std::string_view Tokenizer::pre_name() const { return impl_->pre; }
size_t Tokenizer::size() const { return impl_->size(); }

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<TokenId> out;
    encode(text, add_special, parse_special, out);
    return out;
}

void Tokenizer::encode(std::string_view text, bool add_special, bool parse_special, std::vector<TokenId>& out) const {
    const Impl& v = *impl_;
    // Cut the text at special tokens: longest first, every occurrence, left to right.
    struct Fragment {
        TokenId token;  // -1: text
        size_t offset, length;
    };
    std::vector<Fragment> fragments, next;
    if (!text.empty()) fragments.push_back({-1, 0, text.size()});
    for (const TokenId id : v.specials) {
        const TokenType t = v.types[id];
        if (!parse_special && t != TokenType::UserDefined) continue;
        const std::string_view s = v.text(id);
        next.clear();
        bool found = false;
        for (const Fragment& f : fragments) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            size_t at = f.offset;
            const size_t end = f.offset + f.length;
            while (at < end) {
                const size_t hit = text.substr(0, end).find(s, at);
                if (hit == std::string_view::npos) break;
                found = true;
                if (hit > at) next.push_back({-1, at, hit - at});
                next.push_back({id, hit, s.size()});
                at = hit + s.size();
            }
            if (at < end) next.push_back({-1, at, end - at});
        }
        if (found) fragments.swap(next);
    }

    if (add_special) {
        if (v.kind == TokenizerKind::WordPiece) {
            if (v.cls) out.push_back(*v.cls);
        } else if (v.add_bos && v.bos) {
            out.push_back(*v.bos);
        }
    }
    bool first = true;
    WordCache words;
    for (const Fragment& f : fragments) {
        if (f.token >= 0) {
            out.push_back(f.token);
            first = true;
            continue;
        }
        const std::string_view part = text.substr(f.offset, f.length);
        switch (v.kind) {
        case TokenizerKind::SentencePiece: encode_spm(v, part, first, out); break;
        case TokenizerKind::BytePairEncoding: encode_bpe(v, part, words, out); break;
        case TokenizerKind::WordPiece: encode_wordpiece(v, part, out); break;
        }
        first = false;
    }
    if (add_special) {
        if (v.kind == TokenizerKind::WordPiece) {
            if (v.sep) out.push_back(*v.sep);
        } else if (v.add_eos && v.eos) {
            out.push_back(*v.eos);
        }
    }
}

std::string_view Tokenizer::piece(TokenId id) const {
    if (id < 0 || static_cast<size_t>(id) >= impl_->size())
        throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(impl_->size()));
    return impl_->text(id);
}

std::string Tokenizer::token_to_text(TokenId id, bool special) const {
    const std::string_view s = piece(id);
    const TokenType t = impl_->types[id];
    if (t == TokenType::Control || t == TokenType::Unknown) return special ? std::string(s) : std::string();
    if (t == TokenType::UserDefined) return std::string(s);
    std::string out;
    switch (impl_->kind) {
    case TokenizerKind::SentencePiece:
        if (const auto byte = byte_of(s); t == TokenType::Byte && byte) return std::string(1, static_cast<char>(*byte));
        for (size_t i = 0; i < s.size();) {
            if (s.substr(i, kSpace.size()) == kSpace) {
                out += ' ';
                i += kSpace.size();
            } else {
                out += s[i++];
            }
        }
        return out;
    case TokenizerKind::BytePairEncoding:
        for (size_t i = 0; i < s.size();) {
            const size_t at = i;
            const uint32_t cp = unicode::decode_one(s, i);
            if (auto b = char_byte(cp)) out += static_cast<char>(*b);
            else out.append(s.substr(at, i - at));  // not of the byte alphabet: as it is
        }
        return out;
    case TokenizerKind::WordPiece:
        if (s.starts_with(kSpace)) {
            out = ' ';
            out += s.substr(kSpace.size());
            return out;
        }
        return std::string(s);
    }
    return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool special) const {
    std::string out;
    for (const TokenId id : ids) out += token_to_text(id, special);
    const bool strip = (impl_->kind == TokenizerKind::SentencePiece && impl_->add_space_prefix) || impl_->kind == TokenizerKind::WordPiece;
    if (strip && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
}

TokenType Tokenizer::type(TokenId id) const { return (void)piece(id), impl_->types[id]; }
float Tokenizer::score(TokenId id) const { return (void)piece(id), impl_->scores[id]; }
std::optional<TokenId> Tokenizer::token_id(std::string_view s) const { return impl_->find(s); }
std::optional<TokenId> Tokenizer::bos() const { return impl_->kind == TokenizerKind::WordPiece ? impl_->cls : impl_->bos; }
std::optional<TokenId> Tokenizer::eos() const { return impl_->kind == TokenizerKind::WordPiece ? impl_->sep : impl_->eos; }
std::optional<TokenId> Tokenizer::unknown() const { return impl_->unk; }
std::optional<TokenId> Tokenizer::padding() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }

}  // namespace infer
