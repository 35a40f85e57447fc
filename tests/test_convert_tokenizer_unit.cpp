// Tokenizer conversion on small hand-made Hugging Face folders (no ../shared needed): the
// SentencePiece protobuf reader, llama.cpp's token-type and special-token rules, the
// pre-tokenizer table, and the errors.
#include <doctest/doctest.h>

#include <fstream>

#include "convert/hf_tokenizer.h"
#include "convert_tokenizer_support.h"
#include "infer/tokenizer.h"
#include "support.h"

namespace {

using Type = convert::SentencePiece::Type;

void write_text(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

std::string keys_of(const convert::TokenizerKeys& k) {
    std::string s;
    for (const auto& [key, v] : k.keys) s += key + " ";
    return s;
}

std::optional<uint64_t> scalar(const convert::TokenizerKeys& keys, std::string_view key) {
    const auto* v = keys.find(key);
    return v ? std::optional<uint64_t>(v->bits()) : std::nullopt;
}

std::string error_of(const std::filesystem::path& folder) {
    try {
        convert::tokenizer_keys(folder);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

// A tiny byte-level BPE tokenizer.json: vocab a b c ab "Ġ" "Ġa", merges given as text.
std::string bpe_json(const std::string& pre_tokenizer, const std::string& merges, const std::string& added = "[]", const std::string& extra_model = "",
                     const std::string& post = "null") {
    return R"({"added_tokens":)" + added + R"(,"pre_tokenizer":)" + pre_tokenizer + R"(,"post_processor":)" + post +
           R"(,"decoder":{"type":"ByteLevel"},"model":{"type":"BPE")" + extra_model +
           R"(,"vocab":{"a":0,"b":1,"c":2,"ab":3,"Ġ":4,"Ġa":5},"merges":)" + merges + "}}";
}
const std::string kGpt2Pre = R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";

std::string split_pre(const std::string& regex_json) {
    return R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":)" + regex_json +
           R"(},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]})";
}
// The expressions as tokenizer.json spells them (JSON-escaped).
const std::string kLlama3Json =
    R"("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")";
const std::string kQwen2Json =
    R"("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")";

}  // namespace

TEST_CASE("a hand-written tokenizer.model converts to llama's keys with llama.cpp's types, scores, padding and added tokens") {
    const test::TempDir dir;
    const std::vector<convert::SentencePiece> pieces = {
        {"<unk>", 0, Type::Unknown}, {"<s>", 0, Type::Control}, {"</s>", 0, Type::Control}, {"<0x41>", 0, Type::Byte},
        {"\xE2\x96\x81", -1.5f, Type::Normal},  {"a", -2, Type::Normal},  {"b", -3, Type::Normal}, {"\xE2\x96\x81" "a", -0.5f, Type::Normal},
        {"ab", -4, Type::Normal},               {"\xE2\x96\x81" "ab", -0.25f, Type::Normal},      {"<user>", 0, Type::UserDefined},
        {"<free>", 0, Type::Unused},
    };
    write_text(dir / "tokenizer.model", test::sentencepiece_model(pieces));
    // Two ids past the pieces: 12 added in tokenizer_config (looks special: control),
    // 13 a user-defined token with SentencePiece's space; config.json asks for 15 tokens.
    write_text(dir / "tokenizer_config.json",
               R"({"add_bos_token":true,"add_eos_token":false,"bos_token":"<s>","eos_token":"</s>",)"
               R"("added_tokens_decoder":{"12":{"content":"<|im_end|>","special":false},"13":{"content":"my\u2581word","special":false}},)"
               R"("chat_template":"{{ messages }}"})");
    write_text(dir / "config.json", R"({"bos_token_id":1,"eos_token_id":2,"vocab_size":15})");

    const auto keys = convert::tokenizer_keys(dir.path());
    CHECK(keys.model == "llama");
    CHECK(keys.pre == "default");
    CHECK(keys.vocab_size == 15);
    CHECK(keys_of(keys) ==
          "tokenizer.ggml.model tokenizer.ggml.pre tokenizer.ggml.tokens tokenizer.ggml.scores tokenizer.ggml.token_type "
          "tokenizer.ggml.bos_token_id tokenizer.ggml.eos_token_id tokenizer.ggml.add_bos_token tokenizer.ggml.add_eos_token "
          "tokenizer.chat_template ");
    const auto* tokens = keys.find("tokenizer.ggml.tokens");
    const auto* scores = keys.find("tokenizer.ggml.scores");
    const auto* types = keys.find("tokenizer.ggml.token_type");
    REQUIRE(tokens->size() == 15);
    const std::vector<std::string> want_tokens = {"<unk>", "<s>", "</s>", "<0x41>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab",
                                                  "\xE2\x96\x81" "ab", "<user>", "<free>", "<|im_end|>", "my word", "[PAD14]"};
    const std::vector<int32_t> want_types = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1 /* user-defined piece: normal, as llama.cpp */, 5, 3, 4, 5};
    const std::vector<float> want_scores = {0, 0, 0, 0, -1.5f, -2, -3, -0.5f, -4, -0.25f, 0, 0, -1000, -1000, -10000};
    for (uint64_t i = 0; i < 15; ++i) {
        CAPTURE(i);
        CHECK(tokens->string_at(i) == want_tokens[i]);
        CHECK(static_cast<int32_t>(types->at(i).bits()) == want_types[i]);
        float s;
        const auto bits = static_cast<uint32_t>(scores->at(i).bits());
        std::memcpy(&s, &bits, 4);
        CHECK(s == want_scores[i]);
    }
    // Without tokenizer.json the token strings of tokenizer_config cannot be looked up:
    // the ids come from config.json, as in llama.cpp.
    CHECK(scalar(keys, "tokenizer.ggml.bos_token_id") == 1u);
    CHECK(scalar(keys, "tokenizer.ggml.eos_token_id") == 2u);
    CHECK(scalar(keys, "tokenizer.ggml.add_bos_token") == 1u);
    CHECK(scalar(keys, "tokenizer.ggml.add_eos_token") == 0u);
    CHECK(keys.find("tokenizer.chat_template")->str() == "{{ messages }}");

    // The converted vocabulary tokenizes: " ab a" merges highest score first.
    const auto gguf_file = test::as_gguf(keys);
    const auto tok = infer::Tokenizer::from_gguf(gguf_file.file);
    CHECK(tok.encode("ab a", true, false) == std::vector<infer::TokenId>{1, 9, 7});
    CHECK(tok.encode("ab<|im_end|>", false, true) == std::vector<infer::TokenId>{9, 12});
}

TEST_CASE("the SentencePiece reader refuses truncated or malformed protobuf, naming the file and offset") {
    const std::string good = test::sentencepiece_model({{"<unk>", 0, Type::Unknown}, {"a", -1, Type::Normal}});
    CHECK(convert::read_sentencepiece_model(good, "m").size() == 2);
    CHECK_THROWS_WITH_AS(convert::read_sentencepiece_model(good.substr(0, 5), "tok.model"), doctest::Contains("tok.model: offset"), std::runtime_error);
    test::Proto bad_type;
    test::Proto piece;
    piece.string_field(1, "x");
    piece.varint_field(3, 9);
    bad_type.string_field(1, piece.bytes);
    CHECK_THROWS_WITH_AS(convert::read_sentencepiece_model(bad_type.bytes, "tok.model"), doctest::Contains("piece type 9"), std::runtime_error);
    test::Proto group;
    group.key(7, 3);
    CHECK_THROWS_WITH_AS(convert::read_sentencepiece_model(group.bytes, "tok.model"), doctest::Contains("wire type 3"), std::runtime_error);
}

TEST_CASE("byte-level BPE: merges as strings and as pairs give the same keys; a space inside a pair is written as U+0120") {
    const test::TempDir a, b;
    write_text(a / "tokenizer.json", bpe_json(kGpt2Pre, R"(["a b","Ġ a"])"));
    write_text(b / "tokenizer.json", bpe_json(kGpt2Pre, R"([["a","b"],[" ","a"]])"));
    const auto ka = convert::tokenizer_keys(a.path()), kb = convert::tokenizer_keys(b.path());
    const auto* ma = ka.find("tokenizer.ggml.merges");
    const auto* mb = kb.find("tokenizer.ggml.merges");
    REQUIRE(ma);
    REQUIRE(mb);
    REQUIRE(ma->size() == 2);
    REQUIRE(mb->size() == 2);
    for (uint64_t i = 0; i < 2; ++i) CHECK(ma->string_at(i) == mb->string_at(i));
    CHECK(mb->string_at(1) == "\xC4\xA0 a");
    CHECK(ka.pre == "gpt-2");
    CHECK(ka.vocab_size == 6);
    const auto file = test::as_gguf(kb);
    const auto tok = infer::Tokenizer::from_gguf(file.file);
    CHECK(tok.encode("ab a", false, false) == std::vector<infer::TokenId>{3, 5});
}

TEST_CASE("byte-level BPE: added tokens are control when special or special-looking, else user-defined; missing ids are unused padding") {
    const test::TempDir dir;
    write_text(dir / "tokenizer.json",
               bpe_json(kGpt2Pre, R"(["a b"])",
                        R"([{"id":6,"content":"<eos>","special":true},{"id":7,"content":"<|tool|>","special":false},)"
                        R"({"id":8,"content":"hello\u2581world","special":false},{"id":10,"content":"<｜fim｜>","special":false}])"));
    write_text(dir / "config.json", R"({"vocab_size": 12})");
    const auto keys = convert::tokenizer_keys(dir.path());
    const auto* tokens = keys.find("tokenizer.ggml.tokens");
    const auto* types = keys.find("tokenizer.ggml.token_type");
    REQUIRE(tokens->size() == 12);
    const std::vector<std::string> want = {"a", "b", "c", "ab", "Ġ", "Ġa", "<eos>", "<|tool|>", "hello world", "[PAD9]", "<｜fim｜>", "[PAD11]"};
    const std::vector<int32_t> want_types = {1, 1, 1, 1, 1, 1, 3, 3, 4, 5, 3, 5};
    for (uint64_t i = 0; i < 12; ++i) {
        CAPTURE(i);
        CHECK(tokens->string_at(i) == want[i]);
        CHECK(static_cast<int32_t>(types->at(i).bits()) == want_types[i]);
    }
    // An id past the vocabulary size is an error naming the token.
    write_text(dir / "config.json", R"({"vocab_size": 8})");
    CHECK(error_of(dir.path()).find("token '<｜fim｜>' has id 10, outside the vocabulary size 8") != std::string::npos);
}

TEST_CASE("the pre-tokenizer is named from its definition: gpt-2, llama-bpe, smaug-bpe, qwen2, starcoder; others are refused with their steps") {
    struct Case {
        std::string pre, extra_model, want;
    };
    const std::vector<Case> cases = {
        {kGpt2Pre, "", "gpt-2"},
        {split_pre(kLlama3Json), R"(,"ignore_merges":true)", "llama-bpe"},
        {split_pre(kLlama3Json), "", "smaug-bpe"},
        {split_pre(kQwen2Json), "", "qwen2"},
        {R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]})", "",
         "starcoder"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.want);
        const test::TempDir dir;
        write_text(dir / "tokenizer.json", bpe_json(c.pre, "[]", "[]", c.extra_model));
        CHECK(convert::tokenizer_keys(dir.path()).pre == c.want);
    }
    const test::TempDir dir;
    write_text(dir / "tokenizer.json", bpe_json(split_pre(R"("\\p{N}+")"), "[]"));
    const std::string e = error_of(dir.path());
    CHECK(e.find("tokenizer.json: pre_tokenizer not recognised") != std::string::npos);
    CHECK(e.find("Split \\p{N}+") != std::string::npos);
    write_text(dir / "tokenizer.json", bpe_json(R"({"type":"Whitespace"})", "[]"));
    CHECK(error_of(dir.path()).find("Whitespace") != std::string::npos);
}

TEST_CASE("special tokens: tokenizer_config names looked up in added_tokens first, config.json after; post-processor templates set add_*_token") {
    const test::TempDir dir;
    // Llama 3's template: BOS before A; the pair repeats BOS before B, which is no separator.
    const std::string post = R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<bos>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],)"
                             R"("pair":[{"SpecialToken":{"id":"<bos>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},)"
                             R"({"SpecialToken":{"id":"<bos>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}]})";
    write_text(dir / "tokenizer.json",
               bpe_json(kGpt2Pre, "[]", R"([{"id":6,"content":"<bos>","special":true},{"id":7,"content":"<eos>","special":true}])", "", post));
    write_text(dir / "tokenizer_config.json",
               R"({"bos_token":{"content":"<bos>","lstrip":false},"eos_token":"<eos>","pad_token":"<nope>",)"
               R"("chat_template":[{"name":"default","template":"D"},{"name":"tool use","template":"T"}]})");
    write_text(dir / "config.json", R"({"bos_token_id":0,"pad_token_id":5,"eos_token_id":[7,6]})");
    const auto keys = convert::tokenizer_keys(dir.path());
    CHECK(keys_of(keys) ==
          "tokenizer.ggml.model tokenizer.ggml.pre tokenizer.ggml.tokens tokenizer.ggml.token_type tokenizer.ggml.bos_token_id "
          "tokenizer.ggml.eos_token_id tokenizer.ggml.padding_token_id tokenizer.ggml.add_bos_token tokenizer.ggml.add_sep_token "
          "tokenizer.chat_template.tool_use tokenizer.chat_templates tokenizer.chat_template ");
    CHECK(scalar(keys, "tokenizer.ggml.bos_token_id") == 6u);  // tokenizer_config's, before config.json's 0
    CHECK(scalar(keys, "tokenizer.ggml.eos_token_id") == 7u);
    CHECK(scalar(keys, "tokenizer.ggml.padding_token_id") == 5u);  // "<nope>" is no added token: config.json's
    // llama.cpp compares the template's first token with bos_token as written: an object
    // {"content": ...} equals no string, so the template does not set add_bos_token.
    CHECK(scalar(keys, "tokenizer.ggml.add_bos_token") == 0u);
    CHECK(scalar(keys, "tokenizer.ggml.add_sep_token") == 0u);
    CHECK(keys.find("tokenizer.chat_template")->str() == "D");
    CHECK(keys.find("tokenizer.chat_template.tool_use")->str() == "T");
}

TEST_CASE("a template ending in a special token other than the EOS makes it the EOS and the old EOS the EOT; RobertaProcessing adds all three") {
    const test::TempDir dir;
    const std::string post = R"({"type":"TemplateProcessing","single":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<eos>","type_id":0}}]})";
    write_text(dir / "tokenizer.json",
               bpe_json(kGpt2Pre, "[]", R"([{"id":6,"content":"<end>","special":true},{"id":7,"content":"<eos>","special":true}])", "", post));
    write_text(dir / "tokenizer_config.json", R"({"eos_token":"<end>"})");
    auto keys = convert::tokenizer_keys(dir.path());
    CHECK(scalar(keys, "tokenizer.ggml.eos_token_id") == 7u);
    CHECK(scalar(keys, "tokenizer.ggml.eot_token_id") == 6u);
    CHECK(scalar(keys, "tokenizer.ggml.add_eos_token") == 1u);

    write_text(dir / "tokenizer.json", bpe_json(kGpt2Pre, "[]", "[]", "", R"({"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0]})"));
    write_text(dir / "tokenizer_config.json", R"({"model_max_length":512})");
    keys = convert::tokenizer_keys(dir.path());
    CHECK(scalar(keys, "tokenizer.ggml.add_bos_token") == 1u);
    CHECK(scalar(keys, "tokenizer.ggml.add_eos_token") == 1u);
    CHECK(scalar(keys, "tokenizer.ggml.add_sep_token") == 1u);
}

TEST_CASE("tokenizer conversion errors name the file and what is wrong") {
    const test::TempDir dir;
    CHECK(error_of(dir.path()).find("no tokenizer.model or tokenizer.json") != std::string::npos);
    CHECK(error_of(dir / "absent").find("not a folder") != std::string::npos);
    write_text(dir / "tokenizer.json", "{\"model\": ");
    CHECK(error_of(dir.path()).find("tokenizer.json: not valid JSON") != std::string::npos);
    write_text(dir / "tokenizer.json", bpe_json(kGpt2Pre, "[]", "[]", R"(,"byte_fallback":true)"));
    CHECK(error_of(dir.path()).find("byte_fallback") != std::string::npos);
    write_text(dir / "tokenizer.json", R"({"model":{"type":"Unigram","vocab":[]}})");
    CHECK(error_of(dir.path()).find("model type Unigram") != std::string::npos);
    write_text(dir / "tokenizer.json", bpe_json(kGpt2Pre, "[1]"));
    CHECK(error_of(dir.path()).find("model.merges[0] is neither a string nor a pair") != std::string::npos);
    write_text(dir / "tokenizer.json", bpe_json(kGpt2Pre, "[]"));
    write_text(dir / "config.json", "[1,");
    CHECK(error_of(dir.path()).find("config.json: not valid JSON") != std::string::npos);
}

TEST_CASE("integers too big for 64 bits (transformers' model_max_length) are read as Python reads them; digits in strings stay") {
    const test::TempDir dir;
    write_text(dir / "tokenizer.json", bpe_json(kGpt2Pre, "[]"));
    write_text(dir / "tokenizer_config.json",
               R"({"model_max_length": 1000000000000000019884624838656, "chat_template": "x 123456789012345678901234 \"y\" 1e5"})");
    const auto keys = convert::tokenizer_keys(dir.path());
    CHECK(keys.find("tokenizer.chat_template")->str() == "x 123456789012345678901234 \"y\" 1e5");
}
