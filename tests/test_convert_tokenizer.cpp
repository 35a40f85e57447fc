// Hugging Face tokenizers converted to GGUF keys, against what llama.cpp's converter wrote
// for the same tokenizers (../shared/ref/gguf/vocab) and against its tokenizer's ids for
// the test strings (.inp / .out).
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "convert/hf_tokenizer.h"
#include "convert_tokenizer_support.h"
#include "gguf/file.h"
#include "infer/tokenizer.h"
#include "support.h"
#include "vocab_tests.h"

namespace {

std::filesystem::path vocab_dir() { return test::ref_dir() / "gguf" / "vocab"; }
std::filesystem::path tokenizers_dir() { return test::ref_dir() / "tokenizers"; }

void write_text(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}


// Every string of NAME.gguf.inp tokenized by the converted vocabulary gives NAME.gguf.out's ids.
void tokenizes_as_llama_cpp(const convert::TokenizerKeys& keys, const std::string& name) {
    const auto converted = test::as_gguf(keys);
    const auto tok = infer::Tokenizer::from_gguf(converted.file);
    const auto inp = vocab_dir() / (name + ".inp");
    const auto inputs = test::read_vocab_inputs(inp);
    const auto outputs = test::read_vocab_outputs(vocab_dir() / (name + ".out"));
    REQUIRE(inputs.size() == outputs.size());
    REQUIRE(!inputs.empty());
    size_t pass = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const auto got = tok.encode(inputs[i], false, false);
        if (got == outputs[i]) ++pass;
        else FAIL_CHECK(name << " string " << i << " '" << inputs[i] << "' tokenizes differently");
    }
    CHECK(pass == inputs.size());
    std::printf("%-30s converted %s/%s: %zu/%zu strings as llama.cpp tokenizes them\n", name.c_str(), keys.model.c_str(), keys.pre.c_str(), pass,
                inputs.size());
}

// Every tokenizer.* key of llama.cpp's file is in the converted keys with an identical
// value, and the converted keys hold no tokenizer.* key the file lacks.
void keys_match_reference(const convert::TokenizerKeys& keys, const std::filesystem::path& reference) {
    const auto converted = test::as_gguf(keys);
    const gguf::File want = gguf::File::open(reference);
    size_t compared = 0;
    for (const gguf::KeyValue& kv : want.kvs()) {
        if (!kv.key.starts_with("tokenizer.")) continue;
        CAPTURE(kv.key);
        const gguf::KeyValue* got = converted.file.find(kv.key);
        REQUIRE_MESSAGE(got, "the converter wrote no " << kv.key);
        CHECK_MESSAGE(test::same_value(got->value, kv.value), kv.key << " differs");
        ++compared;
    }
    for (const auto& [key, value] : keys.keys) CHECK_MESSAGE(want.find(key), "the converter wrote " << key << ", which llama.cpp's file lacks");
    std::printf("%-30s %zu tokenizer keys identical to llama.cpp's\n", reference.filename().c_str(), compared);
}

// A uint32 key's value.
std::optional<uint32_t> u32_key(const convert::TokenizerKeys& keys, std::string_view key) {
    const auto* v = keys.find(key);
    if (!v || v->type() != gguf::ValueType::U32) return std::nullopt;
    return static_cast<uint32_t>(v->bits());
}

}  // namespace

TEST_CASE("Llama 3's tokenizer.json converts to llama-bpe and tokenizes the test strings as llama.cpp does") {
    const auto keys = convert::tokenizer_keys(tokenizers_dir() / "llama3");
    CHECK(keys.model == "gpt2");
    CHECK(keys.pre == "llama-bpe");
    CHECK(keys.vocab_size == 128256);

    const auto reference = vocab_dir() / "ggml-vocab-llama-bpe.gguf";
    if (std::filesystem::exists(reference)) {
        keys_match_reference(keys, reference);
    } else {
        std::printf("ggml-vocab-llama-bpe.gguf is not in ../shared (only its .inp/.out): keys checked one by one, not against llama.cpp's file\n");
        const auto* tokens = keys.find("tokenizer.ggml.tokens");
        const auto* types = keys.find("tokenizer.ggml.token_type");
        const auto* merges = keys.find("tokenizer.ggml.merges");
        REQUIRE(tokens);
        REQUIRE(types);
        REQUIRE(merges);
        CHECK(tokens->size() == 128256);
        CHECK(tokens->string_at(0) == "!");
        CHECK(tokens->string_at(128000) == "<|begin_of_text|>");
        CHECK(tokens->string_at(128255) == "<|reserved_special_token_250|>");
        size_t normal = 0, control = 0;
        for (uint64_t i = 0; i < types->size(); ++i) (static_cast<int32_t>(types->at(i).bits()) == 1 ? normal : control) += 1;
        CHECK(normal == 128000);  // the model's vocabulary
        CHECK(control == 256);    // the added tokens, all special
        CHECK(merges->size() == 280147);
        CHECK(merges->string_at(0) == "\xC4\xA0 \xC4\xA0");  // "Ġ Ġ"
        CHECK(u32_key(keys, "tokenizer.ggml.bos_token_id") == 128000u);
        CHECK(u32_key(keys, "tokenizer.ggml.eos_token_id") == 128001u);
        CHECK(!keys.find("tokenizer.ggml.add_bos_token"));  // this copy's post_processor is plain ByteLevel, its config sets none
        const auto* chat = keys.find("tokenizer.chat_template");
        REQUIRE(chat);
        CHECK(chat->str().starts_with("{% set loop_messages = messages %}"));
    }
    tokenizes_as_llama_cpp(keys, "ggml-vocab-llama-bpe.gguf");
}

// GPT-2 as the Hugging Face hub holds it (openai-community/gpt2): tokenizer.json made of
// encoder.json and vocab.bpe (its merges as [a, b] pairs, the newer form), a
// tokenizer_config.json without special tokens, and config.json naming BOS and EOS 50256.
TEST_CASE("GPT-2's vocabulary as tokenizer.json converts to the keys of ggml-vocab-gpt-2.gguf and tokenizes as llama.cpp does") {
    const test::TempDir dir;
    const std::string encoder = test::read_text(tokenizers_dir() / "gpt2" / "encoder.json");
    std::istringstream bpe(test::read_text(tokenizers_dir() / "gpt2" / "vocab.bpe"));
    std::string merges;
    for (std::string line; std::getline(bpe, line);) {
        if (line.empty() || line.starts_with("#version")) continue;
        const size_t space = line.find(' ');
        REQUIRE(space != std::string::npos);
        merges += (merges.empty() ? "[" : ",[") + test::json_string(line.substr(0, space)) + "," + test::json_string(line.substr(space + 1)) + "]";
    }
    write_text(dir / "tokenizer.json",
               R"({"version":"1.0","truncation":null,"padding":null,)"
               R"("added_tokens":[{"id":50256,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":true,"special":true}],)"
               R"("normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},)"
               R"("post_processor":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},)"
               R"("decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},)"
               R"("model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,"byte_fallback":false,"vocab":)" +
                   encoder + R"(,"merges":[)" + merges + "]}}");
    write_text(dir / "tokenizer_config.json", R"({"model_max_length": 1024})");
    write_text(dir / "config.json", R"({"architectures":["GPT2LMHeadModel"],"bos_token_id":50256,"eos_token_id":50256,"vocab_size":50257})");

    const auto keys = convert::tokenizer_keys(dir.path());
    CHECK(keys.pre == "gpt-2");
    CHECK(keys.vocab_size == 50257);
    keys_match_reference(keys, vocab_dir() / "ggml-vocab-gpt-2.gguf");
    tokenizes_as_llama_cpp(keys, "ggml-vocab-gpt-2.gguf");
}

// llama-spm (Llama 2's SentencePiece model): its pieces written back into a tokenizer.model
// from llama.cpp's file, with the tokenizer_config.json and added tokens of its Hugging Face
// folder; the conversion must give every tokenizer key back and tokenize as llama.cpp does.
TEST_CASE("a tokenizer.model holding llama-spm's pieces converts to the keys of ggml-vocab-llama-spm.gguf") {
    const gguf::File ref = gguf::File::open(vocab_dir() / "ggml-vocab-llama-spm.gguf");
    const auto tokens = ref.find("tokenizer.ggml.tokens")->value.array();
    const auto scores = ref.find("tokenizer.ggml.scores")->value.array();
    const auto types = ref.find("tokenizer.ggml.token_type")->value.array();
    std::vector<convert::SentencePiece> pieces;
    uint64_t i = 0;
    for (const gguf::Value t : tokens) {
        pieces.push_back({std::string(t.str()), scores.at(i).f32(), static_cast<convert::SentencePiece::Type>(types.at(i).i32())});
        ++i;
    }
    const test::TempDir dir;
    write_text(dir / "tokenizer.model", test::sentencepiece_model(pieces));
    write_text(dir / "tokenizer.json",
               R"({"version":"1.0","added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},)"
               R"({"id":2,"content":"</s>","special":true}],"model":{"type":"BPE","byte_fallback":true,"vocab":{},"merges":[]}})");
    write_text(dir / "tokenizer_config.json",
               R"({"add_bos_token":true,"add_eos_token":false,"bos_token":{"__type":"AddedToken","content":"<s>"},)"
               R"("eos_token":{"__type":"AddedToken","content":"</s>"},"unk_token":{"__type":"AddedToken","content":"<unk>"},"pad_token":null})");
    write_text(dir / "config.json", R"({"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":2,"vocab_size":32000})");

    const auto keys = convert::tokenizer_keys(dir.path());
    CHECK(keys.model == "llama");
    CHECK(keys.vocab_size == 32000);
    keys_match_reference(keys, vocab_dir() / "ggml-vocab-llama-spm.gguf");
    tokenizes_as_llama_cpp(keys, "ggml-vocab-llama-spm.gguf");
}

TEST_CASE("../shared holds no real tokenizer.model (said, so that one is added when it does)") {
    size_t found = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(test::ref_dir()))
        if (e.path().filename() == "tokenizer.model") {
            ++found;
            const auto keys = convert::tokenizer_keys(e.path().parent_path());
            CHECK(keys.model == "llama");
            std::printf("%s: %llu tokens converted\n", e.path().c_str(), static_cast<unsigned long long>(keys.vocab_size));
        }
    if (!found) std::printf("no tokenizer.model under ../shared/ref: SentencePiece is checked with llama-spm's pieces and the fixtures\n");
}
