#include "convert.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "convert/convert.h"
#include "convert/safetensors.h"
#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/render.h"
#include "gguf/writer.h"
#include "options.h"
#include "quant/imatrix.h"

namespace gguf::tools {

namespace {

struct ConvertArgs {
    std::string folder, outfile, outtype = "auto", imatrix, effort = "default";
    std::vector<std::string> metadata;
    bool dry_run = false, vocab_only = false;
    int threads = 0;
    std::string split_max_size;
    uint32_t split_max_tensors = 0;
};

int run_convert(const ConvertArgs& a) {
    gguf::SplitLimits split;
    if (!a.split_max_size.empty()) split.max_bytes = parse_size(a.split_max_size, "--split-max-size");
    split.max_tensors = a.split_max_tensors;
    convert::ConvertOptions o;
    o.outtype = a.outtype;
    o.effort = parse_effort(a.effort);
    for (const std::string& m : a.metadata) o.extra_keys.push_back(parse_key_value(m, "--metadata"));
    if (a.vocab_only) {
        const convert::Plan p = convert::vocab_only_plan(a.folder, o);
        const std::string out = a.outfile.empty() ? (std::filesystem::path(a.folder) / (p.config.name + "-vocab.gguf")).string() : a.outfile;
        std::fprintf(stderr, "convert: %s: the vocabulary alone (%s) -> %s\n", a.folder.c_str(), p.tokenizer.c_str(), out.c_str());
        if (!a.dry_run) convert::write(p, out);
        return 0;
    }
    const convert::Checkpoint weights = convert::Checkpoint::open(a.folder);
    std::optional<quant::ImportanceMatrix> imatrix;
    if (!a.imatrix.empty()) {
        imatrix.emplace(quant::ImportanceMatrix::load(a.imatrix));
        o.imatrix = &*imatrix;
    }
    const convert::Plan p = convert::plan(a.folder, weights, o);
    std::string out = a.outfile;
    if (out.empty()) {
        std::string type = a.outtype == "auto" ? (p.file_type == 32 ? "BF16" : p.file_type == 0 ? "F32" : "F16") : a.outtype;
        for (char& ch : type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        out = (std::filesystem::path(a.folder) / (p.config.name + "-" + type + ".gguf")).string();
    }
    std::fprintf(stderr, "convert: %s (%s) -> %s: %s, %zu tensors from %zu safetensors file%s; tokenizer: %s\n", a.folder.c_str(),
                 p.config.architecture.c_str(), out.c_str(), p.arch.c_str(), p.tensors.size(), weights.files().size(),
                 weights.files().size() == 1 ? "" : "s", p.tokenizer.empty() ? "none in the folder (the file will have no vocabulary)" : p.tokenizer.c_str());
    // A quantized checkpoint: what it is, and whether its layers have an exact GGUF form.
    size_t imported = 0;
    std::map<std::string, size_t> exact_forms;  // "Q4_0" / "none" -> layers
    for (const convert::TensorPlan& t : p.tensors)
        if (!t.quantized.empty()) {
            ++imported;
            // What --outtype lossless writes.
            const std::optional<TypeId> exact = t.exact_blocks ? std::optional<TypeId>(t.type) : convert::lossless_type(t);
            ++exact_forms[exact ? std::string(type_info(*exact).name) : std::string("none (F32)")];
            for (const auto& q : t.quantized)
                for (const std::string& w : q->warnings()) std::fprintf(stderr, "convert: warning: %s\n", w.c_str());
            weights.release_pages();  // the scales and zeros just read
        }
    if (imported) {
        std::string forms;
        for (const auto& [form, n] : exact_forms) forms += fmt::format("{}{} x {}", forms.empty() ? "" : ", ", n, form);
        std::fprintf(stderr, "convert: quantized checkpoint: %s; %zu layers decoded exactly; lossless GGUF forms: %s%s\n", p.quantization.describe().c_str(),
                     imported, forms.c_str(),
                     a.outtype == "lossless" ? "" : exact_forms.count("none (F32)") == exact_forms.size() ? "" : " (--outtype lossless writes them without a second rounding)");
    }
    if (a.dry_run) {
        // The keys as gguf inspect shows them: written to a header in memory and read back.
        Writer header;
        for (const auto& [key, value] : p.keys) header.set(key, value);
        const std::vector<uint8_t> bytes = header.write_to_memory();
        const File keys = File::parse(bytes, "keys");
        for (const KeyValue& kv : keys.kvs()) std::printf("%-44s = %s\n", std::string(kv.key).c_str(), value_text(kv.value, 8).c_str());
        for (const convert::TensorPlan& t : p.tensors)
            std::printf("%-40s -> %-28s %-5s [%s]%s%s\n", t.source ? t.source->name.c_str() : "(computed)", t.name.c_str(), std::string(type_info(t.type).name).c_str(),
                        fmt::format("{}", fmt::join(t.shape, ", ")).c_str(), t.permute_heads ? "  (rows permuted for interleaved rotary)" : "",
                        t.quantized.empty() ? "" : fmt::format("  ({}{})", t.quantized[0]->kind(), t.exact_blocks ? ", exact blocks" : "").c_str());
        return 0;
    }
    for (const convert::SafetensorsFile& f : weights.files()) refuse_overwrite(out, f.path());
    std::vector<convert::ImportError> errors;
    const std::vector<std::filesystem::path> written = convert::write(
        p, out,
        [&](size_t done, size_t total) {
            std::fprintf(stderr, "\rconvert: %zu/%zu tensors", done, total);
            if (done == total) std::fprintf(stderr, "\n");
        },
        a.threads, split, &errors);
    // What the output type did to each imported layer: nothing (exact), or a second rounding.
    for (const convert::ImportError& e : errors) {
        if (e.exact)
            std::fprintf(stderr, "convert: %-28s %-22s -> %-5s exact (blocks written from the codes)\n", e.name.c_str(), e.kind.c_str(), std::string(type_info(e.type).name).c_str());
        else if (e.rmse == 0)
            std::fprintf(stderr, "convert: %-28s %-22s -> %-5s exact\n", e.name.c_str(), e.kind.c_str(), std::string(type_info(e.type).name).c_str());
        else
            std::fprintf(stderr, "convert: %-28s %-22s -> %-5s second rounding: RMSE %.4g (%.3g%% of the values' RMS), largest %.4g\n", e.name.c_str(), e.kind.c_str(),
                         std::string(type_info(e.type).name).c_str(), e.rmse, e.rms > 0 ? 100 * e.rmse / e.rms : 0.0, e.max_abs);
    }
    for (const std::filesystem::path& f : written) std::fprintf(stderr, "convert: wrote %s\n", f.c_str());
    return 0;
}

}  // namespace

void add_convert(CLI::App& app, std::function<int()>& run) {
    auto a = std::make_shared<ConvertArgs>();
    CLI::App* c = app.add_subcommand("convert", "Convert a Hugging Face checkpoint folder (config.json, safetensors) to GGUF, as llama.cpp's convert_hf_to_gguf.py does");
    c->add_option("model", a->folder, "The folder: config.json and model.safetensors (or shards with model.safetensors.index.json)")->required();
    c->add_option("-o,--outfile", a->outfile, "Output file (default: FOLDER/NAME-TYPE.gguf)");
    c->add_option("--outtype", a->outtype,
                  "f32, f16, bf16, q8_0 (every matrix of that type; q8_0 searches its scales, --effort fast rounds as llama.cpp's converter "
                  "does), auto (16-bit sources keep their "
                  "type, f32 becomes f16), lossless (a quantized checkpoint's layers in the GGUF type that holds their values exactly, "
                  "else F32; dense matrices keep their type), or any type or mix gguf requant knows (Q4_K_M, IQ4_XS, ...: llama.cpp's "
                  "per-tensor rules, quantized straight from the checkpoint)")
        ->capture_default_str();
    c->add_option("--imatrix", a->imatrix, "Importance matrix for the quantized types (either of llama.cpp's formats), as gguf requant takes it")
        ->type_name("FILE");
    c->add_option("--effort", a->effort, "How hard the quantizers search, as gguf requant --effort: fast, default or best")->capture_default_str();
    add_threads_option(c, a->threads, "-t,--threads");
    auto* split_size = c->add_option("--split-max-size", a->split_max_size,
                                     "Write a split set (llama-gguf-split's names and partition) of parts up to SIZE of tensor data (500M, 2G)")
                           ->type_name("SIZE");
    c->add_option("--split-max-tensors", a->split_max_tensors, "Write a split set of parts of at most N tensors")
        ->type_name("N")
        ->check(CLI::PositiveNumber)
        ->excludes(split_size);
    c->add_flag("--vocab-only", a->vocab_only, "Write the vocabulary alone (no tensors; the weights need not be there)");
    c->add_option("--metadata", a->metadata, "Set a key: KEY=TYPE:VALUE, TYPE int, float, bool or str (as gguf requant --override-kv); repeatable")
        ->type_name("KEY=TYPE:VALUE");
    c->add_flag("--dry-run", a->dry_run, "Print the metadata and the tensor map (Hugging Face name -> GGUF name, type, shape); write nothing");
    c->footer(fmt::format("Architectures: {}. Norms, biases and routers are written as F32; experts are stacked into 3-D tensors; llama/mistral Q and K rows are permuted to GGUF's "
                          "interleaved rotary pairs; tied embeddings write no output.weight. The tokenizer: byte-level BPE from tokenizer.json or SentencePiece from tokenizer.model, llama.cpp's keys. "
                          "Quantized checkpoints (quantization_config in config.json, or quantize_config.json) are decoded exactly: GPTQ (2/3/4/8 bits, v1/v2, act-order), "
                          "AWQ (GEMM, GEMV), bitsandbytes (NF4, FP4, double quantization, LLM.int8), FP8 (E4M3/E5M2, block/channel/tensor scales), compressed-tensors "
                          "(pack-quantized int4/int8, int8 W8A8, FP8); each imported layer's second rounding is reported.",
                          fmt::join(convert::supported_architectures(), ", ")));
    c->callback([a, &run] { run = [a] { return run_convert(*a); }; });
}

}  // namespace gguf::tools
