// gguf requant's plan against llama.cpp's quantizer: for every mix it was run with on the
// tiny model (with and without an importance matrix), the type of every tensor, and the
// order tensors are written in, must be what it wrote.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "gguf/model.h"
#include "requant/plan.h"
#include "requant/run.h"
#include "support.h"

using namespace gguf;

TEST_CASE("the requant plan chooses llama.cpp's type for every tensor of every mix in the reference files") {
    const std::filesystem::path dir = test::ref_dir() / "gguf/llama-quantize";
    const Model source = Model::open(dir / "tiny-source-f16.gguf");
    size_t files = 0, tensors = 0;
    for (const auto& path : test::gguf_files(dir)) {
        std::string mix = path.filename().string();
        if (!mix.starts_with("tiny-") || mix == "tiny-source-f16.gguf") continue;
        mix = mix.substr(5, mix.size() - 5 - 5);  // "tiny-" ... ".gguf"
        const bool imatrix = mix.ends_with(".imatrix");
        if (imatrix) mix.resize(mix.size() - 8);
        CAPTURE(path.filename().string());
        const requant::Target* target = requant::find_target(mix);
        REQUIRE_MESSAGE(target != nullptr, "no target named " << mix);
        requant::Options o;
        o.target = target;
        o.has_imatrix = imatrix;
        const std::vector<requant::TensorPlan> plan = requant::plan(source, o);
        const Model theirs = Model::open(path);
        REQUIRE(plan.size() == theirs.tensors().size());
        for (size_t i = 0; i < plan.size(); ++i) {
            const TensorInfo& t = *theirs.tensors()[i].info;
            CAPTURE(t.name);
            CHECK(plan[i].tensor->info->name == t.name);  // same order
            CHECK(type_info(plan[i].to).name == type_info(t.type).name);
            ++tensors;
        }
        const KeyValue* ft = theirs.find("general.file_type");
        REQUIRE(ft != nullptr);
        CHECK(ft->value.u32() == target->file_type);
        ++files;
    }
    MESSAGE(files << " files, " << tensors << " tensors compared");
    CHECK(files == 57);  // every tiny-<MIX>[.imatrix].gguf
}

TEST_CASE("gguf requant writes what llama.cpp's quantizer writes: identical headers, identical files for F16, BF16 and Q8_0 "
          "(--effort fast, llama.cpp's rounding)") {
    const std::filesystem::path dir = test::ref_dir() / "gguf/llama-quantize";
    test::TempDir tmp;
    struct Case { const char* mix; bool imatrix; bool whole_file; };
    for (const Case& c : {Case{"F16", false, true}, Case{"BF16", false, true}, Case{"Q4_K_M", false, false}, Case{"Q8_0", false, true},
                          Case{"Q2_K_S", true, false}, Case{"IQ4_NL", true, false}, Case{"Q3_K_M", true, false}}) {
        const std::string name = fmt::format("tiny-{}{}.gguf", c.mix, c.imatrix ? ".imatrix" : "");
        CAPTURE(name);
        requant::RunOptions o;
        o.plan.target = requant::find_target(c.mix);
        if (c.imatrix) o.imatrix = dir / "tiny.imatrix.gguf";
        if (std::string_view(c.mix) == "Q8_0") o.effort = quant::Effort::Fast;
        o.threads = 2;
        requant::requantize(dir / "tiny-source-f16.gguf", tmp / name, o);
        const std::vector<uint8_t> ours = test::read_bytes(tmp / name), theirs = test::read_bytes(dir / name);
        REQUIRE(ours.size() == theirs.size());
        const File f = File::parse(theirs, name);
        const size_t compared = c.whole_file ? theirs.size() : f.data_section_offset();
        CHECK(std::equal(ours.begin(), ours.begin() + static_cast<std::ptrdiff_t>(compared), theirs.begin()));
        // Tensors kept as they were (the norms) have identical bytes.
        const File g = File::parse(ours, "ours");
        for (const TensorInfo& t : f.tensors())
            if (t.type == TypeId::F32) {
                const auto a = f.tensor_data(t), b = g.tensor_data(*g.find_tensor(t.name));
                CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
            }
    }
}
