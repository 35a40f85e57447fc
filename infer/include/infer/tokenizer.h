// Tokenizers read from a GGUF file's metadata, giving the token ids llama.cpp gives.
//
// The vocabulary is the tokenizer.ggml.* keys:
//   model           "llama" (SentencePiece), "gpt2" (byte-level BPE) or "bert" (WordPiece)
//   pre             the pre-tokenizer of a "gpt2" vocabulary ("gpt-2", "llama-bpe", "qwen2", ...)
//   tokens          array of strings: token id i is element i
//   scores          array of f32 (SentencePiece: the merge priority, higher merges first)
//   token_type      array of i32: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
//   merges          array of strings "LEFT RIGHT" (BPE: earlier merges first)
//   bos_token_id, eos_token_id, unknown_token_id, padding_token_id, seperator_token_id (sic),
//   cls_token_id    u32
//   add_bos_token, add_eos_token, add_space_prefix   bool
//
// encode() first cuts the text at special tokens: user-defined tokens always, control
// tokens only with parse_special (longest tokens first, each occurrence matched whole);
// the text between them goes through the vocabulary's own algorithm:
//   SentencePiece: spaces become U+2581 "▁", one is put in front of the text (and after each
//     special token) when add_space_prefix, then neighbouring pieces merge, highest-scoring
//     token first; a piece no token covers becomes its bytes' <0xXX> tokens.
//   BPE: the pre-tokenizer's regular expressions cut the text into words; each word's bytes
//     are written as GPT-2's printable byte alphabet and merged, lowest merge rank first.
//   WordPiece: lowercased, accents dropped (first code point of the canonical
//     decomposition), cut at white space and punctuation; each word is covered greedily by
//     the longest tokens ("▁" starts a word), or is the unknown token.
//
// A Tokenizer owns copies of what it needs: it outlives the File it was read from.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gguf {
class File;
class Model;
}  // namespace gguf

namespace infer {

using TokenId = int32_t;

// tokenizer.ggml.token_type's values (llama.cpp's llama_token_type).
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

enum class TokenizerKind { SentencePiece, BytePairEncoding, WordPiece };

class Tokenizer {
public:
    // Reads the tokenizer.ggml.* keys. Throws gguf::Error naming the file and the key for a
    // missing or malformed key, or a tokenizer model or pre-tokenizer this code does not know.
    static Tokenizer from_gguf(const gguf::File& file);
    static Tokenizer from_gguf(const gguf::Model& model);  // the first part's metadata
    // The pre-tokenizers of "gpt2" vocabularies this code implements (tokenizer.ggml.pre).
    static std::vector<std::string_view> supported_pre_tokenizers();

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

    TokenizerKind kind() const;
    std::string_view model_name() const;  // tokenizer.ggml.model
    std::string_view pre_name() const;    // tokenizer.ggml.pre ("default" when absent)
    size_t size() const;                  // tokens in the vocabulary

    // Token ids of `text` (UTF-8; invalid bytes are read as U+FFFD). add_special: BOS first
    // and EOS last where the vocabulary asks for them (WordPiece: CLS and SEP).
    // parse_special: control tokens written in the text become those tokens.
    std::vector<TokenId> encode(std::string_view text, bool add_special = true, bool parse_special = false) const;
    // Appends to `out`.
    void encode(std::string_view text, bool add_special, bool parse_special, std::vector<TokenId>& out) const;

    // The token's string as the vocabulary stores it ("▁the", "Ġthe", "<0x0A>").
    // Throws std::out_of_range for an id outside the vocabulary.
    std::string_view piece(TokenId id) const;
    // The bytes the token stands for: spaces for "▁", a byte for "<0xXX>", GPT-2's byte
    // alphabet decoded; a control token's text only when `special`.
    std::string token_to_text(TokenId id, bool special = false) const;
    // The text of `ids`: their token_to_text concatenated; SentencePiece and WordPiece drop
    // the space their encoding put at the start.
    std::string decode(std::span<const TokenId> ids, bool special = false) const;

    TokenType type(TokenId id) const;
    float score(TokenId id) const;
    std::optional<TokenId> token_id(std::string_view piece) const;  // the id whose string is `piece`

    std::optional<TokenId> bos() const;
    std::optional<TokenId> eos() const;
    std::optional<TokenId> unknown() const;
    std::optional<TokenId> padding() const;
    bool add_bos() const;
    bool add_eos() const;
    bool add_space_prefix() const;

    struct Impl;

private:
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace infer
