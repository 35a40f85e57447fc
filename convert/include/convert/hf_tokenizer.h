// A Hugging Face folder's tokenizer as GGUF metadata: the tokenizer.* keys llama.cpp's
// converter (convert_hf_to_gguf.py with gguf-py's SpecialVocab) writes for it, with the
// same values, so that infer::Tokenizer (and llama.cpp) tokenize as the original does.
//
// Which tokenizer: `tokenizer.model` (SentencePiece) when the folder has one, as llama.cpp
// prefers it for the llama family; else `tokenizer.json` with a byte-level BPE model.
//
// Byte-level BPE (tokenizer.json) → tokenizer.ggml.model "gpt2":
//   tokens      every id below the vocabulary size: model.vocab, then added_tokens (an added
//               token's id wins); an id neither names is "[PAD<id>]", type unused
//   token_type  1 normal; an added token is 3 control when `special` or when it looks special
//               ("<|...|>", "<｜...｜>", "<unused...>", "<pad>", "<mask>", "<2mass>", "[@BOS@]"),
//               else 4 user-defined (its "▁" written as spaces); 5 unused for padding ids
//   merges      model.merges, either "a b" strings or [a, b] pairs (a space inside a pair's
//               part is written as U+0120, as GPT-2's byte alphabet spells it)
//   pre         named from the pre_tokenizer definition (see below)
// SentencePiece (tokenizer.model) → tokenizer.ggml.model "llama", pre "default":
//   tokens, scores, token_type from the model's pieces (types: unknown 2, control 3,
//   unused 5, byte 6, everything else 1 — user-defined pieces too, as llama.cpp does); ids
//   past the pieces up to the vocabulary size are "[PAD<id>]", score -10000, unused; then
//   added_tokens.json (user-defined, score -1000) and tokenizer_config.json's
//   added_tokens_decoder (control or user-defined as above, score -1000) replace theirs.
// Both, as SpecialVocab reads them:
//   bos/eos/unknown/seperator/padding/mask_token_id (u32; eot/eom as below) from tokenizer_config.json's
//     <kind>_token (a string or {"content"}), looked up among tokenizer.json's added_tokens,
//     then config.json's <kind>_token_id; the first found counts; ids outside the
//     vocabulary are skipped
//     (a cls_token stands in for a missing bos_token, a sep_token for a missing eos_token)
//   add_bos_token/add_eos_token/add_sep_token  (bool) from tokenizer.json's post_processor
//     (RobertaProcessing: all three; TemplateProcessing: BOS first or EOS last in the single
//     template, a separator between A and B in the pair template; a last special token other
//     than the EOS becomes the EOS and the old EOS the eot_token) and tokenizer_config.json's
//     add_<kind>_token
//   chat_template  tokenizer_config.json's chat_template, else chat_template.jinja or
//     chat_template.json; a list of {name, template} gives tokenizer.chat_template (the
//     "default") and tokenizer.chat_template.<name> plus tokenizer.chat_templates
// The vocabulary size is the caller's (config.json's vocab_size as the weights see it) when
// given, else config.json's vocab_size in the folder, else the tokenizer's own count.
//
// The pre-tokenizer: llama.cpp names it by hashing the token ids of a test string; this
// code names it from the tokenizer.json pre_tokenizer's own definition instead. The
// definition is flattened into the list of splitting steps it applies in order (a Split by a
// Regex with behaviour Isolated; Digits with individual_digits; ByteLevel with use_regex,
// which is GPT-2's expression) and that list, with model.ignore_merges, is looked up in a
// table of known tokenizers (gpt-2, llama-bpe, qwen2, starcoder, …). A definition the table
// does not hold is an error that prints the steps found, so adding a tokenizer is adding a
// row.
//
// Not done (llama.cpp does these through the transformers library): re-normalizing added
// tokens whose "normalized" is false by encoding and decoding them (an identity for the
// tokenizers above); vocab.json + merges.txt folders without tokenizer.json; the pair
// template's add_sep_token; tokenizer.ggml.normalizer_lowercase.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gguf/value.h"

namespace convert {

struct TokenizerOptions {
    // The vocabulary size to write (the embedding's rows); unset: config.json's vocab_size,
    // else the tokenizer's own count.
    std::optional<uint64_t> vocab_size;
};

struct TokenizerKeys {
    std::string model;       // tokenizer.ggml.model: "gpt2" or "llama"
    std::string pre;         // tokenizer.ggml.pre
    uint64_t vocab_size = 0; // tokens written
    // The keys in the order llama.cpp writes them, ready for gguf::Writer::set.
    std::vector<std::pair<std::string, gguf::OwnedValue>> keys;

    const gguf::OwnedValue* find(std::string_view key) const;
};

// Reads the folder's tokenizer files. Throws std::runtime_error naming the file and what
// is wrong: no tokenizer file, unreadable or malformed JSON or protobuf, a tokenizer model
// other than byte-level BPE or SentencePiece, an unknown pre-tokenizer, a token id out of
// range.
TokenizerKeys tokenizer_keys(const std::filesystem::path& folder, const TokenizerOptions& options = {});

// One piece of a SentencePiece model (sentencepiece_model.proto's SentencePiece).
struct SentencePiece {
    enum class Type : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
    std::string piece;
    float score = 0.0f;
    Type type = Type::Normal;
};
// The pieces of a serialized ModelProto (field 1, repeated; every other field skipped).
// Throws std::runtime_error naming `name` and the byte offset of a malformed field.
std::vector<SentencePiece> read_sentencepiece_model(std::string_view bytes, const std::string& name);

}  // namespace convert
