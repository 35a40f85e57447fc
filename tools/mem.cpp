#include "mem.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>

#include "gguf/memory.h"
#include "gguf/model.h"
#include "gguf/names.h"
#include "json.h"
#include "options.h"
#include "text.h"

namespace gguf::tools {

namespace {

struct MemOptions {
    std::string model;
    uint32_t ctx = 4096, batch = 2048, ubatch = 512, parallel = 1;
    std::string type_k = "f16", type_v = "f16", flash_attn = "auto";
    bool unified = false, swa_full = false, no_mmap = false, no_repack = false, embeddings = false, json = false, layers = false;
};

// llama.cpp's --cache-type-k/-v choices.
TypeId cache_type(const std::string& option, const std::string& name) {
    for (const TypeId t : {TypeId::F32, TypeId::F16, TypeId::BF16, TypeId::Q8_0, TypeId::Q4_0, TypeId::Q4_1, TypeId::IQ4_NL, TypeId::Q5_0, TypeId::Q5_1})
        if (equal_ignoring_case(type_info(t).name, name)) return t;
    throw CLI::ValidationError(option, fmt::format("'{}' is not a cache type (f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)", name));
}

std::string mib(uint64_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

std::string_view cache_name(LayerCache c) {
    switch (c) {
        case LayerCache::Full: return "full";
        case LayerCache::Sliding: return "sliding";
        case LayerCache::Recurrent: return "recurrent";
        case LayerCache::Both: return "full+recurrent";
        case LayerCache::None: return "none";
    }
    return "?";
}

void print_json(const MemoryEstimate& e, const MemOptions& o, const Model& m) {
    Json j;
    j.begin_object().field("model", o.model).field("parts", static_cast<uint64_t>(m.parts().size()));
    j.key("context").begin_object().field("n_ctx", uint64_t{e.n_ctx}).field("n_ctx_seq", uint64_t{e.n_ctx_seq})
        .field("n_seq", uint64_t{o.parallel}).field("n_stream", uint64_t{e.n_stream}).field("n_tokens", uint64_t{e.n_tokens})
        .field("n_vocab", uint64_t{e.n_vocab}).field("flash_attn", e.flash_attn).field("type_k", std::string(type_info(e.type_k).name))
        .field("type_v", std::string(type_info(e.type_v).name)).end_object();
    j.key("weights").begin_array();
    for (const WeightBuffer& w : e.weights) {
        j.begin_object().field("buffer", w.name).field("bytes", w.bytes).field("tensors", w.tensors);
        if (w.part) j.field("part", uint64_t{w.part});
        j.end_object();
    }
    j.end_array();
    j.key("kv_cache").begin_object().field("bytes", e.kv_k + e.kv_v).field("k_bytes", e.kv_k).field("v_bytes", e.kv_v)
        .field("cells", uint64_t{e.kv_cells}).field("layers", uint64_t{e.layers_with(LayerCache::Full) + e.layers_with(LayerCache::Both)})
        .field("swa_layers", uint64_t{e.layers_with(LayerCache::Sliding)}).field("swa_cells", uint64_t{e.swa_cells})
        .field("swa_window", uint64_t{e.swa_window}).field("swa_bytes", e.swa_k + e.swa_v).end_object();
    j.key("recurrent_state").begin_object().field("bytes", e.rs_r + e.rs_s).field("r_bytes", e.rs_r).field("s_bytes", e.rs_s)
        .field("cells", uint64_t{e.rs_cells}).field("layers", uint64_t{e.layers_with(LayerCache::Recurrent) + e.layers_with(LayerCache::Both)})
        .end_object();
    j.field("output_bytes", e.output).field("compute_bytes_estimate", e.compute).field("total_bytes", e.total());
    if (o.layers) {
        j.key("layers").begin_array();
        for (const LayerMemory& l : e.layers)
            j.begin_object().field("cache", std::string(cache_name(l.cache))).field("cells", uint64_t{l.cells}).field("k_bytes", l.k_bytes)
                .field("v_bytes", l.v_bytes).field("r_bytes", l.r_bytes).field("s_bytes", l.s_bytes).end_object();
        j.end_array();
    }
    j.key("notes").begin_array();
    for (const std::string& n : e.notes) j.value(n);
    j.end_array().end_object();
    const std::string s = j.str() + "\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
}

void print_text(const MemoryEstimate& e, const MemOptions& o) {
    std::string out = fmt::format("{}\n", o.model);
    out += fmt::format("context: {} cells{}, {} tokens a batch, flash attention {}\n", e.n_ctx,
                       e.n_stream > 1 ? fmt::format(" ({} sequences of {})", e.n_stream, e.n_ctx_seq)
                                      : o.parallel > 1 ? fmt::format(" (unified, {} sequences)", o.parallel) : std::string(),
                       e.n_tokens, e.flash_attn ? "on" : "off");
    for (const WeightBuffer& w : e.weights)
        out += fmt::format("  {:<18} {:>12}  {}\n", w.name == "CPU_Mapped" && w.part && e.weights.size() > 1 && w.part > 1 ? fmt::format("{} ({})", w.name, w.part) : w.name,
                           mib(w.bytes),
                           w.name == "CPU_Mapped" ? fmt::format("model, mapped: the span of the file that holds its {} tensors", w.tensors)
                           : w.name == "CPU_REPACK" ? fmt::format("model, {} tensors repacked for this CPU", w.tensors)
                                                    : fmt::format("model, {} tensors read into memory", w.tensors));
    const uint32_t full = e.layers_with(LayerCache::Full) + e.layers_with(LayerCache::Both), sliding = e.layers_with(LayerCache::Sliding);
    if (full + sliding)
        out += fmt::format("  {:<18} {:>12}  {} cells, {} layers; K ({}) {}, V ({}) {}\n", "KV cache", mib(e.kv_k + e.kv_v), e.kv_cells, full,
                           type_info(e.type_k).name, mib(e.kv_k - e.swa_k), type_info(e.type_v).name, mib(e.kv_v - e.swa_v));
    if (sliding)
        out += fmt::format("  {:<18} {:>12}  {} cells (window {}), {} layers; included above\n", "  sliding window", mib(e.swa_k + e.swa_v),
                           e.swa_cells, e.swa_window, sliding);
    if (const uint32_t rec = e.layers_with(LayerCache::Recurrent) + e.layers_with(LayerCache::Both))
        out += fmt::format("  {:<18} {:>12}  {} cells, {} layers; R (f32) {}, S (f32) {}\n", "recurrent state", mib(e.rs_r + e.rs_s), e.rs_cells,
                           rec, mib(e.rs_r), mib(e.rs_s));
    out += fmt::format("  {:<18} {:>12}  logits{} of {} sequence{}\n", "output buffer", mib(e.output), o.embeddings ? " and embeddings" : "",
                       o.parallel, o.parallel == 1 ? "" : "s");
    out += fmt::format("  {:<18} {:>12}  estimate (a batch of {} tokens)\n", "compute buffer", mib(e.compute), e.n_tokens);
    out += fmt::format("  {:<18} {:>12}\n", "total", mib(e.total()));
    if (o.layers) {
        out += "layer  cache            cells        K            V            R            S\n";
        for (size_t i = 0; i < e.layers.size(); ++i) {
            const LayerMemory& l = e.layers[i];
            out += fmt::format("{:>5}  {:<15} {:>6} {:>12} {:>12} {:>12} {:>12}\n", i, cache_name(l.cache), l.cells, mib(l.k_bytes), mib(l.v_bytes),
                               mib(l.r_bytes), mib(l.s_bytes));
        }
    }
    for (const std::string& n : e.notes) out += fmt::format("note: {}\n", n);
    std::fwrite(out.data(), 1, out.size(), stdout);
}

int run_mem(const MemOptions& o) {
    MemoryOptions mo;
    mo.n_ctx = o.ctx;
    mo.n_batch = o.batch;
    mo.n_ubatch = o.ubatch;
    mo.n_seq = o.parallel;
    mo.kv_unified = o.unified;
    mo.type_k = cache_type("--cache-type-k", o.type_k);
    mo.type_v = cache_type("--cache-type-v", o.type_v);
    if (o.flash_attn != "on" && o.flash_attn != "off" && o.flash_attn != "auto")
        throw CLI::ValidationError("--flash-attn", fmt::format("'{}' is not on, off or auto", o.flash_attn));
    mo.flash_attn = o.flash_attn != "off";  // auto: on, as llama.cpp settles it on a CPU
    mo.swa_full = o.swa_full;
    mo.mmap = !o.no_mmap;
    mo.embeddings = o.embeddings;
#if defined(__x86_64__) || defined(__i386__)
    if (!o.no_repack) {  // ggml's CPU backend repacks only for these on x86
        __builtin_cpu_init();
        mo.repack_avx2 = __builtin_cpu_supports("avx2");
        mo.repack_avx512 = __builtin_cpu_supports("avx512f");
    }
#endif
    if (!mo.flash_attn && mo.type_v != TypeId::F16 && mo.type_v != TypeId::F32 && mo.type_v != TypeId::BF16)
        throw CLI::ValidationError("--cache-type-v", "a quantized V cache needs flash attention (llama.cpp refuses it with -fa off)");
    const Model m = Model::open(o.model);
    MemoryEstimate e;
    try {
        e = estimate_memory(m, mo);
    } catch (const std::invalid_argument& x) {
        throw std::runtime_error(fmt::format("{}: {}", o.model, x.what()));
    }
    if (o.json) print_json(e, o, m);
    else print_text(e, o);
    report_transfer(m);
    return 0;
}

}  // namespace

void add_mem(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<MemOptions>();
    CLI::App* c = app.add_subcommand("mem", "The memory llama.cpp needs to run a model on the CPU: weights, KV cache, recurrent state,\n"
                                            "output and compute buffers (the compute buffer estimated; spec/memory.md)\n"
                                            "  gguf mem MODEL [-c N] [-b N] [-ub N] [-ctk TYPE] [-ctv TYPE] [-np N] [--json]\n"
                                            "llama.cpp's short forms -ub, -ctk, -ctv, -np, -kvu, -fa and -nr work too.");
    c->add_option("model", o->model, "GGUF model, or any part of a split set; a .gguf.zst or an http(s):// URL too (only the header is read)")->required();
    c->add_option("-c,--ctx-size", o->ctx, "Context size in tokens; 0: the model's context_length (default 4096, as llama.cpp's tools)");
    c->add_option("-b,--batch-size", o->batch, "Logical batch size (default 2048)")->check(CLI::Range(1u, 1u << 30));
    c->add_option("--ubatch-size", o->ubatch, "Physical batch size: what the compute buffer is sized for (default 512)")->check(CLI::Range(1u, 1u << 30));
    c->add_option("--cache-type-k", o->type_k, "KV cache type for K: f16 (default), f32, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1");
    c->add_option("--cache-type-v", o->type_v, "KV cache type for V (the same choices)");
    c->add_option("--parallel", o->parallel, "Sequences decoded together (default 1)")->check(CLI::Range(1u, 65536u));
    c->add_flag("--kv-unified", o->unified, "One KV cache shared by all sequences");
    c->add_option("--flash-attn", o->flash_attn, "on, off or auto (default; on for a CPU)");
    c->add_flag("--swa-full", o->swa_full, "Full-size caches for sliding-window layers");
    c->add_flag("--no-mmap", o->no_mmap, "Weights read into memory rather than mapped");
    c->add_flag("--no-repack", o->no_repack, "No weight repacking (by default, done as this machine's CPU allows)");
    c->add_flag("--embeddings", o->embeddings, "The output buffer also holds embeddings");
    c->add_flag("--layers", o->layers, "Also list each layer's cache");
    c->add_flag("--json", o->json, "Print JSON (spec/mem-json.md)");
    add_header_option(c);
    c->callback([o, &run] { run = [o] { return run_mem(*o); }; });
}

}  // namespace gguf::tools
