#include "evaluate.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/error.h"
#include "gguf/model.h"
#include "infer/forward.h"
#include "infer/kld_base.h"
#include "infer/model.h"
#include "infer/perplexity.h"
#include "infer/sampler.h"
#include "infer/tokenizer.h"
#include "gpu.h"
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

    // `cpu`: the products run here, so the weights' pages are mapped in now (their page faults
    // taken while loading, not in the first chunk), as llama.cpp's loader does; not when they
    // are copied to a GPU.
    Loaded(const std::string& p, bool cpu) : path(p), file(gguf::Model::open(p)) {
        model = std::make_unique<infer::Model>(file);           // its errors name the file
        tokenizer.emplace(infer::Tokenizer::from_gguf(file));  // gguf::Error names the file and key
        if (cpu) model->map_in();
    }
};

infer::Arithmetic parse_arithmetic(const std::string& s) { return s == "ggml" ? infer::Arithmetic::Ggml : infer::Arithmetic::F32; }

std::string arithmetic_description(const infer::EvalOptions& e) {
    std::string s = e.arithmetic == infer::Arithmetic::Ggml
                        ? "ggml (activations rounded as llama.cpp's CPU kernels do: 8-bit blocks for quantized weights, f16 for F16; f16 KV cache)"
                        : "f32 (f32 activations against dequantized weights, f32 KV cache: what the weights alone lose)";
    if (e.backend) s += fmt::format("; weight products on {} (f16 factors, f32 sums)", e.backend->name());
    return s;
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
    bool json = false, gpu = false;
};

int perplexity(const PerplexityArgs& a) {
    const std::string text = read_text_file(a.text_file);
    const Loaded l(a.model, !a.gpu);
    const auto backend = gpu_backend(a.gpu, {l.model.get()});
    infer::PerplexityOptions o;
    o.n_ctx = a.n_ctx;
    o.max_chunks = a.chunks;
    o.eval = {parse_arithmetic(a.activations), a.threads, backend.get()};
    const std::vector<int32_t> tokens = tokenize_text(l, text);
    const uint32_t chunks = checked_chunks(tokens.size(), o, a.text_file);
    const infer::MemoryFigures planned = infer::Context::planned_memory(*l.model, o.n_ctx, o.n_ctx);
    if (!a.json) {
        out("perplexity: " + describe(l) + "\n");
        out(fmt::format("perplexity: arithmetic: {}\n", arithmetic_description(o.eval)));
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

void add_eval_options(CLI::App* c, std::string& text_file, uint32_t& n_ctx, uint32_t& chunks, std::string& activations, bool& json, bool& gpu) {
    c->add_option("-f,--file", text_file, "The text to evaluate")->required();
    c->add_option("-c,--ctx-size", n_ctx, "Tokens per chunk (llama-perplexity's -c)")->check(CLI::Range(2u, 1u << 20))->capture_default_str();
    c->add_option("--chunks", chunks, "Evaluate at most this many chunks (default: every whole chunk of the text)");
    c->add_option("--activations", activations,
                  "f32: f32 activations against dequantized weights; ggml: rounded as llama.cpp's CPU kernels do (to reproduce its figures)")
        ->check(CLI::IsMember({"f32", "ggml"}))
        ->capture_default_str();
    c->add_flag("--json", json, "Print the figures as JSON");
    add_gpu_option(c, gpu);
}

// ---- gguf kld ------------------------------------------------------------------------------

struct KldArgs {
    std::string base, model, text_file, activations = "f32";
    std::string save_base, base_logits;  // --save-base FILE, --base-logits FILE
    uint32_t n_ctx = 512, chunks = 0;
    int threads = 0;
    bool json = false, gpu = false;
    bool n_ctx_given = false, chunks_given = false, activations_given = false;  // on the command line
};

void estimate_json(Json& j, std::string_view key, const infer::Estimate& e) {
    j.key(key).begin_object();
    j.field("value", e.value);
    j.field("uncertainty", e.uncertainty);
    j.end_object();
}

void file_json(Json& j, std::string_view key, const std::string& path, uint64_t bytes) {
    j.key(key).begin_object();
    j.field("file", path);
    j.field("bytes", bytes);
    j.end_object();
}

// The figures, shared by every form of the comparison.
void kld_figures_json(Json& j, const infer::KldSummary& s) {
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
}

// The fields both comparing forms of gguf kld print first, in this order.
void kld_result_json(Json& j, const std::string& base, const std::string& model, const std::string& text, uint32_t n_ctx,
                     const infer::KldResult& r, const infer::KldSummary& s, double seconds, double tps) {
    j.field("base", base);
    j.field("model", model);
    j.field("text", text);
    j.field("arithmetic", infer::arithmetic_name(r.arithmetic));
    j.field("n_ctx", n_ctx);
    j.field("chunks", r.chunks);
    kld_figures_json(j, s);
    j.field("seconds", seconds);
    j.field("tokens_per_second", tps);
    memory_json(j, "memory", r.memory);
}

// The base file's size before it is written: its logits (the header and ids are small).
std::string describe_saving(const std::string& path, uint32_t chunks, uint32_t n_ctx, uint32_t n_vocab) {
    infer::KldBaseInfo i;
    i.n_ctx = n_ctx;
    i.chunks = chunks;
    i.n_vocab = n_vocab;
    return fmt::format("kld: saving the base's logits to {}: {} chunks x {} positions x {} logits, {}\n", path, chunks, i.scored_per_chunk(),
                       n_vocab, human_bytes(i.logits_bytes()));
}

infer::KldBaseDestination destination(const KldArgs& a, const Loaded& base) {
    const gguf::KeyValue* name = base.file.find("general.name");
    return {a.save_base, name && name->value.type() == gguf::ValueType::String ? std::string(name->value.str()) : std::string(), a.base,
            a.text_file};
}

void print_progress(const KldArgs& a, uint32_t done, double ppl) {
    if (!a.json) out(fmt::format("[{}]{:.4f},", done, ppl));
}

void print_kld_summary(const infer::KldSummary& s) {
    const std::string summary = infer::format_kld_summary(s);
    out("\n\n" + summary);
    if (!summary.ends_with('\n')) out("\n");
}

// gguf kld BASE -f TEXT --save-base FILE: BASE alone, its logits saved.
int kld_save_base(const KldArgs& a, infer::KldOptions o, const std::string& text) {
    const Loaded base(a.base, !a.gpu);
    const auto backend = gpu_backend(a.gpu, {base.model.get()});
    o.eval.backend = backend.get();
    const std::vector<int32_t> tokens = tokenize_text(base, text);
    const uint32_t chunks = checked_chunks(tokens.size(), {o.n_ctx, o.max_chunks, o.eval}, a.text_file);
    if (!a.json) {
        out("kld: base:  " + describe(base) + "\n");
        out(fmt::format("kld: arithmetic: {}\n", arithmetic_description(o.eval)));
        out("kld: memory (base):  " + describe_memory(infer::Context::planned_memory(*base.model, o.n_ctx, o.n_ctx)) + "\n");
        out(describe_saving(a.save_base, chunks, o.n_ctx, base.model->config().n_vocab));
        out(fmt::format("kld: {} tokens; evaluating the base over {} chunks, n_ctx={}, {} threads\n", tokens.size(), chunks, o.n_ctx,
                        thread_count(a.threads)));
    }
    const auto t0 = Clock::now();
    const infer::PerplexityResult r = infer::save_kld_base(*base.model, tokens, o, destination(a, base),
                                                           [&](uint32_t done, uint32_t, double ppl) { print_progress(a, done, ppl); });
    const double seconds = seconds_since(t0);
    const double tps = seconds > 0 ? static_cast<double>(r.tokens_evaluated) / seconds : 0.0;
    const uint64_t bytes = std::filesystem::file_size(a.save_base);
    if (a.json) {
        Json j;
        j.begin_object();
        j.field("base", a.base);
        j.field("text", a.text_file);
        j.field("arithmetic", infer::arithmetic_name(r.arithmetic));
        j.field("n_ctx", o.n_ctx);
        j.field("chunks", r.chunks);
        j.field("tokens_scored", r.nll.count);
        estimate_json(j, "ppl_base", {r.nll.ppl(), r.nll.ppl_uncertainty()});
        file_json(j, "saved_base", a.save_base, bytes);
        j.field("seconds", seconds);
        j.field("tokens_per_second", tps);
        memory_json(j, "memory_base", r.memory);
        j.end_object();
        out(j.str() + "\n");
    } else {
        out("\n");
        out(fmt::format("Final estimate: PPL(base) = {:.4f} +/- {:.5f}\n", r.nll.ppl(), r.nll.ppl_uncertainty()));
        out(fmt::format("kld: saved {} ({}); compare a model with: gguf kld --base-logits {} MODEL -f {}\n", a.save_base, human_bytes(bytes),
                        a.save_base, a.text_file));
        out(fmt::format("kld: {} tokens in {:.2f} s: {:.1f} tokens/s ({} threads, {} activations)\n", r.tokens_evaluated, seconds, tps,
                        thread_count(a.threads), infer::arithmetic_name(r.arithmetic)));
    }
    return 0;
}

// gguf kld --base-logits FILE MODEL -f TEXT: MODEL against a saved base. The chunking and
// arithmetic not given on the command line are the file's.
int kld_from_base_file(const KldArgs& a, infer::KldOptions o, const std::string& text) {
    const infer::KldBaseReader base = infer::KldBaseReader::open(a.base_logits);
    const infer::KldBaseInfo& saved = base.info();
    if (!a.n_ctx_given) o.n_ctx = saved.n_ctx;
    if (!a.chunks_given) o.max_chunks = saved.chunks;
    if (!a.activations_given) o.eval.arithmetic = saved.arithmetic;
    const Loaded model(a.base, !a.gpu);  // the one file named on the command line
    const auto backend = gpu_backend(a.gpu, {model.model.get()});
    o.eval.backend = backend.get();
    if (!saved.products.empty() && saved.products != infer::product_path(o.eval))
        std::fprintf(stderr, "kld: warning: %s: BASE's products ran on %s, MODEL's run on %s: figures may differ from a one-run comparison "
                             "in the last digits\n",
                     a.base_logits.c_str(), saved.products.c_str(), infer::product_path(o.eval).c_str());
    const std::vector<int32_t> tokens = tokenize_text(model, text);
    const uint32_t chunks = checked_chunks(tokens.size(), {o.n_ctx, o.max_chunks, o.eval}, a.text_file);
    if (!a.json) {
        out(fmt::format("kld: base:  {}: logits of {}{}, {} chunks of {} tokens, vocabulary {}, {} arithmetic ({}, mapped)\n", a.base_logits,
                        saved.base_path, saved.base_name.empty() ? "" : " (" + saved.base_name + ")", saved.chunks, saved.n_ctx, saved.n_vocab,
                        infer::arithmetic_name(saved.arithmetic), human_bytes(base.file_size())));
        out("kld: model: " + describe(model) + "\n");
        out(fmt::format("kld: arithmetic: {}\n", arithmetic_description(o.eval)));
        out("kld: memory (model): " + describe_memory(infer::Context::planned_memory(*model.model, o.n_ctx, o.n_ctx)) + "\n");
        out(fmt::format("kld: {} tokens; calculating KL divergence over {} chunks, n_ctx={}, {} threads\n", tokens.size(), chunks, o.n_ctx,
                        thread_count(a.threads)));
    }
    const auto t0 = Clock::now();
    const infer::KldResult r = infer::kl_divergence(base, *model.model, tokens, o, [&](uint32_t done, uint32_t, double ppl) {
        print_progress(a, done, ppl);
    });
    const double seconds = seconds_since(t0);
    const double tps = seconds > 0 ? static_cast<double>(r.tokens_evaluated) / seconds : 0.0;
    const infer::KldSummary s = infer::summarize(r.totals);
    if (a.json) {
        Json j;
        j.begin_object();
        kld_result_json(j, saved.base_path, a.base, a.text_file, o.n_ctx, r, s, seconds, tps);
        file_json(j, "base_logits", a.base_logits, base.file_size());
        j.end_object();
        out(j.str() + "\n");
    } else {
        print_kld_summary(s);
        out(fmt::format("kld: {} tokens (the model; the base's from {}) in {:.2f} s: {:.1f} tokens/s ({} threads, {} activations)\n",
                        r.tokens_evaluated, a.base_logits, seconds, tps, thread_count(a.threads), infer::arithmetic_name(r.arithmetic)));
    }
    return 0;
}

// Which form the arguments name; refuses the combinations that name none.
void check_kld_forms(const KldArgs& a) {
    if (!a.save_base.empty() && !a.base_logits.empty())
        throw CLI::ValidationError("--save-base writes a base file and --base-logits reads one: give one of them");
    if (!a.base_logits.empty()) {
        if (a.base.empty()) throw CLI::ValidationError("--base-logits FILE compares a MODEL against FILE: give MODEL");
        if (!a.model.empty())
            throw CLI::ValidationError("with --base-logits FILE, give only MODEL (" + a.model + " too was given): the base's logits come from FILE");
        return;
    }
    if (a.base.empty()) throw CLI::ValidationError("give BASE and MODEL, BASE with --save-base FILE, or --base-logits FILE with MODEL");
    if (a.model.empty() && a.save_base.empty())
        throw CLI::ValidationError("give MODEL to compare with BASE (or --save-base FILE to only save BASE's logits)");
}

int kld(const KldArgs& a) {
    check_kld_forms(a);
    for (const std::string& input : {a.base, a.model, a.text_file})
        if (!a.save_base.empty() && !input.empty()) gguf::refuse_overwrite(a.save_base, input);
    const std::string text = read_text_file(a.text_file);
    infer::KldOptions o;
    o.n_ctx = a.n_ctx;
    o.max_chunks = a.chunks;
    o.eval = {parse_arithmetic(a.activations), a.threads};
    if (!a.base_logits.empty()) return kld_from_base_file(a, o, text);
    if (a.model.empty()) return kld_save_base(a, o, text);
    const Loaded base(a.base, !a.gpu), model(a.model, !a.gpu);
    const auto backend = gpu_backend(a.gpu, {base.model.get(), model.model.get()});
    o.eval.backend = backend.get();
    const std::vector<int32_t> tokens = tokenize_text(base, text);
    const uint32_t chunks = checked_chunks(tokens.size(), {o.n_ctx, o.max_chunks, o.eval}, a.text_file);
    if (base.model->config().n_vocab != model.model->config().n_vocab)
        throw std::runtime_error(fmt::format("{} and {}: the vocabularies differ in size ({} and {} tokens)", a.base, a.model,
                                             base.model->config().n_vocab, model.model->config().n_vocab));
    if (!a.json) {
        out("kld: base:  " + describe(base) + "\n");
        out("kld: model: " + describe(model) + "\n");
        out(fmt::format("kld: arithmetic: {}\n", arithmetic_description(o.eval)));
        out("kld: memory (base):  " + describe_memory(infer::Context::planned_memory(*base.model, o.n_ctx, o.n_ctx)) + "\n");
        out("kld: memory (model): " + describe_memory(infer::Context::planned_memory(*model.model, o.n_ctx, o.n_ctx)) + "\n");
        if (!a.save_base.empty()) out(describe_saving(a.save_base, chunks, o.n_ctx, base.model->config().n_vocab));
        out(fmt::format("kld: {} tokens; calculating KL divergence over {} chunks, n_ctx={}, {} threads\n", tokens.size(), chunks, o.n_ctx,
                        thread_count(a.threads)));
    }
    const auto t0 = Clock::now();
    const infer::ChunkCallback progress = [&](uint32_t done, uint32_t, double ppl) { print_progress(a, done, ppl); };
    const infer::KldResult r = a.save_base.empty()
                                   ? infer::kl_divergence(*base.model, *model.model, tokens, o, progress)
                                   : infer::kl_divergence(*base.model, *model.model, tokens, o, destination(a, base), progress);
    const double seconds = seconds_since(t0);
    const double tps = seconds > 0 ? 2.0 * static_cast<double>(r.tokens_evaluated) / seconds : 0.0;
    const infer::KldSummary s = infer::summarize(r.totals);
    if (a.json) {
        Json j;
        j.begin_object();
        kld_result_json(j, a.base, a.model, a.text_file, o.n_ctx, r, s, seconds, tps);
        memory_json(j, "memory_base", r.memory_base);
        if (!a.save_base.empty()) file_json(j, "saved_base", a.save_base, std::filesystem::file_size(a.save_base));
        j.end_object();
        out(j.str() + "\n");
    } else {
        print_kld_summary(s);
        if (!a.save_base.empty())
            out(fmt::format("kld: saved the base's logits to {} ({})\n", a.save_base, human_bytes(std::filesystem::file_size(a.save_base))));
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
    bool ignore_eos = false, gpu = false;
};

int generate(const GenerateArgs& a) {
    const Loaded l(a.model, !a.gpu);
    const std::vector<int32_t> prompt = l.tokenizer->encode(a.prompt, true, true);
    if (prompt.empty()) throw CLI::ValidationError("the prompt gives no tokens (and the vocabulary adds no BOS): give a prompt with -p");
    infer::GenerateOptions o;
    o.max_tokens = a.n;
    o.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
    const auto backend = gpu_backend(a.gpu, {l.model.get()});
    o.eval = {parse_arithmetic(a.activations), a.threads, backend.get()};
    o.stop_at_eos = !a.ignore_eos;
    infer::Sampler check(o.sampling);  // refuses a bad top_p or temperature before the model runs
    std::fprintf(stderr, "generate: %s\ngenerate: %zu prompt tokens, up to %u new; %s, seed %llu\n", describe(l).c_str(), prompt.size(), a.n,
                 a.temperature > 0 ? fmt::format("temperature {}, top-k {}, top-p {}", a.temperature, a.top_k, a.top_p).c_str() : "greedy",
                 static_cast<unsigned long long>(a.seed));
    if (backend) std::fprintf(stderr, "generate: weight products on %s\n", std::string(backend->name()).c_str());
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
    c->add_option("model", a->model, "GGUF model (llama, mistral, mixtral, qwen2, qwen3, qwen3moe)")->required();
    add_eval_options(c, a->text_file, a->n_ctx, a->chunks, a->activations, a->json, a->gpu);
    add_threads_option(c, a->threads, "-t,--threads");
    c->footer("The text is tokenized whole (BOS first where the vocabulary adds one) and cut into chunks of -c tokens; each chunk is "
              "evaluated from an empty cache and the second half of its tokens scored. Prints the running perplexity per chunk, "
              "then 'Final estimate: PPL = X +/- σ'.");
    c->callback([a, &run] { run = [a] { return perplexity(*a); }; });
}

void add_kld(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<KldArgs>();
    CLI::App* c = app.add_subcommand("kld", "KL divergence of MODEL's next-token distribution from BASE's, both evaluated in one run (or BASE's saved beforehand), as llama-perplexity --kl-divergence reports it");
    c->add_option("base", a->base, "The reference model (usually the F16/F32 source); with --base-logits, the model to compare");
    c->add_option("model", a->model, "The model to compare (usually a quantization of BASE); left out with --save-base, only BASE is evaluated");
    add_eval_options(c, a->text_file, a->n_ctx, a->chunks, a->activations, a->json, a->gpu);
    add_threads_option(c, a->threads, "-t,--threads");
    c->add_option("--save-base", a->save_base,
                  "Save BASE's logits to FILE as they are computed (a GGUF file, spec/kld-base.md: chunks x scored positions x vocabulary "
                  "f32 values), for comparing models later with --base-logits; without MODEL only BASE is evaluated. llama-perplexity's "
                  "--kl-divergence-base FILE when it writes")
        ->type_name("FILE");
    c->add_option("--base-logits", a->base_logits,
                  "Compare MODEL against BASE's logits saved in FILE by --save-base, instead of evaluating BASE: the same figures as the "
                  "one-run form. -c, --chunks and --activations default to the file's. llama-perplexity's --kl-divergence-base FILE "
                  "with --kl-divergence")
        ->type_name("FILE");
    c->footer("The three forms:\n"
              "  gguf kld BASE MODEL -f TEXT [--save-base FILE]   compare in one run (and save BASE's logits)\n"
              "  gguf kld BASE -f TEXT --save-base FILE           only save BASE's logits\n"
              "  gguf kld --base-logits FILE MODEL -f TEXT        compare MODEL against the saved logits\n"
              "BASE and MODEL are evaluated on the same chunks (as gguf perplexity cuts them); for every scored position the KL divergence "
              "of MODEL's distribution from BASE's is added. When BASE does not fit in memory beside MODEL, save its logits first "
              "(--save-base; the file is about chunks x n_ctx/2 x vocabulary x 4 bytes) and compare each model against the file "
              "(--base-logits); the file records the text's tokens, n_ctx and arithmetic, and a different text, tokenizer or chunking "
              "is refused.");
    c->callback([a, c, &run] {
        a->n_ctx_given = c->get_option("--ctx-size")->count() > 0;
        a->chunks_given = c->get_option("--chunks")->count() > 0;
        a->activations_given = c->get_option("--activations")->count() > 0;
        run = [a] { return kld(*a); };
    });
}

void add_generate(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<GenerateArgs>();
    CLI::App* c = app.add_subcommand("generate", "Continue a prompt with a model: the quick check after converting or quantizing");
    c->add_option("model", a->model, "GGUF model (llama, mistral, mixtral, qwen2, qwen3, qwen3moe)")->required();
    c->add_option("-p,--prompt", a->prompt, "The text to continue")->required();
    c->add_option("-n,--n-predict", a->n, "Tokens to generate at most")->capture_default_str();
    c->add_option("--temp", a->temperature, "Temperature; 0 (the default) is greedy")->check(CLI::Range(0.0f, 100.0f))->capture_default_str();
    c->add_option("--top-k", a->top_k, "Sample among the K most likely tokens (0: all)")->capture_default_str();
    c->add_option("--top-p", a->top_p, "Sample among the most likely tokens whose probabilities add up to P")->check(CLI::Range(1e-6f, 1.0f))->capture_default_str();
    c->add_option("-s,--seed", a->seed, "Seed of the sampler's random numbers (the same seed gives the same text)")->capture_default_str();
    c->add_option("--activations", a->activations, "f32 or ggml (as gguf perplexity)")->check(CLI::IsMember({"f32", "ggml"}))->capture_default_str();
    c->add_flag("--ignore-eos", a->ignore_eos, "Keep generating after the end-of-sequence token");
    add_gpu_option(c, a->gpu);
    add_threads_option(c, a->threads, "-t,--threads");
    c->callback([a, &run] { run = [a] { return generate(*a); }; });
}

}  // namespace gguf::tools
