// The forward pass with its weight products on the GPU (infer/cuda.h) against the CPU's f32
// arithmetic, on the generated demo models (F16 and mixed quantized types): logits within the
// f16 rounding kernels/cuda.h bounds (both factors rounded to f16), the same next-token
// choice almost everywhere, perplexity within 1 %, batched and one token at a time close.
// Without a GPU: says why, exits 77 (ctest: skipped).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "fixtures.h"
#include "gguf/model.h"
#include "infer/cuda.h"
#include "infer/forward.h"
#include "infer/perplexity.h"
#include "kernels/cuda.h"

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++g_failures;
}

std::vector<float> logits_of(const infer::Model& model, const std::vector<int32_t>& tokens, const infer::EvalOptions& e, bool one_by_one) {
    infer::Context ctx(model, static_cast<uint32_t>(tokens.size()), e);
    const size_t v = model.config().n_vocab;
    std::vector<float> out(tokens.size() * v);
    if (!one_by_one) {
        ctx.eval(tokens, out);
        return out;
    }
    for (size_t i = 0; i < tokens.size(); ++i) ctx.eval(std::span<const int32_t>(&tokens[i], 1), std::span<float>(out.data() + i * v, v));
    return out;
}

}  // namespace

int main() {
    std::string why;
    if (!kernels::cuda::available(&why)) {
        std::printf("skipped: %s\n", why.c_str());
        return 77;
    }
    for (const bool mixed : {false, true}) {
        const gguf::fixtures::DemoOptions o = mixed ? gguf::fixtures::mixed_demo_options() : gguf::fixtures::DemoOptions{};
        const std::vector<uint8_t> bytes = gguf::fixtures::demo_model(o).write_to_memory();
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(bytes, "demo.gguf"));
        const gguf::Model file = gguf::Model::from_parts(std::move(parts));
        const infer::Model model(file);
        const infer::Model* models[] = {&model};
        const auto gpu = infer::make_cuda_backend(models);
        const uint32_t n_vocab = model.config().n_vocab;
        std::vector<int32_t> tokens;
        for (uint32_t i = 0; i < 64; ++i) tokens.push_back(static_cast<int32_t>((i * 7919u + 13u) % n_vocab));
        const std::vector<float> cpu = logits_of(model, tokens, {infer::Arithmetic::F32, 0, nullptr}, false);
        const std::vector<float> dev = logits_of(model, tokens, {infer::Arithmetic::F32, 0, gpu.get()}, false);
        const std::vector<float> dev1 = logits_of(model, tokens, {infer::Arithmetic::F32, 0, gpu.get()}, true);
        double worst = 0, worst1 = 0, scale = 0;
        size_t same_top = 0;
        for (size_t t = 0; t < tokens.size(); ++t) {
            size_t a = 0, b = 0;
            for (size_t i = 0; i < n_vocab; ++i) {
                const size_t k = t * n_vocab + i;
                worst = std::max(worst, std::fabs(double{cpu[k]} - dev[k]));
                worst1 = std::max(worst1, std::fabs(double{dev1[k]} - dev[k]));
                scale = std::max(scale, std::fabs(double{cpu[k]}));
                if (cpu[k] > cpu[t * n_vocab + a]) a = i;
                if (dev[k] > dev[t * n_vocab + b]) b = i;
            }
            same_top += a == b;
        }
        const std::string name = std::string(mixed ? "mixed" : "f16") + " demo on " + std::string(gpu->name());
        std::printf("%s: largest logit difference GPU - CPU %.3e (logits up to %.3e), batched - one by one %.3e, same top %zu/%zu\n",
                    name.c_str(), worst, scale, worst1, same_top, tokens.size());
        check(worst <= 1e-2 * scale + 1e-3, name + ": logits within f16 rounding of the CPU's");
        check(worst1 <= 1e-2 * scale + 1e-3, name + ": batched and one token at a time agree to f16 rounding");
        check(same_top * 100 >= tokens.size() * 95, name + ": the same next token at 95 % of positions or more");
        infer::PerplexityOptions p;
        p.n_ctx = 32;
        std::vector<int32_t> text;
        for (uint32_t i = 0; i < 128; ++i) text.push_back(static_cast<int32_t>((i * 104729u + 7u) % n_vocab));
        p.eval = {infer::Arithmetic::F32, 0, nullptr};
        const double ppl_cpu = infer::perplexity(model, text, p).nll.ppl();
        p.eval.backend = gpu.get();
        const double ppl_gpu = infer::perplexity(model, text, p).nll.ppl();
        std::printf("%s: perplexity CPU %.6f, GPU %.6f\n", name.c_str(), ppl_cpu, ppl_gpu);
        check(std::fabs(ppl_gpu / ppl_cpu - 1) < 0.01, name + ": perplexity within 1 % of the CPU's");
    }
    return g_failures ? 1 : 0;
}
