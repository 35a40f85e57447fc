// Uses the installed (or added) ggufkit: writes a model with one q4_K tensor, opens it,
// dequantizes the tensor, and checks the values came back close. Exit 0 on success.
#include <gguf/file.h>
#include <gguf/writer.h>
#include <infer/tokenizer.h>
#include <kernels/kernels.h>
#include <quant/quant.h>
#ifdef CONSUMER_CUDA
#include <kernels/cuda.h>
#endif

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    const std::filesystem::path path = argc > 1 ? argv[1] : "consumer.gguf";
    const int64_t n = 512;
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) values[i] = std::sin(0.1f * static_cast<float>(i));
    std::vector<uint8_t> bytes(quant::row_bytes(gguf::TypeId::Q4_K, n));
    quant::quantize(gguf::TypeId::Q4_K, values, n, {}, bytes);

    gguf::Writer w;
    w.set("general.architecture", gguf::OwnedValue::string("llama"));
    w.set("tokenizer.ggml.model", gguf::OwnedValue::string("llama"));
    w.set("tokenizer.ggml.tokens", gguf::OwnedValue::strings({"<unk>", "<s>", "</s>", "\xE2\x96\x81h", "i", "\xE2\x96\x81hi"}));
    w.add_tensor("t", gguf::TypeId::Q4_K, {static_cast<uint64_t>(n)}, std::span<const uint8_t>(bytes));
    w.write(path);

    const gguf::File f = gguf::File::open(path);
    const gguf::TensorInfo* t = f.find_tensor("t");
    if (!t) return std::puts("tensor 't' not found"), 1;
    std::vector<float> back(n);
    quant::dequantize(t->type, f.tensor_data(*t), back);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(back[i]) - values[i]));
    // The kernels on the widest path this CPU has: the same values, and a dot product.
    std::vector<float> fast(n);
    kernels::dequantize(t->type, f.tensor_data(*t), fast);
    if (fast != back) return std::puts("kernels::dequantize differs from quant::dequantize"), 1;
    // The tokenizer from the same file's metadata: BOS, then "▁hi" (merged from "▁h" and "i").
    const infer::Tokenizer tok = infer::Tokenizer::from_gguf(f);
    if (tok.encode("hi") != std::vector<infer::TokenId>{1, 5}) return std::puts("infer::Tokenizer gave other ids"), 1;
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += double(back[i]) * values[i];
    const float dot = kernels::dot(t->type, f.tensor_data(*t), kernels::Activations(t->type, values));
    std::printf("consumer: %s, %zu tensor(s), worst error %.4f, dot %.3f (exact %.3f) on %s\n", path.c_str(), f.tensors().size(), worst,
                dot, exact, std::string(kernels::isa_name(kernels::active_isa())).c_str());
    if (std::fabs(dot - exact) > 0.01 * std::fabs(exact)) return 1;
#ifdef CONSUMER_CUDA
    std::string why;
    const bool gpu = kernels::cuda::available(&why);
    std::printf("consumer: kernels_cuda linked; %s\n", gpu ? "a CUDA device is present" : why.c_str());
#endif
    return worst < 0.08 ? 0 : 1;  // q4_K steps of about 2/15 on values in [-1, 1]
}
