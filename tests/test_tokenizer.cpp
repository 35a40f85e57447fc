// The tokenizers against llama.cpp's own results (../shared/ref): its tokenizer tests
// (gguf/vocab/*.inp and .out) and its tokenization of eval/licenses.txt with the tiny model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "gguf/file.h"
#include "infer/tokenizer.h"
#include "support.h"
#include "vocab_tests.h"

namespace {


std::string ids_text(const std::vector<infer::TokenId>& ids) {
    std::string s;
    for (auto id : ids) {
        s += ' ';
        s += std::to_string(id);
    }
    return s;
}

std::filesystem::path vocab_dir() { return test::ref_dir() / "gguf" / "vocab"; }

}  // namespace

TEST_CASE("every vocabulary of ../shared/ref/gguf/vocab tokenizes its test strings as llama.cpp does") {
    std::vector<std::filesystem::path> inputs_files;
    for (const auto& entry : std::filesystem::directory_iterator(vocab_dir()))
        if (entry.path().extension() == ".inp") inputs_files.push_back(entry.path());
    std::sort(inputs_files.begin(), inputs_files.end());
    static bool said_missing = false;  // doctest runs this body once per subcase
    int files = 0;
    for (const auto& path : inputs_files) {
        const auto gguf_path = std::filesystem::path(path).replace_extension("");  // NAME.gguf
        const std::string name = gguf_path.filename().string();
        if (!std::filesystem::exists(gguf_path)) {
            if (!said_missing) std::printf("%-34s no vocabulary file in ../shared (only its .inp/.out): not tested\n", name.c_str());
            continue;
        }
        ++files;
        SUBCASE(name.c_str()) {
            const gguf::File f = gguf::File::open(gguf_path);
            std::optional<infer::Tokenizer> tok;
            try {
                tok.emplace(infer::Tokenizer::from_gguf(f));
            } catch (const std::exception& e) {
                std::printf("%-34s FAILED to load: %s\n", name.c_str(), e.what());
                FAIL_CHECK(name << ": " << e.what());
                continue;
            }
            const auto inputs = test::read_vocab_inputs(path);
            const auto outputs = test::read_vocab_outputs(std::filesystem::path(path).replace_extension(".out"));
            REQUIRE(inputs.size() == outputs.size());
            size_t pass = 0;
            for (size_t i = 0; i < inputs.size(); ++i) {
                const auto got = tok->encode(inputs[i], false, false);
                if (got == outputs[i]) {
                    ++pass;
                    continue;
                }
                FAIL_CHECK(name << " string " << i << " '" << inputs[i] << "'\n  want" << ids_text(outputs[i]) << "\n  got " << ids_text(got));
            }
            std::printf("%-34s %s/%s %3zu/%zu strings pass\n", name.c_str(), std::string(tok->model_name()).c_str(),
                        std::string(tok->pre_name()).c_str(), pass, inputs.size());
            std::fflush(stdout);
        }
    }
    said_missing = true;
    CHECK(files > 0);
}

TEST_CASE("the vocabularies without test strings load, and decoding gives the text back") {
    const std::string text = "Hello world! It's 2024: naïve café, 3.14159 — ok?\n\tdone";
    for (const auto& path : test::gguf_files(vocab_dir())) {
        if (std::filesystem::exists(path.string() + ".inp")) continue;
        CAPTURE(path);
        const gguf::File f = gguf::File::open(path);
        const auto tok = infer::Tokenizer::from_gguf(f);
        const auto ids = tok.encode(text, false, false);
        CHECK(!ids.empty());
        CHECK(tok.decode(ids) == text);
        std::printf("%-34s %s/%s loads; %zu tokens for the sample, decoded back\n", path.filename().c_str(), std::string(tok.model_name()).c_str(),
                    std::string(tok.pre_name()).c_str(), ids.size());
    }
}

TEST_CASE("licenses.txt with the tiny model's vocabulary gives llama.cpp's 20,119 tokens") {
    const gguf::File f = gguf::File::open(test::ref_dir() / "gguf" / "llama-quantize" / "tiny-source-f16.gguf");
    const auto tok = infer::Tokenizer::from_gguf(f);
    const std::string text = test::read_text(test::ref_dir() / "eval" / "licenses.txt");
    std::string want = test::read_text(test::ref_dir() / "eval" / "tokens-tiny-licenses.txt");
    const auto ids = tok.encode(text, true, false);
    std::string got = "[";
    for (size_t i = 0; i < ids.size(); ++i) got += (i ? ", " : "") + std::to_string(ids[i]);
    got += "]\n";
    CHECK(ids.size() == 20119);
    CHECK(got == want);
    if (got != want) {
        size_t i = 0;
        while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
        FAIL_CHECK("first difference at character " << i << ": want '" << want.substr(i > 40 ? i - 40 : 0, 100) << "' got '"
                                                    << got.substr(i > 40 ? i - 40 : 0, 100) << "'");
    }
    std::printf("tiny-source-f16 on licenses.txt: %zu tokens, %s\n", ids.size(), got == want ? "identical to llama.cpp's" : "DIFFERENT");
}
