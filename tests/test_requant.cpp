// gguf requant: llama.cpp's per-tensor rules beyond what the 2-layer reference model shows
// (layer-dependent choices, grouped-query attention, experts, shared embeddings, 70B,
// row-length fallbacks, the user's overrides), and the engine's refusals and clean failure.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <regex>

#include "fixtures.h"
#include "gguf/check.h"
#include "gguf/writer.h"
#include "quant/imatrix.h"
#include "requant/plan.h"
#include "requant/run.h"
#include "support.h"

using namespace gguf;

namespace {

struct Synthetic {
    uint32_t layers = 8, heads = 4, heads_kv = 4, experts = 0;
    uint64_t width = 256, ffn = 512;
    bool output = true;
    std::string arch = "llama";
};

// A model with llama.cpp's tensor names and zero f16 data (plans never read the data).
std::vector<uint8_t> synthetic(const Synthetic& s) {
    Writer w;
    w.set("general.architecture", OwnedValue::string(s.arch));
    w.set(s.arch + ".block_count", OwnedValue::u32(s.layers));
    w.set(s.arch + ".context_length", OwnedValue::u32(128));
    w.set(s.arch + ".embedding_length", OwnedValue::u32(static_cast<uint32_t>(s.width)));
    w.set(s.arch + (s.arch == "falcon" ? ".attention.layer_norm_epsilon" : ".attention.layer_norm_rms_epsilon"), OwnedValue::f32(1e-5f));
    w.set(s.arch + ".attention.head_count", OwnedValue::u32(s.heads));
    w.set(s.arch + ".attention.head_count_kv", OwnedValue::u32(s.heads_kv));
    if (s.experts) w.set(s.arch + ".expert_count", OwnedValue::u32(s.experts));
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, TypeId type = TypeId::F16) {
        uint64_t n = 1;
        for (uint64_t d : shape) n *= d;
        const uint64_t bytes = n * (type == TypeId::F16 ? 2 : 4);
        w.add_tensor(name, type, std::move(shape), [bytes](ByteSink& out) { out.write(std::vector<uint8_t>(bytes)); });
    };
    add("token_embd.weight", {s.width, 16});
    if (s.output) add("output.weight", {s.width, 16});
    add("output_norm.weight", {s.width}, TypeId::F32);
    for (uint32_t l = 0; l < s.layers; ++l) {
        auto n = [l](const char* x) { return fmt::format("blk.{}.{}.weight", l, x); };
        add(n("attn_norm"), {s.width}, TypeId::F32);
        for (const char* x : {"attn_q", "attn_k", "attn_v", "attn_output"}) add(n(x), {s.width, 8});
        if (s.experts) {
            add(n("ffn_gate_inp"), {s.width, s.experts}, TypeId::F32);
            add(n("ffn_gate_exps"), {s.width, 8, s.experts});
            add(n("ffn_up_exps"), {s.width, 8, s.experts});
            add(n("ffn_down_exps"), {s.ffn, 8, s.experts});
        } else {
            add(n("ffn_gate"), {s.width, 8});
            add(n("ffn_up"), {s.width, 8});
            add(n("ffn_down"), {s.ffn, 8});
        }
    }
    return w.write_to_memory();
}

// tensor name -> planned type name.
std::map<std::string, std::string> types_of(const std::vector<uint8_t>& bytes, requant::Options o, const char* mix) {
    std::vector<File> parts;
    parts.push_back(File::parse(bytes, "synthetic"));
    const Model m = Model::from_parts(std::move(parts));
    o.target = requant::find_target(mix);
    REQUIRE(o.target != nullptr);
    std::map<std::string, std::string> out;
    for (const requant::TensorPlan& p : requant::plan(m, o)) out[std::string(p.tensor->info->name)] = type_info(p.to).name;
    return out;
}

std::string layer(uint32_t l, const char* x) { return fmt::format("blk.{}.{}.weight", l, x); }

}  // namespace

TEST_CASE("Q4_K_M gives q6_K to attn_v and ffn_down in the first, last and every third layer (8 layers: 0, 3, 6, 7)") {
    const auto t = types_of(synthetic({}), {}, "q4_k_m");
    for (uint32_t l = 0; l < 8; ++l) {
        CAPTURE(l);
        const bool more = l == 0 || l == 3 || l == 6 || l == 7;
        CHECK(t.at(layer(l, "attn_v")) == (more ? "q6_K" : "q4_K"));
        CHECK(t.at(layer(l, "ffn_down")) == (more ? "q6_K" : "q4_K"));
        CHECK(t.at(layer(l, "attn_q")) == "q4_K");
        CHECK(t.at(layer(l, "attn_norm")) == "f32");
    }
    CHECK(t.at("output.weight") == "q6_K");
    CHECK(t.at("token_embd.weight") == "q4_K");
}

TEST_CASE("layer-dependent mixes: Q3_K_M, Q4_K_S, Q2_K_S and IQ3_XS over 16 layers") {
    Synthetic s;
    s.layers = 16;
    const auto m3 = types_of(synthetic(s), {}, "Q3_K_M");
    CHECK(m3.at(layer(0, "ffn_down")) == "q5_K");  // layer < 16/16
    CHECK(m3.at(layer(1, "ffn_down")) == "q4_K");
    CHECK(m3.at(layer(0, "attn_v")) == "q5_K");    // the first two attn_v
    CHECK(m3.at(layer(1, "attn_v")) == "q5_K");
    CHECK(m3.at(layer(2, "attn_v")) == "q4_K");
    CHECK(m3.at(layer(5, "attn_output")) == "q4_K");
    const auto s4 = types_of(synthetic(s), {}, "Q4_K_S");
    for (uint32_t l = 0; l < 16; ++l) CHECK(s4.at(layer(l, "attn_v")) == (l < 4 ? "q5_K" : "q4_K"));
    CHECK(s4.at(layer(1, "ffn_down")) == "q5_K");  // layer < 16/8
    CHECK(s4.at(layer(2, "ffn_down")) == "q4_K");
    requant::Options with;
    with.has_imatrix = true;
    const auto q2s = types_of(synthetic(s), with, "Q2_K_S");
    CHECK(q2s.at(layer(1, "ffn_down")) == "q4_K");
    CHECK(q2s.at(layer(2, "ffn_down")) == "q2_K");
    const auto x3 = types_of(synthetic(s), with, "IQ3_XS");
    CHECK(x3.at(layer(1, "ffn_gate")) == "iq3_s");   // outside [16/8, 7*16/8)
    CHECK(x3.at(layer(2, "ffn_up")) == "iq3_xxs");
    CHECK(x3.at(layer(13, "ffn_up")) == "iq3_xxs");
    CHECK(x3.at(layer(14, "ffn_gate")) == "iq3_s");
}

TEST_CASE("grouped-query attention (n_head / n_head_kv >= 4) raises attn_v") {
    Synthetic s;
    s.heads = 8;
    s.heads_kv = 2;
    CHECK(types_of(synthetic(s), {}, "Q2_K").at(layer(3, "attn_v")) == "q4_K");
    CHECK(types_of(synthetic(s), {}, "IQ4_XS").at(layer(3, "attn_v")) == "q5_K");
    s.heads_kv = 4;  // ratio 2
    CHECK(types_of(synthetic(s), {}, "Q2_K").at(layer(3, "attn_v")) == "q3_K");
    CHECK(types_of(synthetic(s), {}, "IQ4_XS").at(layer(3, "attn_v")) == "iq4_xs");
}

TEST_CASE("8-expert models: attn_v and attn_k in q8_0; MXFP4_MOE puts stacked experts in mxfp4") {
    Synthetic s;
    s.experts = 8;
    const auto t = types_of(synthetic(s), {}, "Q4_K_M");
    CHECK(t.at(layer(2, "attn_v")) == "q8_0");
    CHECK(t.at(layer(2, "attn_k")) == "q8_0");
    CHECK(t.at(layer(2, "attn_output")) == "q5_K");
    CHECK(t.at(layer(2, "ffn_gate_inp")) == "f32");  // routers are never quantized
    const auto mx = types_of(synthetic(s), {}, "MXFP4_MOE");
    CHECK(mx.at(layer(2, "ffn_up_exps")) == "mxfp4");
    CHECK(mx.at(layer(2, "attn_q")) == "q8_0");
    CHECK(mx.at("output.weight") == "q8_0");
    CHECK(mx.at("token_embd.weight") == "q8_0");
}

TEST_CASE("a model without output.weight quantizes its shared token embedding as the output") {
    Synthetic s;
    s.output = false;
    CHECK(types_of(synthetic(s), {}, "Q4_K_M").at("token_embd.weight") == "q6_K");
    CHECK(types_of(synthetic(s), {}, "IQ4_XS").at("token_embd.weight") == "q6_K");
}

TEST_CASE("70B llama: attn_v q3_K or q4_K becomes q5_K") {
    Synthetic s;
    s.layers = 80;
    s.heads = 64;
    s.heads_kv = 8;
    CHECK(types_of(synthetic(s), {}, "Q3_K_S").at(layer(40, "attn_v")) == "q5_K");
    CHECK(types_of(synthetic(s), {}, "Q3_K_S").at(layer(40, "attn_q")) == "q3_K");
}

TEST_CASE("rows that are not whole blocks fall back as llama.cpp does, to f16 when nothing fits") {
    Synthetic s;
    s.width = 96;  // whole 32-blocks, not 256-blocks
    s.ffn = 48;    // not even whole 32-blocks
    const auto t = types_of(synthetic(s), {}, "Q4_K_M");
    CHECK(t.at(layer(1, "attn_q")) == "q5_0");    // q4_K -> q5_0
    CHECK(t.at("output.weight") == "q8_0");       // the output's own rule
    CHECK(t.at(layer(1, "ffn_down")) == "f16");   // q4_K -> q5_0 does not fit 48 either
    CHECK(types_of(synthetic(s), {}, "Q5_K_S").at(layer(1, "attn_q")) == "q5_1");
    CHECK(types_of(synthetic(s), {}, "Q2_K").at(layer(1, "attn_q")) == "q4_0");
    requant::Options with;
    with.has_imatrix = true;
    CHECK(types_of(synthetic(s), with, "IQ2_XS").at(layer(1, "attn_q")) == "iq4_nl");
}

TEST_CASE("the user's choices: --tensor-type (first match), --pure, --leave-output-tensor, output and embedding types") {
    requant::Options o;
    o.tensor_types.emplace_back(std::regex("attn_v"), TypeId::Q8_0);
    o.tensor_types.emplace_back(std::regex("blk\\.0\\."), TypeId::Q5_K);
    auto t = types_of(synthetic({}), o, "Q4_K_M");
    CHECK(t.at(layer(0, "attn_v")) == "q8_0");  // the first pattern wins
    CHECK(t.at(layer(0, "attn_q")) == "q5_K");
    CHECK(t.at(layer(3, "attn_v")) == "q8_0");
    // As in llama.cpp, a tensor a pattern decides is not counted by the rules, which number
    // ffn_down tensors as they meet them: blk.0's was overridden, so blk.3's counts as the
    // third (q4_K) and blk.4's as the fourth (q6_K), one layer later than without it.
    CHECK(t.at(layer(3, "ffn_down")) == "q4_K");
    CHECK(t.at(layer(4, "ffn_down")) == "q6_K");
    requant::Options pure;
    pure.pure = true;
    t = types_of(synthetic({}), pure, "Q4_K_M");
    CHECK(t.at(layer(0, "attn_v")) == "q4_K");
    CHECK(t.at("output.weight") == "q4_K");
    requant::Options keep;
    keep.leave_output = true;
    keep.token_embd_type = TypeId::Q8_0;
    t = types_of(synthetic({}), keep, "Q4_K_M");
    CHECK(t.at("output.weight") == "f16");
    CHECK(t.at("token_embd.weight") == "q8_0");
    requant::Options out;
    out.output_type = TypeId::Q5_K;
    CHECK(types_of(synthetic({}), out, "Q4_0").at("output.weight") == "q5_K");
    CHECK(types_of(synthetic({}), {}, "COPY").at(layer(0, "attn_v")) == "f16");
    // As in llama-quantize, Q4_K is Q4_K_M (and 15 its file type id); q4_K throughout is --pure.
    CHECK(types_of(synthetic({}), {}, "Q4_K") == types_of(synthetic({}), {}, "Q4_K_M"));
    CHECK(types_of(synthetic({}), {}, "15") == types_of(synthetic({}), {}, "Q4_K_M"));
    CHECK(types_of(synthetic({}), {}, "Q4_K").at("output.weight") == "q6_K");
    CHECK(types_of(synthetic({}), pure, "Q4_K").at("output.weight") == "q4_K");
}

TEST_CASE("targets derive from the file type table: every live mix by name and id, llama-quantize's aliases, COPY") {
    for (const FileTypeInfo& f : all_file_types()) {
        CAPTURE(f.name);
        const requant::Target* by_name = requant::find_target(f.name);
        const requant::Target* by_id = requant::find_target(std::to_string(static_cast<uint32_t>(f.id)));
        CHECK((by_name == nullptr) == f.retired);
        CHECK(by_name == by_id);
        if (by_name) {
            CHECK(by_name->file_type == static_cast<uint32_t>(f.id));
            CHECK(by_name->base == f.base);
        }
    }
    CHECK(requant::find_target("q5_k")->file_type == static_cast<uint32_t>(FileType::Q5_K_M));
    CHECK(requant::find_target("Q3_K")->file_type == static_cast<uint32_t>(FileType::Q3_K_M));
    CHECK(requant::find_target("COPY")->copy);
    CHECK(requant::find_target("99") == nullptr);
    CHECK(requant::find_target("4") == nullptr);  // retired
    CHECK(requant::find_target("") == nullptr);
}

TEST_CASE("requantize refuses what llama.cpp refuses and leaves nothing behind when it fails or is cancelled") {
    test::TempDir dir;
    Synthetic s;
    s.layers = 2;
    test::write_bytes(dir / "in.gguf", synthetic(s));
    requant::RunOptions o;
    o.plan.target = requant::find_target("IQ2_XXS");
    CHECK_THROWS_WITH_AS(requant::requantize(dir / "in.gguf", dir / "out.gguf", o),
                         doctest::Contains("tensor 'blk.0.attn_k.weight' becomes iq2_xxs, which needs an importance matrix"), std::runtime_error);
    o.plan.target = requant::find_target("Q4_K_M");
    CHECK_THROWS_WITH_AS(requant::requantize(dir / "in.gguf", dir / "in.gguf", o), doctest::Contains("would replace the input"), std::runtime_error);
    std::atomic<bool> cancel{true};
    o.cancel = &cancel;
    CHECK_THROWS_WITH_AS(requant::requantize(dir / "in.gguf", dir / "out.gguf", o), doctest::Contains("interrupted"), std::runtime_error);
    o.cancel = nullptr;
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.path().filename() != "in.gguf";
    CHECK(files == 0);  // no output, no temporary file

    requant::requantize(dir / "in.gguf", dir / "q4.gguf", o);
    o.plan.target = requant::find_target("Q8_0");
    CHECK_THROWS_WITH_AS(requant::requantize(dir / "q4.gguf", dir / "q8.gguf", o), doctest::Contains("Pass --allow-requantize"),
                         std::runtime_error);
    o.allow_requantize = true;
    requant::requantize(dir / "q4.gguf", dir / "q8.gguf", o);
    const Model q8 = Model::open(dir / "q8.gguf");
    CHECK(q8.find("general.file_type")->value.u32() == 7);
    CHECK(q8.find("general.quantization_version")->value.u32() == 2);
    CHECK(type_info(q8.find_tensor("blk.1.attn_q.weight")->info->type).name == "q8_0");
    CHECK(check_metadata(q8).empty());
}

TEST_CASE("--keep-split writes the input's parts, each complete, or none at all") {
    test::TempDir dir;
    const std::vector<std::filesystem::path> in = fixtures::write_demo_split(dir.path(), "in", 3);
    requant::RunOptions o;
    o.plan.target = requant::find_target("Q4_K_M");
    o.threads = 2;
    const requant::Report one = requant::requantize(in[1], dir / "one.gguf", o);
    CHECK(one.outputs.size() == 1);
    o.keep_split = true;
    const requant::Report s = requant::requantize(in[1], dir / "out.gguf", o);
    REQUIRE(s.outputs.size() == 3);
    CHECK(s.outputs[0] == dir / "out-00001-of-00003.gguf");

    const Model input = Model::open(in[0]), split = Model::open(s.outputs[2]), single = Model::open(dir / "one.gguf");
    REQUIRE(split.parts().size() == 3);
    CHECK(check_metadata(split).empty());
    CHECK(split.find("general.file_type")->value.u32() == 15);
    CHECK(split.parts()[1].kvs().size() == 3);  // later parts: the split keys only
    CHECK(split.parts()[1].find("split.no")->value.u16() == 1);
    CHECK(split.parts()[0].find("split.tensors.count")->value.i32() == 21);
    REQUIRE(split.tensors().size() == input.tensors().size());
    for (size_t i = 0; i < input.tensors().size(); ++i) {
        const Model::Tensor& t = split.tensors()[i];
        CAPTURE(t.info->name);
        CHECK(t.info->name == input.tensors()[i].info->name);  // same parts, same order
        CHECK(t.part == input.tensors()[i].part);
        const Model::Tensor* same = single.find_tensor(t.info->name);
        REQUIRE(same != nullptr);
        CHECK(t.info->type == same->info->type);
        const auto a = split.tensor_data(t), b = single.tensor_data(*same);
        CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));  // the same bytes as one file
    }

    // A part that cannot be written (its name is taken by a folder): no part is left behind.
    std::filesystem::create_directory(dir / "bad-00003-of-00003.gguf");
    CHECK_THROWS(requant::requantize(in[1], dir / "bad.gguf", o));
    CHECK_FALSE(std::filesystem::exists(dir / "bad-00001-of-00003.gguf"));
    CHECK_FALSE(std::filesystem::exists(dir / "bad-00002-of-00003.gguf"));
}

TEST_CASE("edge tensors: an empty tensor is copied, a 4-D expert tensor reads its importance per expert, no part of a split input is replaced") {
    test::TempDir dir;
    Writer w;
    w.set("general.architecture", OwnedValue::string("gpt-oss"));
    auto zeros = [](uint64_t n) { return [n](ByteSink& out) { out.write(std::vector<uint8_t>(n)); }; };
    w.add_tensor("blk.0.empty.weight", TypeId::F16, {0, 4}, zeros(0));
    std::vector<float> values(256 * 2 * 2 * 2);
    for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i) * 0.01f);
    const auto* bytes = reinterpret_cast<const uint8_t*>(values.data());
    w.add_tensor("blk.0.ffn_up_exps.weight", TypeId::F32, {256, 2, 2, 2}, std::span<const uint8_t>(bytes, values.size() * 4));
    w.write(dir / "in.gguf");
    quant::ImportanceMatrix im;
    im.set("blk.0.ffn_up_exps.weight", quant::ImatrixEntry{std::vector<float>(256 * 2, 3.0f), {1.0f, 1.0f}});
    im.chunk_size = 512;
    im.save(dir / "im.gguf", quant::ImatrixFormat::Gguf);
    requant::RunOptions o;
    o.plan.target = requant::find_target("IQ2_XXS");  // needs the weights: every expert matrix must find its set
    o.plan.tensor_types.emplace_back(std::regex("exps"), TypeId::IQ2_XXS);
    o.imatrix = dir / "im.gguf";
    o.threads = 2;
    requant::requantize(dir / "in.gguf", dir / "out.gguf", o);
    const Model out = Model::open(dir / "out.gguf");
    CHECK(out.find_tensor("blk.0.empty.weight")->info->type == TypeId::F16);
    CHECK(out.find_tensor("blk.0.ffn_up_exps.weight")->info->type == TypeId::IQ2_XXS);

    const std::vector<std::filesystem::path> parts = fixtures::write_demo_split(dir.path(), "set", 2);
    requant::RunOptions q8;
    q8.plan.target = requant::find_target("Q8_0");
    CHECK_THROWS_WITH_AS(requant::requantize(parts[0], parts[1], q8), doctest::Contains("would replace the input"), Error);
    CHECK(Model::open(parts[0]).tensors().size() > 0);  // the set is intact
}

// --prune-layers, checked against llama-quantize's renumbering (blocks below the first pruned
// one keep their number, the rest close up in order) and against planning a model that never
// had the pruned blocks.
TEST_CASE("prune layers: blocks renumbered in order, rules see the smaller model, refusals name the block") {
    CHECK(requant::renumbered_layer(0, std::vector<uint32_t>{0, 3}) == std::nullopt);
    CHECK(requant::renumbered_layer(1, std::vector<uint32_t>{0, 3}) == 0u);
    CHECK(requant::renumbered_layer(2, std::vector<uint32_t>{0, 3}) == 1u);
    CHECK(requant::renumbered_layer(3, std::vector<uint32_t>{0, 3}) == std::nullopt);
    CHECK(requant::renumbered_layer(7, std::vector<uint32_t>{0, 3}) == 5u);
    CHECK(requant::renumbered_layer(2, std::vector<uint32_t>{5}) == 2u);

    // Q4_K_M gives attn_v and ffn_down more bits by position in the model (use_more_bits of
    // layer and layer count). llama-quantize counts the attn_v tensors of the pruned model but
    // sizes the feed-forward rules by the original block count (n_layer_all) with the new
    // numbers: an 8-block model pruned to 6 gets a 6-block model's attn_v types and an
    // 8-block model's types for everything else, block by new number.
    for (const char* mix : {"Q4_K_M", "Q3_K_M", "Q2_K", "IQ3_M", "IQ3_XS"}) {
        CAPTURE(mix);
        std::vector<File> parts;
        const std::vector<uint8_t> eight = synthetic({.layers = 8, .heads = 4, .heads_kv = 1});
        parts.push_back(File::parse(eight, "eight"));
        const Model m = Model::from_parts(std::move(parts));
        requant::Options o;
        o.target = requant::find_target(mix);
        o.prune_layers = {0, 3};
        o.has_imatrix = true;
        std::map<std::string, std::string> pruned;
        std::map<std::string, std::string> read_from;
        for (const requant::TensorPlan& p : requant::plan(m, o)) {
            pruned[p.name] = type_info(p.to).name;
            read_from[p.name] = std::string(p.tensor->info->name);
        }
        requant::Options whole;
        whole.has_imatrix = true;
        const auto six = types_of(synthetic({.layers = 6, .heads = 4, .heads_kv = 1}), whole, mix);
        const auto all_eight = types_of(eight, whole, mix);
        REQUIRE(pruned.size() == six.size());
        for (const auto& [name, type] : pruned) {
            CAPTURE(name);
            CHECK(type == (name.find("attn_v") != std::string::npos ? six.at(name) : all_eight.at(name)));
        }
        CHECK(read_from["blk.0.attn_q.weight"] == "blk.1.attn_q.weight");
        CHECK(read_from["blk.1.ffn_down.weight"] == "blk.2.ffn_down.weight");
        CHECK(read_from["blk.2.attn_v.weight"] == "blk.4.attn_v.weight");
        CHECK(read_from["blk.5.ffn_up.weight"] == "blk.7.ffn_up.weight");
        CHECK(read_from["token_embd.weight"] == "token_embd.weight");
    }

    std::vector<File> parts;
    const std::vector<uint8_t> four = synthetic({.layers = 4});
    parts.push_back(File::parse(four, "four"));
    const Model m = Model::from_parts(std::move(parts));
    requant::Options o;
    o.target = requant::find_target("Q8_0");
    o.prune_layers = {4};
    CHECK_THROWS_WITH_AS(requant::plan(m, o), doctest::Contains("the model has no block 4 (its blocks are 0 to 3)"), std::runtime_error);
    o.prune_layers = {0, 1, 2, 3};
    CHECK_THROWS_WITH_AS(requant::plan(m, o), doctest::Contains("pruning all 4 blocks leaves no model"), std::runtime_error);
}

TEST_CASE("prune layers: the written model holds the kept blocks' bytes under their new numbers, its metadata follows, imatrix entries by the old names") {
    test::TempDir dir;
    const uint32_t layers = 5;
    const uint64_t width = 256;
    Writer w;
    w.set("general.architecture", OwnedValue::string("llama"));
    w.set("llama.block_count", OwnedValue::u32(layers));
    w.set("llama.context_length", OwnedValue::u32(128));
    w.set("llama.embedding_length", OwnedValue::u32(width));
    w.set("llama.feed_forward_length", OwnedValue::numbers(ValueType::U32, std::vector<uint32_t>{10, 11, 12, 13, 14}, OwnedValue::u32));
    w.set("llama.attention.head_count", OwnedValue::u32(4));
    w.set("llama.attention.head_count_kv", OwnedValue::numbers(ValueType::I32, std::vector<int32_t>{4, 2, 4, 1, 4}, OwnedValue::i32));
    w.set("llama.attention.layer_norm_rms_epsilon", OwnedValue::f32(1e-5f));
    w.set("tokenizer.ggml.scores", OwnedValue::numbers(ValueType::F32, std::vector<float>{1, 2, 3, 4, 5}, OwnedValue::f32));  // 5 long, not per layer
    std::vector<std::vector<float>> data;
    auto add = [&](const std::string& name, std::vector<uint64_t> shape) {
        uint64_t n = 1;
        for (uint64_t d : shape) n *= d;
        std::vector<float> v(n);
        for (uint64_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i + 1) + static_cast<float>(data.size()));
        data.push_back(std::move(v));
        const auto* b = reinterpret_cast<const uint8_t*>(data.back().data());
        w.add_tensor(name, TypeId::F32, std::move(shape), std::span<const uint8_t>(b, n * 4));
    };
    add("token_embd.weight", {width, 8});
    add("output_norm.weight", {width});
    for (uint32_t l = 0; l < layers; ++l) {
        add(fmt::format("blk.{}.attn_norm.weight", l), {width});
        add(fmt::format("blk.{}.attn_q.weight", l), {width, 4});
    }
    w.write(dir / "in.gguf");
    quant::ImportanceMatrix im;
    for (uint32_t l = 0; l < layers; ++l) {
        std::vector<float> weights(width);
        for (uint64_t i = 0; i < width; ++i) weights[i] = 1.0f + static_cast<float>((i * (l + 3)) % 17);
        im.set(fmt::format("blk.{}.attn_q.weight", l), quant::ImatrixEntry{weights, {1.0f}});
    }
    im.chunk_size = 512;
    im.save(dir / "im.gguf", quant::ImatrixFormat::Gguf);

    requant::RunOptions o;
    o.plan.target = requant::find_target("Q4_K");
    o.plan.pure = true;
    o.imatrix = dir / "im.gguf";
    requant::requantize(dir / "in.gguf", dir / "whole.gguf", o);
    o.plan.prune_layers = {1, 3};
    const requant::Report r = requant::requantize(dir / "in.gguf", dir / "pruned.gguf", o);
    CHECK(r.tensors == 2 + 3 * 2);

    const Model whole = Model::open(dir / "whole.gguf"), pruned = Model::open(dir / "pruned.gguf");
    CHECK(pruned.find("llama.block_count")->value.u32() == 3);
    const ArrayView ff = pruned.find("llama.feed_forward_length")->value.array();
    REQUIRE(ff.size() == 3);
    CHECK(ff.at(0).u32() == 10);
    CHECK(ff.at(1).u32() == 12);
    CHECK(ff.at(2).u32() == 14);
    const ArrayView kv = pruned.find("llama.attention.head_count_kv")->value.array();
    REQUIRE(kv.size() == 3);
    CHECK(kv.element_type() == ValueType::I32);
    CHECK(kv.at(0).i32() == 4);
    CHECK(kv.at(1).i32() == 4);
    CHECK(kv.at(2).i32() == 4);
    CHECK(pruned.find("tokenizer.ggml.scores")->value.array().size() == 5);
    CHECK(pruned.tensors().size() == 8);
    CHECK(pruned.find_tensor("blk.3.attn_q.weight") == nullptr);
    // New block k is old block {0, 2, 4}[k], quantized with old block's importance weights:
    // the bytes equal the unpruned file's.
    const uint32_t old_of[] = {0, 2, 4};
    for (uint32_t k = 0; k < 3; ++k) {
        for (const char* stem : {"attn_q", "attn_norm"}) {
            const auto* a = pruned.find_tensor(fmt::format("blk.{}.{}.weight", k, stem));
            const auto* b = whole.find_tensor(fmt::format("blk.{}.{}.weight", old_of[k], stem));
            REQUIRE(a != nullptr);
            REQUIRE(b != nullptr);
            CHECK(a->info->type == b->info->type);
            const auto da = pruned.tensor_data(*a), db = whole.tensor_data(*b);
            CHECK(std::equal(da.begin(), da.end(), db.begin(), db.end()));
        }
    }
    for (const Finding& f : check_metadata(pruned))  // the keys agree with each other (its few tensors are no whole model)
        if (f.where.starts_with("llama.")) FAIL_CHECK(std::string(f.where + ": " + f.message));
}
