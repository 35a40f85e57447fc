// Tokenizer speed: tokens per second over licenses.txt (../shared/ref/eval) with the tiny
// model's SentencePiece vocabulary, and over the same text repeated with each byte-level
// BPE and WordPiece vocabulary of ../shared/ref/gguf/vocab. Prints figures, asserts nothing.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "gguf/file.h"
#include "infer/tokenizer.h"
#include "support.h"

namespace {

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void measure(const std::filesystem::path& vocab, const std::string& text, const char* what) {
    const gguf::File f = gguf::File::open(vocab);
    const auto t0 = std::chrono::steady_clock::now();
    const auto tok = infer::Tokenizer::from_gguf(f);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t n = 0;
    const double ns = test::median_ns(5, [&] { n = tok.encode(text, true, false).size(); });
    std::printf("%-30s %-16s %7.1f ms load  %8zu bytes -> %7zu tokens  %7.2f ms  %6.2f M tokens/s  %6.1f MB/s\n",
                vocab.filename().c_str(), what, load_ms, text.size(), n, ns / 1e6, static_cast<double>(n) / ns * 1e3, static_cast<double>(text.size()) / ns * 1e3);
}

}  // namespace

int main() {
    const auto ref = test::ref_dir();
    if (!std::filesystem::is_directory(ref)) {
        std::printf("no reference data at %s\n", ref.c_str());
        return 0;
    }
    const std::string licenses = read_text(ref / "eval" / "licenses.txt");
    std::string large;
    for (int i = 0; i < 10; ++i) large += licenses;
    measure(ref / "gguf" / "llama-quantize" / "tiny-source-f16.gguf", licenses, "licenses.txt");
    for (const auto& path : test::gguf_files(ref / "gguf" / "vocab")) measure(path, large, "licenses.txt x10");
}
