// Metadata checks: names, keys, tokenizer and architecture consistency.
#include <doctest/doctest.h>

#include <algorithm>

#include "fixtures.h"
#include "gguf/arch.h"
#include "gguf/check.h"
#include "gguf/writer.h"

using namespace gguf;

namespace {

// Findings for a file built by `build`, as "where: message" lines.
template <class Build> std::vector<std::string> findings_of(Build build) {
    Writer w;
    build(w);
    static std::vector<std::vector<uint8_t>> keep;  // File::parse views these bytes
    keep.push_back(w.write_to_memory());
    std::vector<File> parts;
    parts.push_back(File::parse(keep.back(), "planted.gguf"));
    std::vector<std::string> out;
    for (const Finding& f : check_metadata(Model::from_parts(std::move(parts))))
        out.push_back((f.severity == Finding::Severity::Error ? "error " : "warning ") + f.where + ": " + f.message);
    return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

const std::vector<uint8_t> kFour(4);

}  // namespace

TEST_CASE("the demo model's metadata is clean") {
    std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    std::vector<File> parts;
    parts.push_back(File::parse(bytes, "demo"));
    CHECK(check_metadata(Model::from_parts(std::move(parts))).empty());
}

TEST_CASE("bad tensor names and keys are reported") {
    auto f = findings_of([](Writer& w) {
        w.add_tensor("", TypeId::F32, {1}, kFour);
        w.add_tensor(std::string(64, 'n'), TypeId::F32, {1}, kFour);
        w.add_tensor("bad\xff", TypeId::F32, {1}, kFour);
        w.set("key\xc3\x28", OwnedValue::u32(1));
        w.set(std::string(70, 'k'), OwnedValue::u32(1));
    });
    CHECK(has(f, "error tensor #0: tensor name is empty"));
    CHECK(has(f, "error " + std::string(64, 'n') + ": tensor name is 64 bytes; llama.cpp allows 63"));
    CHECK(has(f, "error tensor #2: tensor name is not valid UTF-8"));
    CHECK(has(f, "error key at offset 24: key is not valid UTF-8"));
    CHECK(has(f, "warning " + std::string(70, 'k') + ": key is 70 bytes long"));
}

TEST_CASE("known keys with the wrong type, and tokenizer inconsistencies, are reported") {
    auto f = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::u32(7));
        w.set("general.file_type", OwnedValue::i32(1));
        w.set("tokenizer.ggml.tokens", OwnedValue::strings({"a", "b", "c"}));
        w.set("tokenizer.ggml.scores", OwnedValue::array(ValueType::F32, {OwnedValue::f32(0), OwnedValue::f32(0)}));
        w.set("tokenizer.ggml.token_type", OwnedValue::array(ValueType::I32, {OwnedValue::i32(1), OwnedValue::i32(9), OwnedValue::i32(1)}));
        w.set("tokenizer.ggml.bos_token_id", OwnedValue::u32(3));
        w.set("tokenizer.ggml.eos_token_id", OwnedValue::i32(1));
        w.set("tokenizer.ggml.add_bos_token", OwnedValue::u8(1));
    });
    CHECK(has(f, "error general.architecture: has type u32, expected str"));
    CHECK(has(f, "error general.file_type: has type i32, expected u32"));
    CHECK(has(f, "error tokenizer.ggml.scores: has 2 entries for 3 tokens"));
    CHECK(has(f, "error tokenizer.ggml.token_type: token 1 has type 9 (0 to 6 are defined)"));
    CHECK(has(f, "error tokenizer.ggml.bos_token_id: token id 3 is outside the 3-token vocabulary"));
    CHECK(has(f, "error tokenizer.ggml.eos_token_id: has type i32, expected u32"));
    CHECK(has(f, "error tokenizer.ggml.add_bos_token: has type u8, expected bool"));
}

TEST_CASE("architecture keys that disagree with the tensors are reported") {
    static const std::vector<uint8_t> embd(64 * 4 * 4);
    auto f = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::string("llama"));
        w.set("llama.block_count", OwnedValue::u32(3));
        w.set("llama.embedding_length", OwnedValue::u32(32));
        w.set("llama.attention.head_count", OwnedValue::u32(3));
        w.set("llama.attention.head_count_kv", OwnedValue::u32(2));
        w.add_tensor("token_embd.weight", TypeId::F32, {64, 4}, embd);
        w.add_tensor("blk.0.attn_norm.weight", TypeId::F32, {1}, kFour);
        w.add_tensor("blk.1.attn_norm.weight", TypeId::F32, {1}, kFour);
    });
    CHECK(has(f, "error llama.block_count: is 3, but the tensors go up to blk.1"));
    CHECK(has(f, "error llama.embedding_length: is 32, but token_embd.weight rows have 64 values"));
    CHECK(has(f, "error llama.attention.head_count: 3 does not divide embedding_length 32"));
    CHECK(has(f, "error llama.attention.head_count_kv: 2 does not divide head_count 3"));
}

TEST_CASE("what llama.cpp's converters write is not flagged: head_count 0, per-layer feed_forward_length, heads with key_length") {
    static const std::vector<uint8_t> embd(64 * 4 * 4);
    auto mamba = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::string("llama"));
        w.set("llama.embedding_length", OwnedValue::u32(64));
        w.set("llama.context_length", OwnedValue::u32(64));
        w.set("llama.block_count", OwnedValue::u32(0));
        w.set("llama.attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
        w.set("llama.attention.head_count", OwnedValue::u32(0));  // Mamba and RWKV converters write 0
        w.set("llama.attention.head_count_kv", OwnedValue::u32(0));
        w.set("llama.feed_forward_length", OwnedValue::array(ValueType::U32, {OwnedValue::u32(128), OwnedValue::u32(96)}));
        w.add_tensor("token_embd.weight", TypeId::F32, {64, 4}, embd);
    });
    CHECK(mamba.empty());
    auto glm = findings_of([](Writer& w) {  // 96 heads over a 4096 embedding in GLM-4.5-Air; key_length says the head size
        w.set("general.architecture", OwnedValue::string("llama"));
        w.set("llama.embedding_length", OwnedValue::u32(64));
        w.set("llama.context_length", OwnedValue::u32(64));
        w.set("llama.block_count", OwnedValue::u32(0));
        w.set("llama.attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
        w.set("llama.attention.head_count", OwnedValue::u32(3));
        w.set("llama.attention.head_count_kv", OwnedValue::u32(1));
        w.set("llama.attention.key_length", OwnedValue::u32(16));
        w.add_tensor("token_embd.weight", TypeId::F32, {64, 4}, embd);
    });
    CHECK(glm.empty());
}

TEST_CASE("a per-layer array with another length than block_count is an error (llama.cpp's loader refuses it)") {
    static const std::vector<uint8_t> embd(64 * 4 * 4);
    auto f = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::string("qwen3"));
        w.set("qwen3.embedding_length", OwnedValue::u32(64));
        w.set("qwen3.context_length", OwnedValue::u32(64));
        w.set("qwen3.block_count", OwnedValue::u32(3));
        w.set("qwen3.attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
        w.set("qwen3.attention.head_count", OwnedValue::u32(4));
        w.set("qwen3.attention.head_count_kv", OwnedValue::array(ValueType::U32, {OwnedValue::u32(2), OwnedValue::u32(2)}));
        w.set("qwen3.feed_forward_length", OwnedValue::array(ValueType::U32, {OwnedValue::u32(128), OwnedValue::u32(96), OwnedValue::u32(96)}));
    });
    REQUIRE(f.size() == 1);
    CHECK(f[0] == "error qwen3.attention.head_count_kv: has 2 elements for 3 blocks; llama.cpp refuses a per-layer array of another length");
}

TEST_CASE("a known architecture's required keys and each layer's tensors are checked against the architecture table") {
    static const std::vector<uint8_t> embd(64 * 4 * 4), square(64 * 64 * 4), ffn(64 * 64 * 4);
    auto f = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::string("qwen3"));
        w.set("qwen3.block_count", OwnedValue::u32(2));
        w.set("qwen3.embedding_length", OwnedValue::u32(64));
        w.add_tensor("token_embd.weight", TypeId::F32, {64, 4}, embd);
        for (const char* n : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
                              "blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_output.weight"})
            w.add_tensor(n, TypeId::F32, {64, 64}, square);
        w.add_tensor("blk.0.ffn_down.weight", TypeId::F32, {64, 64}, ffn);
        w.add_tensor("blk.1.ffn_down_exps.weight", TypeId::F32, {64, 64}, ffn);  // experts stand in for the dense one
    });
    CHECK(has(f, "error qwen3.context_length: is missing; llama.cpp cannot load a qwen3 model without it"));
    CHECK(has(f, "error qwen3.attention.layer_norm_rms_epsilon: is missing; llama.cpp cannot load a qwen3 model without it"));
    CHECK(has(f, "error blk.1.attn_v.weight: is missing: a qwen3 model needs every attention projection"));
    CHECK(f.size() == 3);
    // Falcon fuses q, k and v: one attn_qkv per layer is what it needs.
    auto falcon = findings_of([](Writer& w) {
        w.set("general.architecture", OwnedValue::string("falcon"));
        for (const char* k : {"falcon.block_count", "falcon.embedding_length", "falcon.context_length"}) w.set(k, OwnedValue::u32(1));
        w.set("falcon.attention.layer_norm_epsilon", OwnedValue::f32(1e-5f));
        w.add_tensor("token_embd.weight", TypeId::F32, {64, 4}, embd);
        w.add_tensor("blk.0.attn_output.weight", TypeId::F32, {64, 64}, square);
        w.add_tensor("blk.0.ffn_down.weight", TypeId::F32, {64, 64}, ffn);
    });
    REQUIRE(falcon.size() == 2);  // embedding_length 1 does not match token_embd, and no attn_qkv
    CHECK(has(falcon, "error blk.0.attn_qkv.weight: is missing: a falcon model needs the attention's q, k and v"));
}

TEST_CASE("the architecture table: tensor names parse into role and layer, and every architecture lists known kinds") {
    auto t = parse_tensor_name("blk.12.ffn_down_exps.weight");
    REQUIRE(t.has_value());
    CHECK(t->kind->role == TensorRole::FfnDownExps);
    CHECK(t->layer == 12u);
    CHECK(t->suffix == "weight");
    CHECK(parse_tensor_name("output_norm.bias")->kind->role == TensorRole::OutputNorm);
    CHECK_FALSE(parse_tensor_name("blk.-1.attn_q.weight").has_value());
    CHECK_FALSE(parse_tensor_name("blk.1x.attn_q.weight").has_value());
    CHECK_FALSE(parse_tensor_name("blk.1.attn_qq.weight").has_value());
    CHECK_FALSE(parse_tensor_name("attn_q.weight").has_value());  // a per-layer kind outside blk.N
    CHECK(tensor_name(TensorRole::AttnPostNorm, 3) == "blk.3.post_attention_norm.weight");
    CHECK(tensor_name(TensorRole::Output) == "output.weight");
    for (const TensorKind& k : all_tensor_kinds()) {
        CAPTURE(k.stem);
        const auto parsed = parse_tensor_name(tensor_name(k.role, k.per_layer ? std::optional<uint32_t>(5) : std::nullopt));
        REQUIRE(parsed.has_value());
        CHECK(parsed->kind == &k);
    }
    for (const char* a : {"llama", "qwen2", "qwen3", "gemma", "phi3", "falcon", "gpt2", "qwen2moe", "qwen3moe", "deepseek2"})
        CHECK(find_architecture(a) != nullptr);
    CHECK(hyper_key("qwen3", Hyper::HeadCountKv) == "qwen3.attention.head_count_kv");
}

TEST_CASE("hyperparameters are read one way: per-layer arrays as their first element, head_count_kv defaulting to head_count") {
    std::vector<std::vector<uint8_t>> keep;
    auto model = [&](auto build) {
        Writer w;
        w.set("general.architecture", OwnedValue::string("llama"));
        build(w);
        keep.push_back(w.write_to_memory());
        std::vector<File> parts;
        parts.push_back(File::parse(keep.back(), "m.gguf"));
        return Model::from_parts(std::move(parts));
    };
    Model a = model([](Writer& w) {
        w.set("llama.attention.head_count", OwnedValue::array(ValueType::U32, {OwnedValue::u32(32), OwnedValue::u32(16)}));
        w.set("llama.block_count", OwnedValue::u32(2));
        w.set("llama.expert_count", OwnedValue::u32(8));
    });
    Hyperparameters h = read_hyperparameters(a);
    CHECK(h.architecture == find_architecture("llama"));
    CHECK(h.n_head == 32);
    CHECK(h.n_head_kv == 32);
    CHECK(h.n_gqa() == 1);
    CHECK(h.n_layer == 2);
    CHECK(h.n_expert == 8);
    Model b = model([](Writer& w) {
        w.set("llama.attention.head_count", OwnedValue::u32(32));
        w.set("llama.attention.head_count_kv", OwnedValue::u32(8));
    });
    CHECK(read_hyperparameters(b).n_gqa() == 4);
}

TEST_CASE("valid_utf8 accepts well-formed text and refuses overlong forms, surrogates and stray bytes") {
    CHECK(valid_utf8("plain ascii"));
    CHECK(valid_utf8("na\xc3\xafve \xe2\x98\x83 \xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    CHECK_FALSE(valid_utf8("\xe2\x98"));          // cut short
    CHECK_FALSE(valid_utf8("\x80"));
}

namespace {

// Two f32 tensors of 4 values (16 bytes, each region padded to the alignment of 32), as a
// canonical writer lays them out.
std::vector<uint8_t> two_tensors() {
    static const std::vector<uint8_t> data(16);
    Writer w;
    w.add_tensor("first", TypeId::F32, {4}, data);
    w.add_tensor("second", TypeId::F32, {4}, data);
    return w.write_to_memory();
}

// Layout findings of `bytes`, as "where: message" lines.
std::vector<std::string> layout_findings(const std::vector<uint8_t>& bytes) {
    std::vector<std::string> out;
    for (const Finding& f : check_layout(File::parse(bytes, "layout.gguf")))
        out.push_back((f.severity == Finding::Severity::Error ? "error " : "warning ") + f.where + ": " + f.message);
    return out;
}

}  // namespace

TEST_CASE("a canonical layout has no layout findings") {
    CHECK(layout_findings(two_tensors()).empty());
}

TEST_CASE("bytes after the last tensor's padded data are a warning naming the file") {
    std::vector<uint8_t> bytes = two_tensors();
    bytes.resize(bytes.size() + 100);
    CHECK(layout_findings(bytes) == std::vector<std::string>{"warning layout.gguf: 100 bytes after the last tensor's padded data"});
}

TEST_CASE("a gap between tensor regions is a warning at the tensor after it") {
    std::vector<uint8_t> bytes = two_tensors();
    const File clean = File::parse(bytes, "clean");
    const TensorInfo& second = *clean.find_tensor("second");
    // The second tensor's offset field (after its name, dimension count, one dimension and
    // type, version 3) moved on by one alignment unit, and its data with it.
    const uint64_t offset_field = second.file_offset + 8 + second.name.size() + 4 + 8 + 4;
    const uint64_t moved = second.data_offset + 32;
    const uint64_t data_at = clean.data_section_offset() + second.data_offset;
    for (int i = 0; i < 8; ++i) bytes[offset_field + static_cast<uint64_t>(i)] = static_cast<uint8_t>(moved >> (8 * i));
    bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(data_at), 32, 0);
    CHECK(layout_findings(bytes) == std::vector<std::string>{"warning second: 32 unused bytes before its data (at data offset 32)"});
}
