// KL-divergence base files (infer/kld_base.h): saving BASE's logits and comparing a model
// against them gives the one-run figures bit for bit; every refusal names the file and what
// is wrong; a failed save leaves nothing behind.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fixtures.h"
#include "gguf/model.h"
#include "gguf/writer.h"
#include "infer/forward.h"
#include "infer/kld_base.h"
#include "infer/perplexity.h"
#include "support.h"

namespace {

using gguf::OwnedValue;

// A demo model held in memory, opened for the forward pass.
struct Demo {
    std::vector<uint8_t> bytes;
    std::unique_ptr<gguf::Model> file;
    std::unique_ptr<infer::Model> model;
    explicit Demo(const gguf::fixtures::DemoOptions& o, const std::string& name) : bytes(gguf::fixtures::demo_model(o).write_to_memory()) {
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(bytes, name));
        file = std::make_unique<gguf::Model>(gguf::Model::from_parts(std::move(parts)));
        model = std::make_unique<infer::Model>(*file);
    }
};

const Demo& base_demo() {
    static const Demo d({}, "demo-f16.gguf");
    return d;
}
const Demo& mixed_demo() {
    static const Demo d(gguf::fixtures::mixed_demo_options(), "demo-mixed.gguf");
    return d;
}

// Ids spread over the vocabulary, not periodic within a chunk.
std::vector<int32_t> text_tokens(size_t n, uint32_t n_vocab) {
    std::vector<int32_t> t;
    uint64_t s = 99;
    for (size_t i = 0; i < n; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        t.push_back(static_cast<int32_t>((s >> 33) % n_vocab));
    }
    return t;
}

infer::KldOptions options(uint32_t n_ctx, infer::Arithmetic a = infer::Arithmetic::F32, uint32_t max_chunks = 0) {
    infer::KldOptions o;
    o.n_ctx = n_ctx;
    o.max_chunks = max_chunks;
    o.eval = {a, 0};
    return o;
}

infer::KldBaseDestination to(const std::filesystem::path& path) { return {path, "ggufkit-demo", "demo-f16.gguf", "some text"}; }

// Every figure of a summary, named, so that a difference says which.
std::vector<std::pair<const char*, double>> fields(const infer::KldSummary& s) {
    return {{"ppl", s.ppl.value}, {"ppl±", s.ppl.uncertainty}, {"ppl_base", s.ppl_base.value}, {"ppl_base±", s.ppl_base.uncertainty},
            {"ln_ratio", s.ln_ratio.value}, {"ln_ratio±", s.ln_ratio.uncertainty}, {"ratio", s.ratio.value}, {"ratio±", s.ratio.uncertainty},
            {"difference", s.difference.value}, {"difference±", s.difference.uncertainty}, {"correlation", s.correlation},
            {"kld", s.kld.value}, {"kld±", s.kld.uncertainty}, {"kld_max", s.kld_max}, {"kld_min", s.kld_min}, {"kld_median", s.kld_median},
            {"kld_p999", s.kld_p999}, {"kld_p99", s.kld_p99}, {"kld_p95", s.kld_p95}, {"kld_p90", s.kld_p90}, {"kld_p10", s.kld_p10},
            {"kld_p05", s.kld_p05}, {"kld_p01", s.kld_p01}, {"kld_p001", s.kld_p001}, {"p_diff_mean", s.p_diff_mean.value},
            {"p_diff_mean±", s.p_diff_mean.uncertainty}, {"p_diff_rms", s.p_diff_rms.value}, {"p_diff_rms±", s.p_diff_rms.uncertainty},
            {"p_diff_max", s.p_diff_max}, {"p_diff_min", s.p_diff_min}, {"p_diff_median", s.p_diff_median}, {"p_diff_p999", s.p_diff_p999},
            {"p_diff_p99", s.p_diff_p99}, {"p_diff_p95", s.p_diff_p95}, {"p_diff_p90", s.p_diff_p90}, {"p_diff_p75", s.p_diff_p75},
            {"p_diff_p25", s.p_diff_p25}, {"p_diff_p10", s.p_diff_p10}, {"p_diff_p05", s.p_diff_p05}, {"p_diff_p01", s.p_diff_p01},
            {"p_diff_p001", s.p_diff_p001}, {"same_top", s.same_top.value}, {"same_top±", s.same_top.uncertainty},
            {"count", static_cast<double>(s.count)}};
}

// Bit for bit: every summary field, every per-chunk figure, every per-position value.
void check_identical(const infer::KldResult& want, const infer::KldResult& got) {
    CHECK(got.chunks == want.chunks);
    CHECK(got.tokens_evaluated == want.tokens_evaluated);
    const auto a = fields(infer::summarize(want.totals)), b = fields(infer::summarize(got.totals));
    for (size_t i = 0; i < a.size(); ++i) {
        CAPTURE(a[i].first);
        CHECK(std::memcmp(&a[i].second, &b[i].second, sizeof(double)) == 0);
    }
    CHECK(got.totals.kld_values == want.totals.kld_values);
    CHECK(got.totals.p_diff_values == want.totals.p_diff_values);
    REQUIRE(got.per_chunk.size() == want.per_chunk.size());
    for (size_t c = 0; c < want.per_chunk.size(); ++c) {
        CAPTURE(c);
        const auto x = fields(want.per_chunk[c]), y = fields(got.per_chunk[c]);
        for (size_t i = 0; i < x.size(); ++i) CHECK(std::memcmp(&x[i].second, &y[i].second, sizeof(double)) == 0);
    }
}

// A base file saved from the F16 demo: 3 chunks of 32 over 100 ids.
struct SavedBase {
    test::TempDir dir;
    std::filesystem::path path = dir / "base.kld";
    std::vector<int32_t> tokens = text_tokens(100, 320);
    SavedBase() { infer::save_kld_base(*base_demo().model, tokens, options(32), to(path)); }
    std::vector<uint8_t> bytes() const { return test::read_bytes(path); }
};

// `f` rewritten: keys set or removed, tensors replaced by name (data and shape), others copied.
struct TensorEdit {
    gguf::TypeId type;
    std::vector<uint64_t> shape;
    std::span<const uint8_t> data;
};
std::vector<uint8_t> rewrite(const gguf::File& f, const std::vector<std::pair<std::string, OwnedValue>>& set, const std::vector<std::string>& remove = {},
                             const std::map<std::string, TensorEdit>& tensors = {}, gguf::WriteOptions wo = {}) {
    gguf::Writer w(wo);
    for (const gguf::KeyValue& kv : f.kvs()) w.set(std::string(kv.key), kv.value);
    for (const auto& [k, v] : set) w.set(k, v);
    for (const std::string& k : remove) w.remove(k);
    for (const gguf::TensorInfo& t : f.tensors()) {
        if (const auto it = tensors.find(std::string(t.name)); it != tensors.end())
            w.add_tensor(std::string(t.name), it->second.type, it->second.shape, it->second.data);
        else
            w.add_tensor(std::string(t.name), t.type, std::vector<uint64_t>(t.dims().begin(), t.dims().end()), f.tensor_data(t));
    }
    return w.write_to_memory();
}

// Refused with a gguf::Error whose message starts with the file's name and says `message`.
void check_refused(const std::vector<uint8_t>& bytes, const std::string& message) {
    CAPTURE(message);
    try {
        infer::KldBaseReader::parse(bytes, "edited.kld");
        FAIL("accepted");
    } catch (const gguf::Error& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.starts_with("edited.kld: "));
        CHECK(what.find(message) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("a saved base reproduces the one-run KL divergence bit for bit (f32 and ggml arithmetic, a limited chunk count)") {
    const Demo& base = base_demo();
    const Demo& model = mixed_demo();
    const std::vector<int32_t> tokens = text_tokens(130, 320);  // 4 chunks of 32
    for (const infer::KldOptions& o : {options(32), options(32, infer::Arithmetic::Ggml), options(24, infer::Arithmetic::F32, 3)}) {
        CAPTURE(infer::arithmetic_name(o.eval.arithmetic));
        CAPTURE(o.n_ctx);
        test::TempDir dir;
        const infer::KldResult one_run = infer::kl_divergence(*base.model, *model.model, tokens, o);
        REQUIRE(one_run.totals.count > 0);
        CHECK(one_run.totals.sum_kld > 0);  // the mixed model differs: the comparison says something

        // Saving while comparing changes nothing in the comparison.
        const infer::KldResult saving = infer::kl_divergence(*base.model, *model.model, tokens, o, to(dir / "while.kld"));
        check_identical(one_run, saving);
        CHECK(saving.memory_base.mapped_weights == one_run.memory_base.mapped_weights);

        // BASE alone: its perplexity as perplexity() gives it, and the same file.
        const infer::PerplexityResult alone = infer::save_kld_base(*base.model, tokens, o, to(dir / "alone.kld"));
        const infer::PerplexityResult ppl = infer::perplexity(*base.model, tokens, {o.n_ctx, o.max_chunks, o.eval});
        CHECK(alone.nll.sum == ppl.nll.sum);
        CHECK(alone.nll.count == ppl.nll.count);
        CHECK(alone.running_ppl == ppl.running_ppl);
        CHECK(test::read_bytes(dir / "alone.kld") == test::read_bytes(dir / "while.kld"));

        // MODEL against the file.
        const infer::KldBaseReader reader = infer::KldBaseReader::open(dir / "alone.kld");
        CHECK(reader.info().n_ctx == o.n_ctx);
        CHECK(reader.info().chunks == one_run.chunks);
        CHECK(reader.info().n_vocab == 320);
        CHECK(reader.info().arithmetic == o.eval.arithmetic);
        CHECK(reader.info().base_name == "ggufkit-demo");
        CHECK(reader.info().base_path == "demo-f16.gguf");
        CHECK(reader.info().text == "some text");
        std::vector<uint32_t> progress;
        const infer::KldResult from_file = infer::kl_divergence(reader, *model.model, tokens, o, [&](uint32_t done, uint32_t total, double) {
            progress.push_back(done);
            CHECK(total == one_run.chunks);
        });
        check_identical(one_run, from_file);
        CHECK(progress.size() == one_run.chunks);
        CHECK(from_file.memory_base.mapped_weights == 0);  // no base evaluated
        std::printf("kld base file (%s, n_ctx %u, %u chunks): %llu bytes; mean KLD %.6g both ways\n",
                    std::string(infer::arithmetic_name(o.eval.arithmetic)).c_str(), o.n_ctx, one_run.chunks,
                    static_cast<unsigned long long>(reader.file_size()), infer::summarize(from_file.totals).kld.value);
    }
}

TEST_CASE("a base file holds the evaluated ids and BASE's raw logits, laid out as spec/kld-base.md says") {
    const SavedBase saved;
    const infer::KldBaseReader r = infer::KldBaseReader::open(saved.path);
    REQUIRE(r.info().chunks == 3);
    CHECK(r.info().scored_per_chunk() == 15);
    CHECK(r.file_size() == std::filesystem::file_size(saved.path));
    const gguf::File f = gguf::File::open(saved.path);
    CHECK(f.find("general.type")->value.str() == "kld-base");
    CHECK(f.find("kld.format_version")->value.u32() == infer::kKldBaseFormatVersion);
    CHECK(f.find("kld.first_scored_position")->value.u32() == 16);
    CHECK(f.find("kld.arithmetic")->value.str() == "f32");
    // Chunk 1's ids are the text's, BOS in place of the first where the vocabulary adds one.
    const infer::Config& c = base_demo().model->config();
    const std::span<const int32_t> ids = r.chunk_ids(1);
    for (uint32_t p = 1; p < 32; ++p) CHECK(ids[p] == saved.tokens[32 + p]);
    CHECK(ids[0] == (c.add_bos ? *c.bos : saved.tokens[32]));
    // Its logits are BASE's at positions 16 ... 30, exactly.
    infer::Context ctx(*base_demo().model, 32);
    std::vector<float> logits(size_t{16} * 320);
    ctx.eval(ids, logits, 16);
    const std::span<const float> stored = r.chunk_logits(1);
    REQUIRE(stored.size() == size_t{15} * 320);
    CHECK(std::equal(stored.begin(), stored.end(), logits.begin()));
    r.release_chunk(1);  // advice only: the bytes read back the same
    CHECK(std::equal(stored.begin(), stored.end(), logits.begin()));
    CHECK_THROWS_AS(r.chunk_logits(3), std::out_of_range);
}

TEST_CASE("a base file is refused naming the file: not GGUF, not a base file, another version, bad keys, sizes that disagree") {
    const SavedBase saved;
    const std::vector<uint8_t> good = saved.bytes();
    const gguf::File f = gguf::File::parse(good, "base.kld");
    CHECK_NOTHROW(infer::KldBaseReader::parse(good, "edited.kld"));

    const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'};
    check_refused(text, "offset 0: not a GGUF file");
    check_refused(std::vector<uint8_t>(good.begin(), good.begin() + 400), "");  // truncated in the header: the GGUF reader's error
    check_refused(std::vector<uint8_t>(good.begin(), good.end() - 100), "");    // truncated in the logits
    check_refused(base_demo().bytes, "not a KL-divergence base file: it has no kld.format_version key (it looks like a model)");
    check_refused(rewrite(f, {{"general.type", OwnedValue::string("imatrix")}}, {"kld.format_version"}),
                  "no kld.format_version key (its general.type is 'imatrix')");
    check_refused(rewrite(f, {{"kld.format_version", OwnedValue::u32(2)}}), "KL-divergence base format version 2; this build reads version 1");
    check_refused(rewrite(f, {{"kld.format_version", OwnedValue::string("1")}}), "kld.format_version is a str, not a u32");
    check_refused(rewrite(f, {}, {"kld.vocab_size"}), "the key kld.vocab_size is missing");
    check_refused(rewrite(f, {{"kld.context_size", OwnedValue::u64(32)}}), "the key kld.context_size is a u64, not a u32");
    check_refused(rewrite(f, {{"kld.arithmetic", OwnedValue::string("f16")}}), "kld.arithmetic is 'f16', not 'f32' or 'ggml'");
    check_refused(rewrite(f, {{"kld.first_scored_position", OwnedValue::u32(0)}}), "kld.first_scored_position is 0");
    check_refused(rewrite(f, {{"kld.chunk_count", OwnedValue::u32(4)}}), "the tensor kld.tokens is i32 [32, 3]; the keys");
    check_refused(rewrite(f, {{"kld.vocab_size", OwnedValue::u32(321)}}), "the tensor kld.logits is f32 [320, 15, 3]; the keys");
    check_refused(rewrite(f, {{"kld.context_size", OwnedValue::u32(2)}}), "nothing scored");
    check_refused(rewrite(f, {}, {}, {{"kld.tokens", {gguf::TypeId::F32, {32, 3}, f.tensor_data(*f.find_tensor("kld.tokens"))}}}),
                  "the tensor kld.tokens is f32 [32, 3]; the keys (kld.vocab_size, kld.context_size, kld.chunk_count) make it i32 [32, 3]");
    {
        // A tensor left out: rebuilt without kld.logits.
        gguf::Writer w;
        for (const gguf::KeyValue& kv : f.kvs()) w.set(std::string(kv.key), kv.value);
        const gguf::TensorInfo& t = *f.find_tensor("kld.tokens");
        w.add_tensor("kld.tokens", t.type, {32, 3}, f.tensor_data(t));
        check_refused(w.write_to_memory(), "the tensor kld.logits is missing");
    }
    check_refused(rewrite(f, {}, {}, {}, {3, true}), "a big-endian file");
    CHECK_THROWS_WITH_AS(infer::KldBaseReader::open(saved.dir / "absent.kld"), doctest::Contains("absent.kld"), gguf::Error);
}

TEST_CASE("comparing against a base file refuses another n_ctx, arithmetic, vocabulary, more chunks and other tokens, naming the file") {
    const SavedBase saved;
    const infer::KldBaseReader r = infer::KldBaseReader::open(saved.path);
    const infer::Model& model = *mixed_demo().model;
    const std::string file = saved.path.string() + ": ";
    const auto refused = [&](const std::vector<int32_t>& tokens, const infer::KldOptions& o, const std::string& message) {
        CAPTURE(message);
        CHECK_THROWS_WITH_AS(infer::kl_divergence(r, model, tokens, o), doctest::Contains(doctest::String((file + message).c_str())),
                             std::invalid_argument);
    };
    CHECK_NOTHROW(infer::kl_divergence(r, model, saved.tokens, options(32)));
    CHECK_NOTHROW(infer::kl_divergence(r, model, saved.tokens, options(32, infer::Arithmetic::F32, 2)));  // fewer chunks: a prefix
    refused(saved.tokens, options(24), "the base was saved with chunks of 32 tokens (n_ctx); this run asks for 24");
    refused(saved.tokens, options(32, infer::Arithmetic::Ggml), "the base was evaluated with f32 arithmetic; this run asks for ggml");
    refused(text_tokens(140, 320), options(32), "it holds 3 chunks; this run asks for 4 (3 at most)");
    std::vector<int32_t> other = saved.tokens;
    other[2 * 32 + 17] = (other[2 * 32 + 17] + 1) % 320;
    refused(other, options(32), "the text's tokens differ from the saved ones in chunk 3 at position 17");
    // A model with another vocabulary size.
    gguf::fixtures::DemoOptions wide;
    wide.n_vocab = 400;
    const Demo other_vocab(wide, "demo-400.gguf");
    CHECK_THROWS_WITH_AS(infer::kl_divergence(r, *other_vocab.model, saved.tokens, options(32)),
                         doctest::Contains(doctest::String((file + "the base's vocabulary has 320 tokens, the model's 400").c_str())),
                         std::invalid_argument);
}

TEST_CASE("a failed save leaves no file: the evaluation throwing, too few or too many chunks, logits of the wrong size") {
    test::TempDir dir;
    const std::filesystem::path path = dir / "base.kld";
    infer::KldBaseInfo info;
    info.n_ctx = 8;
    info.chunks = 2;
    info.n_vocab = 5;
    const infer::KldBaseWriter w(info, std::vector<int32_t>(16, 1));
    const std::vector<float> chunk(size_t{3} * 5, 0.5f);
    const auto nothing_left = [&] { return std::filesystem::is_empty(dir.path()); };
    CHECK_THROWS_WITH(w.write(path, [&](infer::KldBaseWriter::Chunks& out) { out.append(chunk); }), doctest::Contains("1 of 2 chunks appended"));
    CHECK(nothing_left());
    CHECK_THROWS_WITH(w.write(path,
                              [&](infer::KldBaseWriter::Chunks& out) {
                                  for (int i = 0; i < 3; ++i) out.append(chunk);
                              }),
                      doctest::Contains("chunk 3 appended to a file of 2 chunks"));
    CHECK(nothing_left());
    CHECK_THROWS_WITH(w.write(path, [&](infer::KldBaseWriter::Chunks& out) { out.append(std::span(chunk).first(10)); }),
                      doctest::Contains("chunk 1 has 10 logits, 3 x 5 expected"));
    CHECK(nothing_left());
    CHECK_THROWS_WITH(w.write(path,
                              [&](infer::KldBaseWriter::Chunks& out) {
                                  out.append(chunk);
                                  throw std::runtime_error("the evaluation failed");
                              }),
                      "the evaluation failed");
    CHECK(nothing_left());
    // The chunks stream into a temporary file beside the target while they are produced.
    w.write(path, [&](infer::KldBaseWriter::Chunks& out) {
        out.append(chunk);
        CHECK(!std::filesystem::exists(path));
        CHECK(!nothing_left());
        out.append(chunk);
    });
    CHECK(infer::KldBaseReader::open(path).chunk_logits(1)[14] == 0.5f);
    CHECK_THROWS_AS(infer::KldBaseWriter(info, std::vector<int32_t>(15, 1)), std::invalid_argument);
    info.n_ctx = 2;
    CHECK_THROWS_WITH_AS(infer::KldBaseWriter(info, std::vector<int32_t>(4, 1)), doctest::Contains("scores no position"), std::invalid_argument);
}
