// llama.cpp's tokenizer test files (../shared/ref/gguf/vocab/NAME.gguf.inp and .out), read
// the same way by every suite that runs them.
#pragma once

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "infer/tokenizer.h"
#include "support.h"

namespace test {

// .inp: the strings, each followed by "\n__ggml_vocab_test__\n".
inline std::vector<std::string> read_vocab_inputs(const std::filesystem::path& p) {
    const std::string text = read_text(p);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> out;
    size_t at = 0;
    for (size_t hit; (hit = text.find(sep, at)) != std::string::npos; at = hit + sep.size()) out.push_back(text.substr(at, hit - at));
    return out;
}

// .out: one line of ids per string.
inline std::vector<std::vector<infer::TokenId>> read_vocab_outputs(const std::filesystem::path& p) {
    std::vector<std::vector<infer::TokenId>> out;
    std::istringstream in(read_text(p));
    for (std::string line; std::getline(in, line);) {
        std::istringstream ids(line);
        out.emplace_back();
        for (infer::TokenId id; ids >> id;) out.back().push_back(id);
    }
    return out;
}

}  // namespace test
