// A KL-divergence base file: BASE's logits at every scored position of a text, saved so that
// MODEL can be compared with BASE later without BASE in memory (`gguf kld BASE -f TEXT
// --save-base FILE`, then `gguf kld --base-logits FILE MODEL -f TEXT`). spec/kld-base.md is
// the format's page; in brief, a little-endian GGUF file with
//
//   general.type              string  "kld-base"
//   kld.format_version        u32     kKldBaseFormatVersion
//   kld.context_size          u32     n_ctx: tokens per chunk
//   kld.chunk_count           u32     chunks saved
//   kld.vocab_size            u32     n_vocab: logits per position
//   kld.first_scored_position u32     n_ctx / 2 (positions first ... n_ctx - 2 are scored)
//   kld.arithmetic            string  "f32" or "ggml": how BASE was evaluated
//   kld.base.name             string  BASE's general.name ("" when it has none)
//   kld.base.path             string  BASE's file as it was given
//   kld.text                  string  the text file as it was given ("" when unknown)
//
//   kld.tokens  I32 [n_ctx, chunks]                       each chunk's ids as evaluated (BOS in place)
//   kld.logits  F32 [n_vocab, n_ctx - 1 - first, chunks]  BASE's raw logits, row j predicting
//                                                         the token at first + j + 1
//
// Raw f32 logits, not rounded or renormalized, so a comparison against the file gives
// bit-identical figures to the one-run comparison of the same models.
//
// Writing streams: gguf::Writer pulls the logits tensor from a source that runs the
// evaluation, so one chunk's logits are in memory at a time and the file appears (temporary
// file, then rename) only when complete. Reading maps the file and hands out views into it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "infer/forward.h"
#include "infer/perplexity.h"

namespace infer {

inline constexpr uint32_t kKldBaseFormatVersion = 1;
inline constexpr std::string_view kKldBaseType = "kld-base";  // general.type

// What a base file records besides its tensors.
struct KldBaseInfo {
    uint32_t n_ctx = 0;
    uint32_t chunks = 0;
    uint32_t n_vocab = 0;
    Arithmetic arithmetic = Arithmetic::F32;
    std::string base_name, base_path, text;
    std::string products;  // where BASE's products ran (product_path()); "" in files without the key

    uint32_t first_scored() const { return n_ctx / 2; }
    uint32_t scored_per_chunk() const { return n_ctx - 1 - n_ctx / 2; }  // logits rows per chunk
    uint64_t logits_bytes() const { return uint64_t{chunks} * scored_per_chunk() * n_vocab * sizeof(float); }
};

// Writes a base file. The header and every chunk's ids are known before anything is
// evaluated; the logits are produced while the file is written:
//
//   KldBaseWriter w(info, ids);
//   w.write(path, [&](KldBaseWriter::Chunks& out) { for each chunk: out.append(its logits); });
//
// `produce` runs inside write(), between the header and the end of the file, and must call
// append() once per chunk, in order. Whatever it throws propagates, and nothing is left at
// `path` (nor a temporary file).
class KldBaseWriter {
public:
    // `ids`: chunks x n_ctx token ids, chunk after chunk. Throws std::invalid_argument when
    // the sizes disagree with `info`, or n_ctx < 3 (no position would be scored).
    KldBaseWriter(KldBaseInfo info, std::vector<int32_t> ids);

    class Chunks {
    public:
        // The next chunk's scored logits: scored_per_chunk() x n_vocab floats, row by row.
        // Throws std::invalid_argument for another size or a chunk past the last.
        void append(std::span<const float> logits);
        uint32_t appended() const { return appended_; }

    private:
        friend class KldBaseWriter;
        Chunks(const KldBaseInfo& info, gguf::ByteSink& out) : info_(info), out_(out) {}
        const KldBaseInfo& info_;
        gguf::ByteSink& out_;
        uint32_t appended_ = 0;
    };

    const KldBaseInfo& info() const { return info_; }
    void write(const std::filesystem::path& path, const std::function<void(Chunks&)>& produce) const;
    std::vector<uint8_t> write_to_memory(const std::function<void(Chunks&)>& produce) const;  // tests

private:
    gguf::Writer writer(const std::function<void(Chunks&)>& produce) const;
    KldBaseInfo info_;
    std::vector<int32_t> ids_;
};

// A base file, mapped. Every error is a gguf::Error naming the file: not a GGUF file (or a
// malformed one), not a base file (no kld.format_version), another format version, a
// missing or mistyped key, a big-endian file, tensors missing or of the wrong type or shape
// for the keys' sizes.
class KldBaseReader {
public:
    static KldBaseReader open(const std::filesystem::path& path);
    static KldBaseReader parse(std::span<const uint8_t> bytes, std::string name);  // tests

    const KldBaseInfo& info() const { return info_; }
    const std::string& path() const { return file_.path(); }
    uint64_t file_size() const { return file_.size(); }

    // Chunk i (0-based) as it was evaluated: n_ctx ids.
    std::span<const int32_t> chunk_ids(uint32_t i) const;
    // Chunk i's scored logits: scored_per_chunk() x n_vocab floats, views into the mapping.
    std::span<const float> chunk_logits(uint32_t i) const;
    // Done with chunk i's logits: their pages leave the resident set (gguf::File::release_pages),
    // so reading a file of gigabytes keeps memory flat. Advice only; chunk_logits(i) still works.
    void release_chunk(uint32_t i) const;

private:
    explicit KldBaseReader(gguf::File file);
    gguf::File file_;
    KldBaseInfo info_;
    const int32_t* ids_ = nullptr;
    const float* logits_ = nullptr;
};

// Where and under what names to save BASE's logits.
struct KldBaseDestination {
    std::filesystem::path path;
    std::string base_name, base_path, text;  // recorded as kld.base.name, kld.base.path, kld.text
};

// BASE alone over the chunks (as kl_divergence() cuts them), its logits saved to `to` as they
// are computed. Returns BASE's perplexity figures: what perplexity() gives for it.
PerplexityResult save_kld_base(const Model& base, std::span<const int32_t> tokens, const KldOptions& options,
                               const KldBaseDestination& to, const ChunkCallback& on_chunk = {});

// The one-run comparison, BASE's logits saved to `to` as they are computed; the figures are
// kl_divergence(base, model, ...)'s.
KldResult kl_divergence(const Model& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const KldBaseDestination& to, const ChunkCallback& on_chunk = {});

// MODEL against a base file: the figures are bit for bit those of the one-run comparison
// with the base file's BASE. BOS comes from MODEL's vocabulary. Throws std::invalid_argument,
// naming the file, before evaluating anything when options.n_ctx, the arithmetic or the
// vocabulary size differ from the file's, more chunks are asked than it holds, or a chunk's
// ids differ from the saved ones (the first differing chunk and position named).
// KldResult::memory_base is left empty (no base evaluated).
KldResult kl_divergence(const KldBaseReader& base, const Model& model, std::span<const int32_t> tokens, const KldOptions& options,
                        const ChunkCallback& on_chunk = {});

}  // namespace infer
