// gguf mem's arithmetic (gguf/memory.h): llama.cpp's own figures for the 984 MB llama shape
// quantized to Q4_K_M, and the formulas of spec/memory.md worked by hand in each test for
// grouped-query attention, sliding windows, parallel sequences, quantized caches, recurrent
// and hybrid models and multi-head latent attention.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "gguf/error.h"
#include "gguf/memory.h"
#include "gguf/summary.h"
#include "gguf/writer.h"
#include "requant/plan.h"
#include "support.h"

using namespace gguf;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t pad32(uint64_t n) { return (n + 31) / 32 * 32; }

struct Planned {
    std::string name;
    TypeId type;
    std::vector<uint64_t> shape;
};

// A file with this header and tensor infos whose data section is a hole: the sizes are real,
// the bytes never written (memory estimates read only the header).
void write_sparse(const std::filesystem::path& path, Writer& w, const std::vector<Planned>& tensors) {
    uint64_t data = 0;
    for (const Planned& t : tensors) {
        uint64_t n = 1;
        for (uint64_t d : t.shape) n *= d;
        const uint64_t bytes = tensor_bytes(t.type, n);
        w.add_tensor(t.name, t.type, t.shape, [](ByteSink&) {});
        data += pad32(bytes);
    }
    const std::vector<uint8_t> header = w.header();
    const uint64_t start = pad32(header.size());
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    }
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(start + data)) == 0);
}

struct LlamaShape {
    uint32_t layers = 8, embd = 2048, ff = 5632, heads = 16, heads_kv = 4, vocab = 32000;
};

// The 984 MB llama shape (llama.cpp's figures in the issue) in llama.cpp's Q4_K_M types, in
// the order llama.cpp's quantizer writes: tensors outside the blocks, then block by block.
std::vector<Planned> q4_k_m_tensors(const LlamaShape& s) {
    std::vector<TensorInfo> infos;
    std::vector<std::string> names;
    std::vector<std::vector<uint64_t>> shapes;
    auto add = [&](std::string name, std::vector<uint64_t> shape) {
        names.push_back(std::move(name));
        shapes.push_back(std::move(shape));
    };
    add("token_embd.weight", {s.embd, s.vocab});
    add("output.weight", {s.embd, s.vocab});
    add("output_norm.weight", {s.embd});
    const uint64_t kv = uint64_t{s.embd} / s.heads * s.heads_kv;
    for (uint32_t l = 0; l < s.layers; ++l) {
        auto n = [l](const char* x) { return fmt::format("blk.{}.{}.weight", l, x); };
        add(n("attn_norm"), {s.embd});
        add(n("attn_q"), {s.embd, s.embd});
        add(n("attn_k"), {s.embd, kv});
        add(n("attn_v"), {s.embd, kv});
        add(n("attn_output"), {s.embd, s.embd});
        add(n("ffn_norm"), {s.embd});
        add(n("ffn_gate"), {s.embd, s.ff});
        add(n("ffn_up"), {s.embd, s.ff});
        add(n("ffn_down"), {s.ff, s.embd});
    }
    for (size_t i = 0; i < names.size(); ++i) {
        TensorInfo t;
        t.name = names[i];
        t.n_dims = static_cast<uint32_t>(shapes[i].size());
        t.n_elements = 1;
        for (size_t d = 0; d < shapes[i].size(); ++d) t.shape[d] = shapes[i][d], t.n_elements *= shapes[i][d];
        t.type = t.n_dims == 1 ? TypeId::F32 : TypeId::F16;
        t.n_bytes = tensor_bytes(t.type, t.n_elements);
        infos.push_back(t);
    }
    Hyperparameters h;
    h.arch = "llama";
    h.architecture = find_architecture("llama");
    h.n_layer = s.layers;
    h.n_embd = s.embd;
    h.n_ff = s.ff;
    h.n_head = s.heads;
    h.n_head_kv = s.heads_kv;
    requant::Options o;
    o.target = requant::find_target("Q4_K_M");
    std::vector<Planned> out;
    for (const requant::TensorPlan& p : requant::plan(h, infos, o))
        out.push_back({std::string(p.info->name), p.to, std::vector<uint64_t>(p.info->shape.begin(), p.info->shape.begin() + p.info->n_dims)});
    return out;
}

void llama_keys(Writer& w, const LlamaShape& s) {
    w.set("general.architecture", OwnedValue::string("llama"));
    w.set("llama.block_count", OwnedValue::u32(s.layers));
    w.set("llama.context_length", OwnedValue::u32(2048));
    w.set("llama.embedding_length", OwnedValue::u32(s.embd));
    w.set("llama.feed_forward_length", OwnedValue::u32(s.ff));
    w.set("llama.attention.head_count", OwnedValue::u32(s.heads));
    w.set("llama.attention.head_count_kv", OwnedValue::u32(s.heads_kv));
    w.set("llama.attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
    w.set("llama.vocab_size", OwnedValue::u32(s.vocab));
}

MemoryOptions cpu_with_avx512() {
    MemoryOptions o;
    o.repack_avx2 = o.repack_avx512 = true;
    return o;
}

// A header-only model: `keys` sets the metadata, one small f32 tensor keeps it a model.
template <class Keys> Model header_model(test::TempDir& dir, const std::string& name, Keys keys) {
    Writer w;
    keys(w);
    write_sparse(dir / name, w, {{"output_norm.weight", TypeId::F32, {64}}});
    return Model::open(dir / name);
}

}  // namespace

TEST_CASE("memory: llama.cpp's figures for the 984 MB llama shape in Q4_K_M at -c 4096 (KV and model exact, compute within 10%)") {
    test::TempDir dir;
    const LlamaShape s;
    const std::vector<Planned> tensors = q4_k_m_tensors(s);
    REQUIRE(tensors.back().name == "blk.7.ffn_up.weight");
    Writer w;
    llama_keys(w, s);
    write_sparse(dir / "llama-984m-Q4_K_M.gguf", w, tensors);
    const Model m = Model::open(dir / "llama-984m-Q4_K_M.gguf");

    const MemoryEstimate e = estimate_memory(m, cpu_with_avx512());
    // KV cache 64.00 MiB: K (f16) 32.00 MiB, V (f16) 32.00 MiB.
    CHECK(e.kv_cells == 4096);
    CHECK(e.kv_k == 32 * kMiB);
    CHECK(e.kv_v == 32 * kMiB);
    // Model: CPU_Mapped 286.25 MiB (the Q4_K matrices are repacked; the last tensor in the
    // file is one, so the mapped span stops before it).
    REQUIRE(!e.weights.empty());
    CHECK(e.weights[0].name == "CPU_Mapped");
    CHECK(fmt::format("{:.2f}", static_cast<double>(e.weights[0].bytes) / kMiB) == "286.25");
    uint64_t q4k = 0;
    for (const Planned& t : tensors)
        if (t.type == TypeId::Q4_K && t.name != "token_embd.weight") q4k += tensor_bytes(TypeId::Q4_K, t.shape[0] * t.shape[1]);
    REQUIRE(e.weights.size() == 2);
    CHECK(e.weights[1].name == "CPU_REPACK");
    CHECK(e.weights[1].bytes == q4k);
    // Output buffer 0.12 MiB: one row of 32000 f32 logits.
    CHECK(e.output == 32000 * 4);
    // Compute buffer 70.50 MiB, within 10%.
    const double compute = static_cast<double>(e.compute) / kMiB;
    CAPTURE(compute);
    CHECK(compute > 70.50 * 0.9);
    CHECK(compute < 70.50 * 1.1);

    // Without repacking, the mapped span is every tensor: the whole data section.
    const MemoryEstimate plain = estimate_memory(m, MemoryOptions{});
    REQUIRE(plain.weights.size() == 1);
    uint64_t all = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        uint64_t n = 1;
        for (uint64_t d : tensors[i].shape) n *= d;
        const uint64_t bytes = tensor_bytes(tensors[i].type, n);
        all += i + 1 < tensors.size() ? pad32(bytes) : bytes;
    }
    CHECK(plain.weights[0].bytes == all);
    uint64_t last = 1;
    for (uint64_t d : tensors.back().shape) last *= d;
    CHECK(e.weights[0].bytes == all - tensor_bytes(tensors.back().type, last));  // exactly: up to the end of blk.7.ffn_norm
    MemoryOptions no_mmap;
    no_mmap.mmap = false;
    const MemoryEstimate read = estimate_memory(m, no_mmap);
    REQUIRE(read.weights.size() == 1);
    CHECK(read.weights[0].name == "CPU");
    CHECK(read.weights[0].bytes == pad32(all));

    // The summary line: 8 layers x 512 K + 512 V values x 2 bytes per token.
    const KvPerToken k = kv_per_token(m);
    CHECK(k.full_bytes_per_token == 8 * 1024 * 2);
    CHECK(k.full_layers == 8);
    bool found = false;
    for (const Fact& f : facts(m, summarize(m)))
        if (f.label == "KV cache") {
            found = true;
            CHECK(f.value == "15.62 MiB per 1,000 tokens of context (f16, 8 layers)");
        }
    CHECK(found);
}

TEST_CASE("memory: context padding, parallel sequences, unified caches, quantized caches, the output buffer") {
    test::TempDir dir;
    const LlamaShape s{.layers = 3, .embd = 256, .ff = 512, .heads = 8, .heads_kv = 2, .vocab = 1000};
    const Model m = header_model(dir, "m.gguf", [&](Writer& w) { llama_keys(w, s); });
    const uint64_t kv_row = 256 / 8 * 2;  // 64 values of K (and of V) per token and layer

    MemoryOptions o;
    o.n_ctx = 1000;  // padded to 1024 cells
    MemoryEstimate e = estimate_memory(m, o);
    CHECK(e.n_ctx == 1024);
    CHECK(e.kv_k == 3 * 1024 * kv_row * 2);
    CHECK(e.kv_v == e.kv_k);
    CHECK(e.output == 1000 * 4);

    o.n_ctx = 0;  // the model's context_length: 2048
    CHECK(estimate_memory(m, o).n_ctx == 2048);

    // Four sequences, separate caches: 4096 / 4 = 1024 cells each, four streams.
    o.n_ctx = 4096;
    o.n_seq = 4;
    e = estimate_memory(m, o);
    CHECK(e.n_stream == 4);
    CHECK(e.n_ctx_seq == 1024);
    CHECK(e.kv_k == 3 * 1024 * 4 * kv_row * 2);
    CHECK(e.output == 4 * 1000 * 4);
    // 3000 / 4 = 750 cells a sequence, padded to 768: 3072 cells in all.
    o.n_ctx = 3000;
    CHECK(estimate_memory(m, o).n_ctx == 3072);
    o.n_ctx = 4096;
    o.kv_unified = true;
    e = estimate_memory(m, o);
    CHECK(e.n_stream == 1);
    CHECK(e.kv_cells == 4096);

    // q8_0 keys: 64 values are two blocks of 34 bytes; q4_0 values: two blocks of 18.
    o = MemoryOptions{};
    o.type_k = TypeId::Q8_0;
    o.type_v = TypeId::Q4_0;
    e = estimate_memory(m, o);
    CHECK(e.kv_k == 3 * 4096 * 68);
    CHECK(e.kv_v == 3 * 4096 * 36);
    o.embeddings = true;
    CHECK(estimate_memory(m, o).output == (1000 + 256) * 4);

    // More sequences than cells: each would get none.
    o = MemoryOptions{};
    o.n_ctx = 256;
    o.n_seq = 512;
    CHECK_THROWS_WITH_AS(estimate_memory(m, o), doctest::Contains("512 sequences cannot share a context of 256 cells"), std::invalid_argument);
    // A value past llama.cpp's 32 bits is refused naming the key, whatever its integer type.
    const Model huge = header_model(dir, "huge.gguf", [&](Writer& w) {
        llama_keys(w, s);
        w.set("llama.attention.head_count_kv", OwnedValue::u64(uint64_t{1} << 63));
    });
    CHECK_THROWS_WITH_AS(estimate_memory(huge, MemoryOptions{}), doctest::Contains("llama.attention.head_count_kv: is not an integer from 0 to 4294967295"), Error);
    const Model many = header_model(dir, "many.gguf", [&](Writer& w) {
        llama_keys(w, s);
        w.set("llama.block_count", OwnedValue::u64((uint64_t{1} << 32) + 1));
    });
    CHECK_THROWS_WITH_AS(estimate_memory(many, MemoryOptions{}), doctest::Contains("llama.block_count: is not an integer from 0"), Error);

    // A cache row that is not whole blocks is refused.
    const Model odd = header_model(dir, "odd.gguf", [&](Writer& w) {
        llama_keys(w, s);
        w.set("llama.attention.key_length", OwnedValue::u32(40));
    });
    o = MemoryOptions{};
    o.type_k = TypeId::Q8_0;
    CHECK_THROWS_AS(estimate_memory(odd, o), std::invalid_argument);
}

TEST_CASE("memory: per-layer head counts, sliding-window layers by the table, by the file's pattern, and --swa-full") {
    test::TempDir dir;
    // Gemma 2: every other layer slides (even ones), window 4096 unless the file says.
    const Model g2 = header_model(dir, "g2.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("gemma2"));
        w.set("gemma2.block_count", OwnedValue::u32(4));
        w.set("gemma2.context_length", OwnedValue::u32(8192));
        w.set("gemma2.embedding_length", OwnedValue::u32(512));
        w.set("gemma2.attention.head_count", OwnedValue::u32(8));
        w.set("gemma2.attention.head_count_kv", OwnedValue::numbers(ValueType::U32, std::vector<uint32_t>{4, 2, 4, 1}, OwnedValue::u32));
        w.set("gemma2.attention.key_length", OwnedValue::u32(128));
        w.set("gemma2.attention.value_length", OwnedValue::u32(128));
    });
    MemoryOptions o;
    o.n_ctx = 32768;
    MemoryEstimate e = estimate_memory(g2, o);
    CHECK(e.swa_window == 4096);
    CHECK(e.swa_cells == 4096 + 512);  // window + a batch, padded to 256
    REQUIRE(e.layers.size() == 4);
    CHECK(e.layers[0].cache == LayerCache::Sliding);
    CHECK(e.layers[1].cache == LayerCache::Full);
    CHECK(e.layers[2].cache == LayerCache::Sliding);
    CHECK(e.layers[3].cache == LayerCache::Full);
    const uint64_t k = (4 * 128 + 4 * 128) * 4608 * 2 + (2 * 128 + 1 * 128) * 32768 * 2;  // sliding layers 0 and 2, full 1 and 3
    CHECK(e.kv_k == k);
    CHECK(e.kv_v == k);
    CHECK(e.swa_k == (4 * 128 + 4 * 128) * 4608 * 2);
    o.swa_full = true;
    e = estimate_memory(g2, o);
    CHECK(e.swa_cells == 32768);
    // A short context caps the window's cache.
    o = MemoryOptions{};
    o.n_ctx = 2048;
    CHECK(estimate_memory(g2, o).swa_cells == 2048);

    // Gemma 3: five sliding layers of each six; the file's window; a bool array overrides.
    auto gemma3 = [&](const std::string& name, auto extra) {
        return header_model(dir, name, [&](Writer& w) {
            w.set("general.architecture", OwnedValue::string("gemma3"));
            w.set("gemma3.block_count", OwnedValue::u32(12));
            w.set("gemma3.context_length", OwnedValue::u32(8192));
            w.set("gemma3.embedding_length", OwnedValue::u32(256));
            w.set("gemma3.attention.head_count", OwnedValue::u32(4));
            w.set("gemma3.attention.head_count_kv", OwnedValue::u32(1));
            w.set("gemma3.attention.sliding_window", OwnedValue::u32(1024));
            extra(w);
        });
    };
    e = estimate_memory(gemma3("g3.gguf", [](Writer&) {}), MemoryOptions{});
    CHECK(e.layers_with(LayerCache::Sliding) == 10);
    CHECK(e.layers[5].cache == LayerCache::Full);
    CHECK(e.layers[11].cache == LayerCache::Full);
    CHECK(e.swa_cells == 1536);
    std::vector<uint8_t> pattern(12, 0);
    pattern[3] = 1;
    e = estimate_memory(gemma3("g3b.gguf", [&](Writer& w) {
        w.set("gemma3.attention.sliding_window_pattern", OwnedValue::numbers(ValueType::Bool, pattern, [](uint8_t b) { return OwnedValue::boolean(b != 0); }));
    }), MemoryOptions{});
    CHECK(e.layers_with(LayerCache::Sliding) == 1);
    CHECK(e.layers[3].cache == LayerCache::Sliding);
    e = estimate_memory(gemma3("g3c.gguf", [](Writer& w) { w.set("gemma3.attention.sliding_window_pattern", OwnedValue::u32(3)); }), MemoryOptions{});
    CHECK(e.layers_with(LayerCache::Sliding) == 8);
    // A stated window of 0: nothing slides.
    e = estimate_memory(gemma3("g3d.gguf", [](Writer& w) { w.set("gemma3.attention.sliding_window", OwnedValue::u32(0)); }), MemoryOptions{});
    CHECK(e.layers_with(LayerCache::Sliding) == 0);
    CHECK(e.swa_cells == 0);

    // A per-layer array of the wrong length is named.
    const Model bad = gemma3("bad.gguf", [](Writer& w) {
        w.set("gemma3.attention.head_count_kv", OwnedValue::numbers(ValueType::U32, std::vector<uint32_t>{1, 1, 1}, OwnedValue::u32));
    });
    CHECK_THROWS_WITH_AS(estimate_memory(bad, MemoryOptions{}), doctest::Contains("gemma3.attention.head_count_kv: has 3 elements for 12 blocks"), Error);
    // Gemma 3 without its window cannot be sized.
    const Model no_window = header_model(dir, "nw.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("gemma3"));
        w.set("gemma3.block_count", OwnedValue::u32(6));
        w.set("gemma3.embedding_length", OwnedValue::u32(256));
        w.set("gemma3.attention.head_count", OwnedValue::u32(4));
    });
    CHECK_THROWS_WITH_AS(estimate_memory(no_window, MemoryOptions{}), doctest::Contains("gemma3.attention.sliding_window is missing"), Error);
}

TEST_CASE("memory: recurrent states (Mamba), hybrids by head_count_kv (Jamba), multi-head latent attention (DeepSeek)") {
    test::TempDir dir;
    const Model mamba = header_model(dir, "mamba.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("mamba2"));
        w.set("mamba2.block_count", OwnedValue::u32(4));
        w.set("mamba2.context_length", OwnedValue::u32(1u << 20));
        w.set("mamba2.embedding_length", OwnedValue::u32(768));
        w.set("mamba2.ssm.conv_kernel", OwnedValue::u32(4));
        w.set("mamba2.ssm.inner_size", OwnedValue::u32(1536));
        w.set("mamba2.ssm.state_size", OwnedValue::u32(128));
        w.set("mamba2.ssm.group_count", OwnedValue::u32(1));
    });
    MemoryOptions o;
    o.n_seq = 2;
    MemoryEstimate e = estimate_memory(mamba, o);
    CHECK(e.kv_k + e.kv_v == 0);
    CHECK(e.rs_cells == 2);
    CHECK(e.rs_r == 4 * uint64_t{3 * (1536 + 2 * 1 * 128)} * 4 * 2);
    CHECK(e.rs_s == 4 * uint64_t{128 * 1536} * 4 * 2);
    CHECK(kv_per_token(mamba).recurrent_layers == 4);
    CHECK(kv_per_token(mamba).full_layers == 0);

    const Model jamba = header_model(dir, "jamba.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("jamba"));
        w.set("jamba.block_count", OwnedValue::u32(8));
        w.set("jamba.context_length", OwnedValue::u32(4096));
        w.set("jamba.embedding_length", OwnedValue::u32(512));
        w.set("jamba.attention.head_count", OwnedValue::u32(8));
        w.set("jamba.attention.head_count_kv", OwnedValue::numbers(ValueType::U32, std::vector<uint32_t>{0, 0, 0, 0, 2, 0, 0, 0}, OwnedValue::u32));
        w.set("jamba.ssm.conv_kernel", OwnedValue::u32(4));
        w.set("jamba.ssm.inner_size", OwnedValue::u32(1024));
        w.set("jamba.ssm.state_size", OwnedValue::u32(16));
    });
    e = estimate_memory(jamba, MemoryOptions{});
    CHECK(e.layers_with(LayerCache::Recurrent) == 7);
    // Without head_count_kv, it defaults to head_count as llama.cpp's does: every layer attends.
    const Model jamba_all = header_model(dir, "jamba-all.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("jamba"));
        w.set("jamba.block_count", OwnedValue::u32(2));
        w.set("jamba.embedding_length", OwnedValue::u32(512));
        w.set("jamba.attention.head_count", OwnedValue::u32(8));
    });
    CHECK(estimate_memory(jamba_all, MemoryOptions{}).layers_with(LayerCache::Full) == 2);
    CHECK(e.layers[4].cache == LayerCache::Full);
    CHECK(e.kv_k == uint64_t{2 * 64} * 4096 * 2);
    CHECK(e.rs_r == 7 * uint64_t{3 * 1024} * 4);
    CHECK(e.rs_s == 7 * uint64_t{16 * 1024} * 4);

    // DeepSeek with MLA: one head of 576 in K, nothing in V.
    const Model ds = header_model(dir, "ds.gguf", [](Writer& w) {
        w.set("general.architecture", OwnedValue::string("deepseek2"));
        w.set("deepseek2.block_count", OwnedValue::u32(3));
        w.set("deepseek2.context_length", OwnedValue::u32(4096));
        w.set("deepseek2.embedding_length", OwnedValue::u32(1024));
        w.set("deepseek2.attention.head_count", OwnedValue::u32(16));
        w.set("deepseek2.attention.head_count_kv", OwnedValue::u32(1));
        w.set("deepseek2.attention.key_length", OwnedValue::u32(576));
        w.set("deepseek2.attention.value_length", OwnedValue::u32(512));
        w.set("deepseek2.attention.key_length_mla", OwnedValue::u32(192));
        w.set("deepseek2.attention.value_length_mla", OwnedValue::u32(128));
    });
    e = estimate_memory(ds, MemoryOptions{});
    CHECK(e.kv_k == 3 * uint64_t{576} * 4096 * 2);
    CHECK(e.kv_v == 0);
}

TEST_CASE("memory: repacking follows the type, the row count and the instruction set; a shared embedding is repacked again as the output") {
    test::TempDir dir;
    Writer w;
    w.set("general.architecture", OwnedValue::string("llama"));
    w.set("llama.block_count", OwnedValue::u32(1));
    w.set("llama.context_length", OwnedValue::u32(256));
    w.set("llama.embedding_length", OwnedValue::u32(256));
    w.set("llama.attention.head_count", OwnedValue::u32(4));
    write_sparse(dir / "r.gguf", w,
                 {{"token_embd.weight", TypeId::Q4_0, {256, 64}},      // a lookup table: mapped; as the shared output: repacked
                  {"blk.0.attn_q.weight", TypeId::Q4_0, {256, 256}},   // repacked with AVX2
                  {"blk.0.attn_k.weight", TypeId::Q4_K, {256, 12}},    // 12 rows: not a multiple of 8, mapped
                  {"blk.0.attn_v.weight", TypeId::Q2_K, {256, 256}},   // repacked with AVX-512 only
                  {"blk.0.attn_output.weight", TypeId::Q8_0, {256, 256}}});  // never on x86
    const Model m = Model::open(dir / "r.gguf");
    auto repacked = [&](bool avx2, bool avx512) -> uint64_t {
        MemoryOptions o;
        o.repack_avx2 = avx2;
        o.repack_avx512 = avx512;
        for (const WeightBuffer& b : estimate_memory(m, o).weights)
            if (b.name == "CPU_REPACK") return b.bytes;
        return 0;
    };
    const uint64_t q4_0 = tensor_bytes(TypeId::Q4_0, 256 * 256), emb = tensor_bytes(TypeId::Q4_0, 256 * 64);
    const uint64_t q2_k = tensor_bytes(TypeId::Q2_K, 256 * 256);
    CHECK(repacked(false, false) == 0);
    CHECK(repacked(true, false) == q4_0 + emb);
    CHECK(repacked(true, true) == q4_0 + emb + q2_k);
}
