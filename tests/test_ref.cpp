// Against the reference data in ../shared/ref (files written by llama.cpp and its tools).
#include <doctest/doctest.h>
#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "gguf/file_type.h"
#include "gguf/model.h"
#include "gguf/split.h"
#include "gguf/summary.h"
#include "gguf/writer.h"
#include "support.h"

using namespace gguf;

namespace {
std::filesystem::path ref_path(const std::string& rel) { return test::ref_dir() / rel; }
}  // namespace

TEST_CASE("the type table equals types.tsv, and ids missing from it are the retired ones") {
    std::ifstream in(ref_path("types.tsv"));
    REQUIRE(in);
    std::string header;
    std::getline(in, header);
    CHECK(header == "id\tname\tblock_size\ttype_size\tis_quantized");
    std::set<uint32_t> listed;
    uint32_t id, block, size, quantized;
    std::string name;
    while (in >> id >> name >> block >> size >> quantized) {
        CAPTURE(id);
        const TypeInfo* t = find_type(id);
        REQUIRE(t != nullptr);
        CHECK_FALSE(t->retired);
        CHECK(t->name == name);
        CHECK(t->block_size == block);
        CHECK(t->type_size == size);
        CHECK(t->quantized == (quantized == 1));
        listed.insert(id);
    }
    CHECK(listed.size() == 35);
    for (const TypeInfo& t : all_types()) CHECK(t.retired == (listed.count(static_cast<uint32_t>(t.id)) == 0));
}

TEST_CASE("every vocabulary file opens and shows its tokens") {
    struct Vocab {
        const char* file;
        uint64_t tokens;
        const char* first;
        const char* last;
        const char* model;
        uint64_t merges;
        uint64_t keys;
    };
    // Facts read with an independent reader (a short Python script over the same files).
    const Vocab expected[] = {
        {"ggml-vocab-baichuan.gguf", 64000, "<unk>", "\uf1e9", "llama", 0, 18},
        {"ggml-vocab-bert-bge.gguf", 30522, "[PAD]", "\uff5e", "bert", 0, 20},
        {"ggml-vocab-deepseek-coder.gguf", 32256, "!", "[PAD32255]", "gpt2", 31757, 25},
        {"ggml-vocab-deepseek-llm.gguf", 102400, "!", "[PAD102399]", "gpt2", 99757, 23},
        {"ggml-vocab-falcon.gguf", 65024, ">>TITLE<<", "\u0120victoria", "gpt2", 64784, 18},
        {"ggml-vocab-gpt-2.gguf", 50257, "!", "<|endoftext|>", "gpt2", 50000, 16},
        {"ggml-vocab-gpt-neox.gguf", 50432, "<|endoftext|>", "[PAD50431]", "gpt2", 50009, 17},
        {"ggml-vocab-llama-spm.gguf", 32000, "<unk>", "\u7ed9", "llama", 0, 22},
        {"ggml-vocab-mpt.gguf", 50432, "<|endoftext|>", "[PAD50431]", "gpt2", 50009, 17},
        {"ggml-vocab-phi-3.gguf", 32064, "<unk>", "[PAD32063]", "llama", 0, 26},
        {"ggml-vocab-refact.gguf", 49216, "<|endoftext|>", "[PAD49215]", "gpt2", 48891, 18},
        {"ggml-vocab-starcoder.gguf", 49152, "<|endoftext|>", "sdb", "gpt2", 48872, 19},
    };
    CHECK(test::gguf_files(ref_path("gguf/vocab")).size() == std::size(expected));
    for (const Vocab& v : expected) {
        CAPTURE(v.file);
        File f = File::open(ref_path(std::string("gguf/vocab/") + v.file));
        CHECK(f.version() == 3);
        CHECK(f.kvs().size() == v.keys);
        CHECK(f.tensors().empty());
        CHECK(f.find("tokenizer.ggml.model")->value.str() == v.model);
        ArrayView tokens = f.find("tokenizer.ggml.tokens")->value.array();
        CHECK(tokens.element_type() == ValueType::String);
        REQUIRE(tokens.size() == v.tokens);
        CHECK((*tokens.begin()).str() == v.first);
        std::string_view last;
        uint64_t n = 0;
        for (Value t : tokens) {
            last = t.str();
            ++n;
        }
        CHECK(n == v.tokens);
        CHECK(last == v.last);
        const KeyValue* merges = f.find("tokenizer.ggml.merges");
        CHECK((merges ? merges->value.array().size() : 0) == v.merges);
        // llama.cpp's expected token ids for the test strings all lie inside the vocabulary.
        std::ifstream out(ref_path(std::string("gguf/vocab/") + v.file + ".out"));
        for (int64_t token; out >> token;) CHECK((token >= 0 && static_cast<uint64_t>(token) < v.tokens));
    }
}

TEST_CASE("llama-quantize outputs: general.file_type decodes to the mix in the file's name") {
    auto files = test::gguf_files(ref_path("gguf/llama-quantize"));
    CHECK(files.size() == 59);
    for (const auto& p : files) {
        CAPTURE(p);
        std::string stem = p.filename().string();
        if (stem.rfind("tiny-", 0) != 0) continue;  // the imatrix file has no file type
        stem = stem.substr(5, stem.find('.') - 5);
        std::string mix = stem == "source-f16" ? "F16" : stem;
        Summary s = summarize(Model::open(p));
        CHECK(s.architecture == "llama");
        CHECK(s.name == "tiny-test");
        CHECK(s.file_type_name == "MOSTLY_" + mix);
        CHECK(s.parameters == 2098432);  // same model in every file
    }
}

TEST_CASE("the tiny source model has llama.cpp's layout") {
    File f = File::open(ref_path("gguf/llama-quantize/tiny-source-f16.gguf"));
    CHECK(f.kvs().size() == 22);
    CHECK(f.tensors().size() == 21);
    CHECK(f.find("llama.block_count")->value.u32() == 2);
    CHECK(f.find("llama.embedding_length")->value.u32() == 256);
    CHECK(f.find("llama.attention.head_count_kv")->value.u32() == 2);
    CHECK(f.find("tokenizer.ggml.tokens")->value.array().size() == 1024);
    const TensorInfo* k = f.find_tensor("blk.0.attn_k.weight");
    REQUIRE(k != nullptr);
    CHECK(k->type == TypeId::F16);
    CHECK(k->shape[0] == 256);
    CHECK(k->shape[1] == 128);
    CHECK(f.find_tensor("blk.1.ffn_down.weight")->shape[0] == 768);
}

TEST_CASE("llama.cpp's importance-matrix GGUF opens with its per-tensor sums and counts") {
    File f = File::open(ref_path("gguf/llama-quantize/tiny.imatrix.gguf"));
    CHECK(f.tensors().size() == 28);
    const TensorInfo* s = f.find_tensor("blk.0.ffn_down.weight.in_sum2");
    REQUIRE(s != nullptr);
    CHECK(s->type == TypeId::F32);
    CHECK(s->shape[0] == 768);
    CHECK(f.find_tensor("blk.0.ffn_down.weight.counts") != nullptr);
}

TEST_CASE("every file written by llama.cpp's writer comes out byte-identical after a read and write") {
    for (const auto& p : test::gguf_files(ref_path("gguf/llama-quantize"))) {
        CAPTURE(p);
        File f = File::open(p);
        std::vector<uint8_t> again = Writer::copy_of(f).write_to_memory();
        CHECK(again.size() == f.size());
        CHECK(std::equal(again.begin(), again.end(), f.bytes().begin(), f.bytes().end()));
    }
}

TEST_CASE("Python-written vocabulary files differ after a round trip only in trailing alignment padding") {
    for (const auto& p : test::gguf_files(ref_path("gguf/vocab"))) {
        CAPTURE(p);
        File f = File::open(p);
        std::vector<uint8_t> again = Writer::copy_of(f).write_to_memory();
        REQUIRE(again.size() >= f.size());
        CHECK(again.size() == (f.size() + f.alignment() - 1) / f.alignment() * f.alignment());
        CHECK(std::equal(f.bytes().begin(), f.bytes().end(), again.begin()));
        CHECK(std::all_of(again.begin() + static_cast<std::ptrdiff_t>(f.size()), again.end(), [](uint8_t b) { return b == 0; }));
    }
}

TEST_CASE("gguf inspect, human and JSON, succeeds on every reference file and agrees with the library") {
    simdjson::dom::parser parser;
    for (const auto& p : test::gguf_files(ref_path("gguf"))) {
        CAPTURE(p);
        // A part of a split set is shown as the whole set.
        Model m = Model::open(p);
        const File& f = m.first();
        auto text = test::run_gguf("inspect " + test::shell_quote(p.string()));
        CHECK(text.exit_code == 0);
        CHECK(text.out.find(fmt::format("tensors ({} of {})", m.tensors().size(), m.tensors().size())) != std::string::npos);
        auto r = test::run_gguf("inspect --json " + test::shell_quote(p.string()));
        REQUIRE(r.exit_code == 0);
        simdjson::dom::element j;
        REQUIRE(parser.parse(r.out).get(j) == simdjson::SUCCESS);
        CHECK(uint64_t(j["tensor_count"]) == m.tensors().size());
        CHECK(uint64_t(j["kv_count"]) == f.kvs().size());
        CHECK(uint64_t(j["size"]) == m.total_size());
        CHECK(simdjson::dom::array(j["metadata"]).size() == f.kvs().size());
        CHECK(simdjson::dom::array(j["tensors"]).size() == m.tensors().size());
    }
}

TEST_CASE("gguf check finds every reference file sound, tensor data included") {
    for (const auto& p : test::gguf_files(ref_path("gguf"))) {
        CAPTURE(p);
        auto r = test::run_gguf("check " + test::shell_quote(p.string()));
        CHECK(r.exit_code == 0);
        CHECK(r.out.find(": 0 errors, 0 warnings\n") != std::string::npos);
    }
}

TEST_CASE("llama-gguf-split's outputs open: both split sets as the model, the merged file (split.count 0) as one file") {
    Model original = Model::open(ref_path("gguf/llama-quantize/tiny-Q4_K_M.gguf"));
    for (const char* name : {"gguf/split/tiny-Q4_K_M-t8-00002-of-00003.gguf", "gguf/split/tiny-Q4_K_M-1M-00001-of-00002.gguf",
                             "gguf/split/tiny-Q4_K_M-t8-merged.gguf"}) {
        CAPTURE(name);
        Model m = Model::open(ref_path(name));
        CHECK(m.is_split() == (std::string_view(name).find("merged") == std::string_view::npos));
        REQUIRE(m.tensors().size() == original.tensors().size());
        for (const Model::Tensor& t : original.tensors()) {
            const Model::Tensor* s = m.find_tensor(t.info->name);
            REQUIRE(s != nullptr);
            auto a = original.tensor_data(t), b = m.tensor_data(*s);
            CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
        }
    }
    const File merged = File::open(ref_path("gguf/split/tiny-Q4_K_M-t8-merged.gguf"));
    const KeyValue* count = merged.find("split.count");
    REQUIRE(count != nullptr);
    CHECK(count->value.as_int() == 0);
}

TEST_CASE("gguf split makes llama-gguf-split's parts byte for byte, and gguf merge its merged file") {
    test::TempDir d;
    const Model original = Model::open(ref_path("gguf/llama-quantize/tiny-Q4_K_M.gguf"));
    std::vector<uint64_t> sizes;
    for (const Model::Tensor& t : original.tensors()) sizes.push_back(t.info->n_bytes);
    struct Case {
        const char* name;
        SplitLimits limits;
        size_t parts;
    };
    // The logs: --split-max-tensors 8 gave 8, 8, 5 tensors; --split-max-size 1M gave 17, 4.
    for (const Case& c : {Case{"t8", {0, 8, false}, 3}, Case{"1M", {1000000, 0, false}, 2}}) {
        CAPTURE(c.name);
        const auto plan = plan_split(sizes, c.limits);
        REQUIRE(plan.size() == c.parts);
        auto writers = split_writers(original, plan);
        const auto written = write_split_set(writers, d / (std::string(c.name) + ".gguf"));
        for (size_t i = 0; i < written.size(); ++i) {
            const std::string ref = fmt::format("gguf/split/tiny-Q4_K_M-{}-{:05}-of-{:05}.gguf", c.name, i + 1, c.parts);
            CAPTURE(ref);
            CHECK(test::read_bytes(written[i]) == test::read_bytes(ref_path(ref)));
        }
    }
    // Merged from llama-gguf-split's own parts and from ours: its merge, byte for byte.
    const auto expected = test::read_bytes(ref_path("gguf/split/tiny-Q4_K_M-t8-merged.gguf"));
    for (const std::filesystem::path& first : {ref_path("gguf/split/tiny-Q4_K_M-t8-00001-of-00003.gguf"), d / "t8-00002-of-00003.gguf"}) {
        CAPTURE(first);
        merged_writer(Model::open(first)).write(d / "merged.gguf");
        CHECK(test::read_bytes(d / "merged.gguf") == expected);
    }
}
