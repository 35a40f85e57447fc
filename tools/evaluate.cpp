#include "evaluate.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/model.h"
#include "infer/forward.h"
#include "infer/model.h"
#include "infer/perplexity.h"
#include "infer/sampler.h"
#include "infer/tokenizer.h"
#include "json.h"
#include "options.h"
#include "quant/executor.h"
#include "text.h"

namespace gguf::tools {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void out(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

// A model file opened for the forward pass, with its vocabulary.
struct Loaded {
    std::string path;
    gguf::Model file;
    std::unique_ptr<infer::Model> model;
    std::optional<infer::Tokenizer> tokenizer;

    explicit Loaded(const std::string& p) : path(p), file(gguf::Model::open(p)) {
        model = std::make_unique<infer::Model>(file);           // its errors name the file
        tokenizer.emplace(infer::Tokenizer::from_gguf(file));  // gguf::Error names the file and key
    }
};

infer::Arithmetic parse_arithmetic(const std::string& s) { return s == "ggml" ? infer::Arithmetic::Ggml : infer::Arithmetic::F32; }

std::string_view arithmetic_description(infer::Arithmetic a) {
    return a == infer::Arithmetic::Ggml
               ? "ggml (activations rounded as llama.cpp's CPU kernels do: 8-bit blocks for quantized weights, f16 for F16; f16 KV cache)"
               : "f32 (f32 activations against dequantized weights, f32 KV cache: what the weights alone lose)";
}

int thread_count(int threads) { return threads > 0 ? threads : quant::default_executor().size(); }

std::string describe(const Loaded& l) {
    const infer::Config& c = l.model->config();
    return fmt::format("{}: {}, {} layers, n_embd {}, {} heads ({} kv), vocabulary {} ({})", l.path, c.arch, c.n_layer, c.n_embd,
                       c.n_head, c.n_head_kv, c.n_vocab, l.tokenizer->model_name());
}

std::string describe_memory(const infer::MemoryFigures& f) {
    return fmt::format("mapped weights {}, activations {}, KV cache {} (about {} in all)", human_bytes(f.mapped_weights),
                       human_bytes(f.activations), human_bytes(f.kv_cache), human_bytes(f.mapped_weights + f.activations + f.kv_cache));
}

void memory_json(Json& j, std::string_view key, const infer::MemoryFigures& f) {
    j.key(key).begin_object();
    j.field("mapped_weights", f.mapped_weights);
    j.field("activations", f.activations);
    j.field("kv_cache", f.kv_cache);
    j.end_object();
}

// The text's token ids as llama-perplexity makes them: the whole text, BOS first where the
// vocabulary adds one.
std::vector<int32_t> tokenize_text(const Loaded& l, const std::string& text) { return l.tokenizer->encode(text, true, false); }

// The chunking checked before anything runs, naming the text file in the error.
uint32_t checked_chunks(size_t n_tokens, const infer::PerplexityOptions& o, const std::string& text_path) {
    try {
        return infer::chunk_count(n_tokens, o);
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(text_path + ": " + e.what());
    }
}

// ---- gguf perplexity ---------------------------------------------------------------------

struct PerplexityArgs {
    std::string model, text_file, activations = "f32";
    uint32_t n_ctx = 512, chunks = 0;
    int threads = 0;
    bool json = false;
};

int perplexity(const PerplexityArgs& a) {
    const std::string text = read_text_file(a.text_file);
    const Loaded l(a.model);
    infer::PerplexityOptions o;
    o.n_ctx = a.n_ctx;
    o.max_chunks = a.chunks;
    o.eval = {parse_arithmetic(a.activations), a.threads};
    const std::vector<int32_t> tokens = tokenize_text(l, text);
    const uint32_t chunks = checked_chunks(tokens.size(), o, a.text_file);
    const infer::MemoryFigures planned = infer::Context::planned_memory(*l.model, o.n_ctx, o.n_ctx);
    if (!a.json) {
        out("perplexity: " + describe(l) + "\n");
        out(fmt::format("perplexity: arithmetic: {}\n", arithmetic_description(o.eval.arithmetic)));
        out("perplexity: memory: " + describe_memory(planned) + "\n");
        out(fmt::format("perplexity: {} tokens; calculating perplexity over {} chunks, n_ctx={}, {} threads\n", tokens.size(), chunks,
                        o.n_ctx, thread_count(a.threads)));
    }
    const auto t0 = Clock::now();
    const infer::PerplexityResult r = infer::perplexity(*l.model, tokens, o, [&](uint32_t done, uint32_t, double ppl) {
        if (!a.json) out(fmt::format("[{}]{:.4f},", done, ppl));
    });
    const double seconds = seconds_since(t0);
    const double tps = seconds > 0 ? static_cast<double>(r.tokens_evaluated) / seconds : 0.0;
    if (a.json) {
        Json j;
        j.begin_object();
        j.field("file", a.model);
        j.field("text", a.text_file);
        j.field("arithmetic", infer::arithmetic_name(r.arithmetic));
        j.field("threads", int64_t{thread_count(a.threads)});
        j.field("n_ctx", o.n_ctx);
        j.field("chunks", r.chunks);
        j.field("tokens", uint64_t{tokens.size()});
        j.field("tokens_evaluated", r.tokens_evaluated);
        j.field("tokens_scored", r.nll.count);
        j.field("ppl", r.nll.ppl());
        j.field("ppl_uncertainty", r.nll.ppl_uncertainty());
        j.key("running_ppl").begin_array();
        for (double p : r.running_ppl) j.value(p);
        j.end_array();
        j.field("seconds", seconds);
        j.field("tokens_per_second", tps);
        memory_json(j, "memory", r.memory);
        j.end_object();
        out(j.str() + "\n");
    } else {
        out("\n");
        out(fmt::format("Final estimate: PPL = {:.4f} +/- {:.5f}\n", r.nll.ppl(), r.nll.ppl_uncertainty()));
        out(fmt::format("perplexity: {} tokens in {:.2f} s: {:.1f} tokens/s ({} threads, {} activations)\n", r.tokens_evaluated, seconds,
                        tps, thread_count(a.threads), infer::arithmetic_name(r.arithmetic)));
    }
    return 0;
}

void add_eval_options(CLI::App* c, std::string& text_file, uint32_t& n_ctx, uint32_t& chunks, std::string& activations, bool& json) {
    c->add_option("-f,--file", text_file, "The text to evaluate")->required();
    c->add_option("-c,--ctx-size", n_ctx, "Tokens per chunk (llama-perplexity's -c)")->check(CLI::Range(2u, 1u << 20))->capture_default_str();
    c->add_option("--chunks", chunks, "Evaluate at most this many chunks (default: every whole chunk of the text)");
    c->add_option("--activations", activations,
                  "f32: f32 activations against dequantized weights; ggml: rounded as llama.cpp's CPU kernels do (to reproduce its figures)")
        ->check(CLI::IsMember({"f32", "ggml"}))
        ->capture_default_str();
    c->add_flag("--json", json, "Print the figures as JSON");
}

// ---- gguf kld ------------------------------------------------------------------------------

struct KldArgs {
    std::string base, model, text_file, activations = "f32";
    uint32_t n_ctx = 512, chunks = 0;
    int threads = 0;
    bool json = false;
};

void estimate_json(Json& j, std::string_view key, const infer::Estimate& e) {
    j.key(key).begin_object();
    j.field("value", e.value);
    j.field("uncertainty", e.uncertainty);
    j.end_object();
}

int kld(const KldArgs& a) {
    const std::string text = read_text_file(a.text_file);
    const Loaded base(a.base), model(a.model);
    infer::KldOptions o;
    o.n_ctx = a.n_ctx;
    o.max_chunks = a.chunks;
    o.eval = {parse_arithmetic(a.activations), a.threads};
    const std::vector<int32_t> tokens = tokenize_text(base, text);
    const uint32_t chunks = checked_chunks(tokens.size(), {o.n_ctx, o.max_chunks, o.eval}, a.text_file);
    if (base.model->config().n_vocab != model.model->config().n_vocab)
        throw std::runtime_error(fmt::format("{} and {}: the vocabularies differ in size ({} and {} tokens)", a.base, a.model,
                                             base.model->config().n_vocab, model.model->config().n_vocab));
    if (!a.json) {
        out("kld: base:  " + describe(base) + "\n");
        out("kld: model: " + describe(model) + "\n");
        out(fmt::format("kld: arithmetic: {}\n", arithmetic_description(o.eval.arithmetic)));
        out("kld: memory (base):  " + describe_memory(infer::Context::planned_memory(*base.model, o.n_ctx, o.n_ctx)) + "\n");
        out("kld: memory (model): " + describe_memory(infer::Context::planned_memory(*model.model, o.n_ctx, o.n_ctx)) + "\n");
        out(fmt::format("kld: {} tokens; calculating KL divergence over {} chunks, n_ctx={}, {} threads\n", tokens.size(), chunks, o.n_ctx,
                        thread_count(a.threads)));
    }
    const auto t0 = Clock::now();
    const infer::KldResult r = infer::kl_divergence(*base.model, *model.model, tokens, o, [&](uint32_t done, uint32_t, double ppl) {
        if (!a.json) out(fmt::format("[{}]{:.4f},", done, ppl));
    });
    const double seconds = seconds_since(t0);
    const double tps = seconds > 0 ? 2.0 * static_cast<double>(r.tokens_evaluated) / seconds : 0.0;
    const infer::KldSummary s = infer::summarize(r.totals);
    if (a.json) {
        Json j;
        j.begin_object();
        j.field("base", a.base);
        j.field("model", a.model);
        j.field("text", a.text_file);
        j.field("arithmetic", infer::arithmetic_name(r.arithmetic));
        j.field("n_ctx", o.n_ctx);
        j.field("chunks", r.chunks);
        j.field("tokens_scored", s.count);
        estimate_json(j, "ppl", s.ppl);
        estimate_json(j, "ppl_base", s.ppl_base);
        estimate_json(j, "ppl_ratio", s.ratio);
        estimate_json(j, "ln_ppl_ratio", s.ln_ratio);
        estimate_json(j, "kld", s.kld);
        j.field("kld_median", s.kld_median);
        j.field("kld_p99_9", s.kld_p999);
        j.field("kld_p99", s.kld_p99);
        j.field("kld_p95", s.kld_p95);
        j.field("kld_p90", s.kld_p90);
        j.field("kld_max", s.kld_max);
        estimate_json(j, "same_top", s.same_top);
        estimate_json(j, "delta_p_mean", s.p_diff_mean);
        estimate_json(j, "delta_p_rms", s.p_diff_rms);
        j.field("seconds", seconds);
        j.field("tokens_per_second", tps);
        memory_json(j, "memory", r.memory);
        memory_json(j, "memory_base", r.memory_base);
        j.end_object();
        out(j.str() + "\n");
    } else {
        out("\n\n" + infer::format_kld_summary(s));
        if (!infer::format_kld_summary(s).ends_with('\n')) out("\n");
        out(fmt::format("kld: {} tokens (both models) in {:.2f} s: {:.1f} tokens/s ({} threads, {} activations)\n",
                        2 * r.tokens_evaluated, seconds, tps, thread_count(a.threads), infer::arithmetic_name(r.arithmetic)));
    }
    return 0;
}

// ---- gguf generate ---------------------------------------------------------------------------

struct GenerateArgs {
    std::string model, prompt;
    uint32_t n = 64;
    float temperature = 0.0f, top_p = 1.0f;
    uint32_t top_k = 0;
    uint64_t seed = 0;
    int threads = 0;
    std::string activations = "f32";
    bool ignore_eos = false;
};

int generate(const GenerateArgs& a) {
    const Loaded l(a.model);
    const std::vector<int32_t> prompt = l.tokenizer->encode(a.prompt, true, true);
    if (prompt.empty()) throw CLI::ValidationError("the prompt gives no tokens (and the vocabulary adds no BOS): give a prompt with -p");
    infer::GenerateOptions o;
    o.max_tokens = a.n;
    o.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
    o.eval = {parse_arithmetic(a.activations), a.threads};
    o.stop_at_eos = !a.ignore_eos;
    infer::Sampler check(o.sampling);  // refuses a bad top_p or temperature before the model runs
    std::fprintf(stderr, "generate: %s\ngenerate: %zu prompt tokens, up to %u new; %s, seed %llu\n", describe(l).c_str(), prompt.size(), a.n,
                 a.temperature > 0 ? fmt::format("temperature {}, top-k {}, top-p {}", a.temperature, a.top_k, a.top_p).c_str() : "greedy",
                 static_cast<unsigned long long>(a.seed));
    out(a.prompt);
    const auto t0 = Clock::now();
    std::optional<Clock::time_point> first;
    const std::vector<int32_t> tokens = infer::generate(*l.model, prompt, o, l.tokenizer->eos(), [&](int32_t token) {
        if (!first) first = Clock::now();
        out(l.tokenizer->token_to_text(token, false));
        return true;
    });
    const double total = seconds_since(t0);
    out("\n");
    const double prompt_s = first ? std::chrono::duration<double>(*first - t0).count() : total;
    const double gen_s = total - prompt_s;
    const size_t after_first = tokens.empty() ? 0 : tokens.size() - 1;
    std::fprintf(stderr, "generate: prompt %zu tokens in %.3f s (%.1f tokens/s); %zu tokens generated in %.3f s (%.1f tokens/s)\n",
                 prompt.size(), prompt_s, prompt_s > 0 ? static_cast<double>(prompt.size()) / prompt_s : 0.0, tokens.size(), total,
                 gen_s > 0 ? static_cast<double>(after_first) / gen_s : 0.0);
    return 0;
}

}  // namespace

void add_perplexity(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<PerplexityArgs>();
    CLI::App* c = app.add_subcommand("perplexity", "Perplexity of a model over a text, by llama-perplexity's method (figures compare with its own)");
    c->add_option("model", a->model, "GGUF model (llama, mistral, qwen2, qwen3)")->required();
    add_eval_options(c, a->text_file, a->n_ctx, a->chunks, a->activations, a->json);
    add_threads_option(c, a->threads, "-t,--threads");
    c->footer("The text is tokenized whole (BOS first where the vocabulary adds one) and cut into chunks of -c tokens; each chunk is "
              "evaluated from an empty cache and the second half of its tokens scored. Prints the running perplexity per chunk, "
              "then 'Final estimate: PPL = X +/- σ'.");
    c->callback([a, &run] { run = [a] { return perplexity(*a); }; });
}

void add_kld(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<KldArgs>();
    CLI::App* c = app.add_subcommand("kld", "KL divergence of MODEL's next-token distribution from BASE's, both evaluated in one run, as llama-perplexity --kl-divergence reports it");
    c->add_option("base", a->base, "The reference model (usually the F16/F32 source)")->required();
    c->add_option("model", a->model, "The model to compare (usually a quantization of BASE)")->required();
    add_eval_options(c, a->text_file, a->n_ctx, a->chunks, a->activations, a->json);
    add_threads_option(c, a->threads, "-t,--threads");
    c->callback([a, &run] { run = [a] { return kld(*a); }; });
}

void add_generate(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* c = app.add_subcommand("generate", "Continue a prompt with a model: the quick check after converting or quantizing");
    c->add_option("model", a->model, "GGUF model (llama, mistral, qwen2, qwen3)")->required();
    c->add_option("-p,--prompt", a->prompt, "The text to continue")->required();
    c->add_option("-n,--n-predict", a->n, "Tokens to generate at most")->capture_default_str();
    c->add_option("--temp", a->temperature, "Temperature; 0 (the default) is greedy")->check(CLI::Range(0.0f, 100.0f))->capture_default_str();
    c->add_option("--top-k", a->top_k, "Sample among the K most likely tokens (0: all)")->capture_default_str();
    c->add_option("--top-p", a->top_p, "Sample among the most likely tokens whose probabilities add up to P")->check(CLI::Range(1e-6f, 1.0f))->capture_default_str();
    c->add_option("-s,--seed", a->seed, "Seed of the sampler's random numbers (the same seed gives the same text)")->capture_default_str();
    c->add_option("--activations", a->activations, "f32 or ggml (as gguf perplexity)")->check(CLI::IsMember({"f32", "ggml"}))->capture_default_str();
    c->add_flag("--ignore-eos", a->ignore_eos, "Keep generating after the end-of-sequence token");
    add_threads_option(c, a->threads, "-t,--threads");
    c->callback([a, &run] { run = [a] { return generate(*a); }; });
}

}  // namespace gguf::tools
