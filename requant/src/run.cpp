#include "requant/run.h"

#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <memory>
#include <stdexcept>

#include "gguf/names.h"
#include "gguf/writer.h"
#include "kernels/kernels.h"
#include "quant/executor.h"
#include "quant/imatrix.h"
#include "quant/quant.h"

namespace gguf::requant {

namespace {

// Values converted per step: the float buffer is 4 bytes each (16 MiB), so memory stays
// bounded whatever the model's size.
constexpr int64_t kChunkValues = int64_t{1} << 22;
// Values a thread converts and quantizes in one go (64 KiB of floats: a core's L2 holds them).
constexpr int64_t kCachedValues = int64_t{1} << 14;

// The importance weights a tensor may use: its imatrix entry, when --include-weights and
// --exclude-weights let it.
const std::vector<float>* weights_for(const quant::ImportanceMatrix* im, std::string_view name, const RunOptions& o) {
    if (!im) return nullptr;
    const std::string n(name);
    if (!o.include_weights.empty() &&
        std::none_of(o.include_weights.begin(), o.include_weights.end(), [&](const std::regex& r) { return std::regex_search(n, r); }))
        return nullptr;
    if (std::any_of(o.exclude_weights.begin(), o.exclude_weights.end(), [&](const std::regex& r) { return std::regex_search(n, r); }))
        return nullptr;
    return im->find(name);
}

Prepared prepare_with(const Model& m, const RunOptions& o, const quant::ImportanceMatrix* im) {
    Prepared p;
    size_t rescaled_tensors = 0;  // tensors --unbiased-scales changes
    size_t moved_tensors = 0;     // tensors whose scales move part of the way by default (--least-squares-scales changes them)
    Options opts = o.plan;
    opts.has_imatrix = im != nullptr;
    p.plan = plan(m, opts);
    for (const TensorPlan& t : p.plan) {
        const TensorInfo& info = *t.tensor->info;
        p.report.tensors++;
        p.report.elements += info.n_elements;
        p.report.bytes_in += info.n_bytes;
        p.report.bytes_out += tensor_bytes(t.to, info.n_elements);
        if (!t.fallback.empty()) p.report.fallbacks++;
        if (!t.convert()) continue;
        p.report.converted++;
        const std::string_view from = type_info(t.from).name, to = type_info(t.to).name;
        if (type_info(t.from).quantized && !o.allow_requantize)
            throw std::runtime_error(fmt::format("tensor '{}' is already quantized ({}); converting it to {} compounds the error. "
                                                 "Pass --allow-requantize to do it anyway", info.name, from, to));
        if (!kernels::can_dequantize(t.from)) throw std::runtime_error(fmt::format("tensor '{}': cannot read type {}", info.name, from));
        if (!quant::can_quantize(t.to)) throw std::runtime_error(fmt::format("tensor '{}': cannot write type {}", info.name, to));
        const std::vector<float>* w = weights_for(im, info.name, o);
        if (w && w->size() != info.shape[0] * info.shape[2]) {
            // llama.cpp ignores a token embedding's mismatch (importance tools never see its columns).
            if (!is_token_embedding(info.name))
                throw std::runtime_error(fmt::format("tensor '{}': the importance matrix has {} values for it, its {} columns x {} experts "
                                                     "need {}", info.name, w->size(), info.shape[0], info.shape[2],
                                                     info.shape[0] * info.shape[2]));
            w = nullptr;
        }
        if (!w && (t.requires_imatrix || quant::needs_importance(t.to)))
            throw std::runtime_error(fmt::format("tensor '{}' becomes {}, which needs an importance matrix{}", info.name, to,
                                                 im ? " entry for it, and the matrix has none" : " (--imatrix FILE)"));
        // Whether --effort changes how this tensor is quantized (quant::Effort).
        const quant::Traits& traits = *quant::traits(t.to);
        if ((o.effort == quant::Effort::Fast && traits.fast_changes[w ? 1 : 0]) || (o.effort == quant::Effort::Best && traits.best_changes[w ? 1 : 0]))
            ++p.report.effort_tensors;
        rescaled_tensors += quant::scale_fit_applies(t.to);
        moved_tensors += quant::default_scale_power(t.to) > 0;
    }
    if (o.scale_fit == quant::ScaleFit::LeastSquares && moved_tensors == 0)
        p.report.warnings.push_back("--least-squares-scales changes nothing here: no tensor becomes IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS or IQ2_S, "
                                    "the types whose scales move part of the way by default");
    if (o.scale_fit == quant::ScaleFit::Unbiased && rescaled_tensors == 0)
        p.report.warnings.push_back("--unbiased-scales changes nothing here: no tensor becomes a type with fitted f16 scales (the legacy, "
                                    "k-quant and i-quant types)");
    if (o.effort != quant::Effort::Default && p.report.effort_tensors == 0)
        p.report.warnings.push_back(fmt::format("--effort {} changes nothing here: no tensor becomes a type with that choice{}",
                                                quant::effort_name(o.effort),
                                                o.effort == quant::Effort::Fast
                                                    ? " (so far Q4_0, Q4_1, Q5_0 and Q5_1 without importance weights, where fast rounds as "
                                                      "llama.cpp does, and Q8_0 with or without them)"
                                                    : " (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, the grid i-quants IQ1_S to IQ3_S, and Q4_K "
                                                      "and Q5_K without importance weights: with them best is their default)"));
    if (!o.plan.prune_layers.empty()) {
        const Hyperparameters h = shape_of(m);
        for (const char* key : {"leading_dense_block_count", "nextn_predict_layers"})
            if (m.find(h.arch + "." + key))
                p.report.warnings.push_back(fmt::format("{}.{} counts blocks by position and is kept as it is; check it still holds "
                                                        "for the pruned model", h.arch, key));
    }
    if (im) {
        size_t unused = 0;
        for (const auto& [name, entry] : im->entries())
            if (!m.find_tensor(name)) {
                ++unused;
                p.report.warnings.push_back(fmt::format("the importance matrix's entry '{}' matches no tensor of the model; it is not used", name));
            }
        if (unused == im->size())
            p.report.warnings.insert(p.report.warnings.begin(),
                                      fmt::format("none of the importance matrix's {} entries matches a tensor of the model: it was made for "
                                                  "another model, and no tensor uses it", im->size()));
    }
    return p;
}

// Buffers reused from tensor to tensor, grown as needed and never zeroed (every byte used is
// written first): the values of one chunk, and two output chunks.
struct Workspace {
    std::unique_ptr<float[]> values;
    size_t values_size = 0;
    std::unique_ptr<uint8_t[]> out[2];
    size_t out_size[2] = {0, 0};

    float* floats(size_t n) {
        if (n > values_size) values.reset(new float[values_size = n]);
        return values.get();
    }
    uint8_t* bytes(int k, size_t n) {
        if (n > out_size[k]) out[k].reset(new uint8_t[out_size[k] = n]);
        return out[k].get();
    }
};

// Streams one converted tensor into `out`, chunk by chunk: the threads convert chunk k while
// a writer thread hands chunk k - 1 to `out` (two output buffers).
void convert(const Model& m, const TensorPlan& t, const std::vector<float>* weights, const RunOptions& o, Workspace& ws,
             ByteSink& out, const std::function<void(uint64_t)>& advanced) {
    const TensorInfo& info = *t.tensor->info;
    const std::span<const uint8_t> src = m.tensor_data(*t.tensor);
    const auto n_per_row = static_cast<int64_t>(info.shape[0]);
    const auto rows = static_cast<int64_t>(info.n_elements / info.shape[0]);
    const auto rows_per_expert = static_cast<int64_t>(info.shape[1]);  // importance differs by expert
    const uint64_t src_row = quant::row_bytes(t.from, n_per_row), dst_row = quant::row_bytes(t.to, n_per_row);
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(rows, kChunkValues / n_per_row));
    float* f = ws.floats(static_cast<size_t>(chunk * n_per_row));
    std::future<void> writing;  // the previous chunk's write; joined before its buffer is reused
    // Cache-sized groups of rows, handed out as threads become free: each group's floats are
    // quantized while still in cache, uneven rows balance, and a cancellation is seen
    // between groups. The rows are independent, so the bytes do not depend on the split.
    quant::RunOptions run;
    run.threads = o.threads;
    run.grain = std::max<int64_t>(1, kCachedValues / n_per_row);
    run.cancel = o.cancel;
    for (int64_t row = 0, k = 0; row < rows; ++k) {
        const int64_t expert = row / rows_per_expert;
        const int64_t n = std::min({chunk, rows - row, (expert + 1) * rows_per_expert - row});
        // The matrix holds one set of weights per expert (shape[2]); a 4-D tensor repeats them
        // over shape[3], as llama.cpp's quantizer reads them.
        const auto set = static_cast<size_t>(expert % static_cast<int64_t>(info.shape[2]));
        const std::span<const float> w = weights ? std::span<const float>(*weights).subspan(set * static_cast<size_t>(n_per_row), static_cast<size_t>(n_per_row))
                                                 : std::span<const float>();
        const std::span<uint8_t> buffer(ws.bytes(static_cast<int>(k % 2), static_cast<size_t>(chunk) * dst_row), static_cast<size_t>(n) * dst_row);
        const auto input = src.subspan(static_cast<size_t>(row * src_row), static_cast<size_t>(n) * src_row);
        try {
            quant::default_executor().run(n, [&](int64_t b, int64_t e) {
                const std::span<float> fb(f + b * n_per_row, static_cast<size_t>((e - b) * n_per_row));
                kernels::dequantize(t.from, input.subspan(static_cast<size_t>(b) * src_row, static_cast<size_t>(e - b) * src_row), fb);
                quant::quantize(t.to, fb, n_per_row, w,
                                buffer.subspan(static_cast<size_t>(b) * dst_row, static_cast<size_t>(e - b) * dst_row), row + b, o.effort, o.scale_fit);
            }, run);
        } catch (const std::invalid_argument& e) {  // a value that cannot be quantized: say where
            throw std::runtime_error(fmt::format("tensor '{}', {}", info.name, e.what()));
        }
        m.release_pages(*t.tensor, input);
        if (writing.valid()) writing.get();  // rethrows a failed write (a full disk)
        writing = std::async(std::launch::async, [&out, buffer] { out.write(buffer); });
        advanced(static_cast<uint64_t>(n) * src_row);
        row += n;
    }
    if (writing.valid()) writing.get();
    m.release_pages(*t.tensor, src);  // all of it: a .gguf.zst's frames straddle the chunks
}

// Copies a tensor as it is, in pieces so a cancellation is noticed.
void copy(const Model& m, const TensorPlan& t, const RunOptions& o, ByteSink& out, const std::function<void(uint64_t)>& advanced) {
    const std::span<const uint8_t> src = m.tensor_data(*t.tensor);
    constexpr size_t kPiece = size_t{64} << 20;
    for (size_t at = 0; at < src.size(); at += kPiece) {
        if (o.cancel && o.cancel->load()) throw quant::Cancelled();
        const auto piece = src.subspan(at, std::min(kPiece, src.size() - at));
        out.write(piece);
        m.release_pages(*t.tensor, piece);
        advanced(piece.size());
    }
    m.release_pages(*t.tensor, src);
}

}  // namespace

Prepared prepare(const Model& m, const RunOptions& o) {
    std::optional<quant::ImportanceMatrix> im;
    if (o.imatrix) im = quant::ImportanceMatrix::load(*o.imatrix);
    return prepare_with(m, o, im ? &*im : nullptr);
}

Report requantize(const std::filesystem::path& in, const std::filesystem::path& out, const RunOptions& o,
                   const std::function<void(const Progress&)>& progress) {
    refuse_overwrite(out, in);
    const Model m = Model::open(in);
    for (const File& part : m.parts()) refuse_overwrite(out, part.path());  // any part of a split input
    std::optional<quant::ImportanceMatrix> im;
    if (o.imatrix) im = quant::ImportanceMatrix::load(*o.imatrix);
    const Prepared p = prepare_with(m, o, im ? &*im : nullptr);
    const Target& target = *o.plan.target;

    // Metadata as llama.cpp's quantizer writes it: the model's keys, no split keys, then the
    // quantization version and file type moved to the end, the overrides, the imatrix's keys.
    WriteOptions write_options;
    write_options.direct_io = o.direct_io;
    Writer w(write_options);
    for (const KeyValue& kv : m.kvs())
        if (!kv.key.starts_with("split.")) w.set(std::string(kv.key), kv.value);
    const KeyValue* input_type = m.find("general.file_type");
    const uint32_t file_type = target.copy && input_type && input_type->value.type() == ValueType::U32 ? input_type->value.u32() : target.file_type;
    w.remove("general.quantization_version");
    w.set("general.quantization_version", OwnedValue::u32(2));
    w.remove("general.file_type");
    w.set("general.file_type", OwnedValue::u32(file_type));
    for (const auto& [key, value] : o.overrides) {
        w.remove(key);
        w.set(key, value);
    }
    if (im) {
        w.set("quantize.imatrix.file", OwnedValue::string(o.imatrix->filename().string()));
        if (!im->datasets.empty()) w.set("quantize.imatrix.dataset", OwnedValue::string(im->datasets.front()));
        w.set("quantize.imatrix.entries_count", OwnedValue::u32(static_cast<uint32_t>(im->size())));
        w.set("quantize.imatrix.chunks_count", OwnedValue::u32(im->chunk_count));
    }
    prune_metadata(w, m, o.plan.prune_layers);

    // One writer per output file: with keep_split, part i holds input part i's tensors in
    // their order there, part 0 the metadata, and every part the split keys.
    const auto parts = static_cast<uint32_t>(o.keep_split ? m.parts().size() : 1);
    std::vector<Writer> writers;
    writers.push_back(std::move(w));
    while (writers.size() < parts) writers.emplace_back(write_options);
    std::vector<const TensorPlan*> order;
    for (const TensorPlan& t : p.plan) order.push_back(&t);
    if (parts > 1)
        std::stable_sort(order.begin(), order.end(), [](const TensorPlan* a, const TensorPlan* b) {
            return a->tensor->part != b->tensor->part ? a->tensor->part < b->tensor->part : a->tensor->info->data_offset < b->tensor->info->data_offset;
        });

    uint64_t done = 0;
    Workspace ws;
    for (size_t i = 0; i < order.size(); ++i) {
        const TensorPlan& t = *order[i];
        const TensorInfo& info = *t.tensor->info;
        const std::vector<float>* weights = t.convert() ? weights_for(im ? &*im : nullptr, info.name, o) : nullptr;
        if (weights && weights->size() != info.shape[0] * info.shape[2]) weights = nullptr;  // an embedding (see prepare)
        auto advanced = [&, i](uint64_t bytes) {
            done += bytes;
            if (progress) progress({i + 1, order.size(), t.name, done, p.report.bytes_in});
        };
        writers[parts > 1 ? t.tensor->part : 0].add_tensor(t.name, t.to, {info.dims().begin(), info.dims().end()},
                     [&m, &t, weights, &o, &ws, advanced](ByteSink& sink) {
                         if (t.convert()) convert(m, t, weights, o, ws, sink, advanced);
                         else copy(m, t, o, sink, advanced);
                     });
    }
    Report report = p.report;
    if (parts == 1) {
        writers[0].write(out);
        report.outputs = {out};
        return report;
    }
    std::vector<std::filesystem::path> inputs;
    for (const File& f : m.parts()) inputs.emplace_back(f.path());
    report.outputs = write_split_set(writers, out, inputs);
    return report;
}

}  // namespace gguf::requant
