// End-to-end: the gguf binary as a user or a script runs it.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <map>
#include <set>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/render.h"
#include "gguf/writer.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "support.h"

using test::run_gguf;
using test::shell_quote;

namespace {

struct Fixtures {
    test::TempDir dir;
    Fixtures() { gguf::fixtures::write_all(dir.path()); }
    std::string operator()(const std::string& name) const { return shell_quote((dir / name).string()); }
};
const Fixtures& fx() {
    static Fixtures f;
    return f;
}

simdjson::dom::element parse_json(simdjson::dom::parser& p, const std::string& text) {
    simdjson::dom::element e;
    auto err = p.parse(text).get(e);
    INFO("JSON: " << text.substr(0, 400));
    REQUIRE_MESSAGE(err == simdjson::SUCCESS, simdjson::error_message(err));
    return e;
}

int64_t count_lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

}  // namespace

TEST_CASE("gguf --help and gguf inspect --help describe the commands and exit 0") {
    auto r = run_gguf("--help");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("inspect") != std::string::npos);
    r = run_gguf("inspect --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"--json", "--full", "--keys", "--tensors", "--no-kv", "--no-tensors"}) CHECK(r.out.find(opt) != std::string::npos);
}

TEST_CASE("bad usage exits 2 with a message") {
    auto r = run_gguf("");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("error:") == 0);
    r = run_gguf("inspect");
    CHECK(r.exit_code == 2);
    r = run_gguf("frobnicate x");
    CHECK(r.exit_code == 2);
    r = run_gguf("inspect " + fx()("demo-llama-f16.gguf") + " --keys '('");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("invalid regular expression") != std::string::npos);
}

TEST_CASE("inspect prints the summary, metadata and tensor table of the demo model") {
    auto r = run_gguf("inspect " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
    for (const char* line : {"size          239776 bytes (234.16 KiB)\n", "version       3, little-endian\n", "alignment     32\n", "key/values    24\n", "tensors       21\n",
                             "architecture  llama\n", "name          ggufkit-demo\n", "file type     MOSTLY_F16 (1)\n",
                             "parameters    115.01 K (115008)\n", "bits/weight   16.04\n"})
        CHECK_MESSAGE(r.out.find(line) != std::string::npos, line);
    CHECK(r.out.find("tokenizer.ggml.tokens                   arr[str,320]     = [\"<unk>\", \"<s>\", \"</s>\", \"<0x00>\"") != std::string::npos);
    CHECK(r.out.find("... (312 more)]") != std::string::npos);
    CHECK(r.out.find("blk.1.ffn_down.weight     f16      [128, 64]") != std::string::npos);
    CHECK(r.out.find("metadata (24 of 24 keys)") != std::string::npos);
    CHECK(r.out.find("tensors (21 of 21)") != std::string::npos);
}

TEST_CASE("inspect --json emits the summary, every key and every tensor") {
    auto r = run_gguf("inspect --json " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p;
    auto j = parse_json(p, r.out);
    CHECK(uint64_t(j["version"]) == 3);
    CHECK(std::string_view(j["byte_order"]) == "little");
    CHECK(uint64_t(j["alignment"]) == 32);
    CHECK(uint64_t(j["kv_count"]) == 24);
    CHECK(uint64_t(j["tensor_count"]) == 21);
    CHECK(std::string_view(j["architecture"]) == "llama");
    CHECK(std::string_view(j["file_type"]["name"]) == "MOSTLY_F16");
    CHECK(uint64_t(j["file_type"]["id"]) == 1);
    CHECK(uint64_t(j["parameters"]) == 115008);
    CHECK(double(j["bits_per_weight"]) == doctest::Approx(16.0445).epsilon(1e-4));
    CHECK(simdjson::dom::array(j["parts"]).size() == 1);
    simdjson::dom::array meta = j["metadata"];
    CHECK(meta.size() == 24);
    simdjson::dom::array tensors = j["tensors"];
    REQUIRE(tensors.size() == 21);
    auto t0 = tensors.at(0);
    CHECK(std::string_view(t0["name"]) == "token_embd.weight");
    CHECK(std::string_view(t0["type"]) == "f16");
    CHECK(uint64_t(t0["shape"].at(0)) == 64);
    CHECK(uint64_t(t0["shape"].at(1)) == 320);
    CHECK(uint64_t(t0["bytes"]) == 64 * 320 * 2);
    CHECK(uint64_t(t0["offset"]) == 0);
    CHECK(uint64_t(t0["file_offset"]) == uint64_t(j["data_offset"]));
    for (auto kv : meta) {
        if (std::string_view(kv["key"]) != "tokenizer.ggml.tokens") continue;
        CHECK(std::string_view(kv["type"]) == "arr");
        CHECK(std::string_view(kv["value"]["element_type"]) == "str");
        CHECK(uint64_t(kv["value"]["count"]) == 320);
        CHECK(simdjson::dom::array(kv["value"]["values"]).size() == 8);
        CHECK(bool(kv["value"]["truncated"]));
    }
}

TEST_CASE("--full shows every array element") {
    auto r = run_gguf("inspect --json --full --keys tokens " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p;
    auto j = parse_json(p, r.out);
    auto kv = j["metadata"].at(0);
    CHECK(simdjson::dom::array(kv["value"]["values"]).size() == 320);
    CHECK_FALSE(bool(kv["value"]["truncated"]));
    CHECK(std::string_view(kv["value"]["values"].at(319)) == "\xe2\x96\x81w8");
    auto text = run_gguf("inspect --full --no-tensors " + fx()("demo-llama-f16.gguf"));
    CHECK(text.out.find("more)]") == std::string::npos);
}

TEST_CASE("--keys, --tensors, --no-kv and --no-tensors select what is shown") {
    simdjson::dom::parser p;
    auto r = run_gguf("inspect --json --keys '^llama\\.attention' --tensors 'ffn_(up|down)' " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    simdjson::dom::array meta = j["metadata"];
    CHECK(meta.size() == 3);
    for (auto kv : meta) CHECK(std::string_view(kv["key"]).rfind("llama.attention", 0) == 0);
    simdjson::dom::array tensors = j["tensors"];
    CHECK(tensors.size() == 4);
    CHECK(uint64_t(j["tensor_count"]) == 21);  // totals are not filtered

    r = run_gguf("inspect --json --no-kv --no-tensors " + fx()("demo-llama-f16.gguf"));
    auto k = parse_json(p, r.out);
    CHECK(k["metadata"].error() == simdjson::NO_SUCH_FIELD);
    CHECK(k["tensors"].error() == simdjson::NO_SUCH_FIELD);
    CHECK(uint64_t(k["parameters"]) == 115008);

    r = run_gguf("inspect --no-kv " + fx()("demo-llama-f16.gguf"));
    CHECK(r.out.find("metadata (") == std::string::npos);
    CHECK(r.out.find("tensors (21 of 21)") != std::string::npos);
}

TEST_CASE("inspect reads big-endian and version-1 files and shows exact values") {
    simdjson::dom::parser p;
    for (const char* name : {"all-value-types.gguf", "all-value-types-v1.gguf", "all-value-types-be.gguf"}) {
        CAPTURE(name);
        auto r = run_gguf("inspect --json " + fx()(name));
        REQUIRE(r.exit_code == 0);
        auto j = parse_json(p, r.out);
        CHECK(std::string_view(j["byte_order"]) == (std::strstr(name, "-be") ? "big" : "little"));
        CHECK(uint64_t(j["version"]) == (std::strstr(name, "-v1") ? 1 : 3));
        std::map<std::string, simdjson::dom::element> by_key;
        for (auto kv : simdjson::dom::array(j["metadata"])) by_key[std::string(std::string_view(kv["key"]))] = kv["value"];
        CHECK(uint64_t(by_key["u64.max"]) == UINT64_MAX);
        CHECK(int64_t(by_key["i64.min"]) == INT64_MIN);
        CHECK(std::string_view(by_key["string.utf8"]) == "na\xc3\xafve \xe2\x98\x83 \"quoted\"\ttab");
        CHECK(double(by_key["f32.pi"]) == 3.1415927);
        auto f32 = by_key["array.f32"]["values"];
        CHECK(std::string_view(f32.at(2)) == "inf");
        CHECK(std::string_view(f32.at(3)) == "nan");
        CHECK(int64_t(by_key["array.nested"]["values"].at(1)["values"].at(0)) == 3);
        CHECK(uint64_t(j["tensor_count"]) == 6);
    }
}

TEST_CASE("inspect --json stays valid JSON when a string is not UTF-8") {
    test::TempDir d;
    gguf::Writer w;
    w.set("bad\xff", gguf::OwnedValue::string("a\xc3\x28z\x01\xed\xa0\x80"));
    w.write(d / "bad.gguf");
    auto r = run_gguf("inspect --json " + shell_quote((d / "bad.gguf").string()));
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p;
    auto j = parse_json(p, r.out);
    CHECK(std::string_view(j["metadata"].at(0)["value"]) == "a\xef\xbf\xbd(z\x01\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("inspect opens a split set from any part") {
    simdjson::dom::parser p;
    auto r = run_gguf("inspect --json " + fx()("demo-split-00003-of-00003.gguf"));
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    CHECK(simdjson::dom::array(j["parts"]).size() == 3);
    CHECK(uint64_t(j["tensor_count"]) == 21);
    CHECK(uint64_t(j["parameters"]) == 115008);
    auto text = run_gguf("inspect " + fx()("demo-split-00001-of-00003.gguf"));
    CHECK(text.out.find("parts         3 (split set)") != std::string::npos);
}

TEST_CASE("every malformed variant: exit 2 and one line naming the file, offset and problem") {
    for (const auto& m : gguf::fixtures::malformed_variants()) {
        CAPTURE(m.name);
        std::string path = (fx().dir / ("malformed/" + m.name + ".gguf")).string();
        auto r = run_gguf("inspect " + shell_quote(path));
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK(count_lines(r.err) == 1);
        std::string prefix = "error: " + path + ": ";
        if (m.offset) prefix += "offset " + std::to_string(*m.offset) + ": ";
        CHECK_MESSAGE(r.err.rfind(prefix, 0) == 0, r.err);
        CHECK_MESSAGE(r.err.find(m.expected) != std::string::npos, r.err);
    }
}

TEST_CASE("a missing file: exit 2 and the reason") {
    auto r = run_gguf("inspect /nonexistent/model.gguf");
    CHECK(r.exit_code == 2);
    CHECK(r.err == "error: /nonexistent/model.gguf: cannot open: No such file or directory\n");
}

TEST_CASE("gguf error measures each tensor's round trip and totals it") {
    simdjson::dom::parser p;
    auto r = run_gguf("error --json --type q8_0 " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    CHECK(std::string_view(j["type"]) == "q8_0");
    CHECK(double(j["bits_per_weight"]) == 8.5);
    simdjson::dom::array tensors = j["tensors"];
    CHECK(tensors.size() == 16);
    for (auto t : tensors) {
        CHECK(double(t["snr_db"]) > 35.0);  // 8 bits: about 40 dB on gaussian weights
        CHECK(double(t["rmse"]) > 0.0);
        CHECK(double(t["max_abs_error"]) >= double(t["rmse"]));
    }
    CHECK(uint64_t(j["total"]["elements"]) == 115008 - 5 * 64);
    // The five norms stay f32 in a requantized model: listed as skipped, with the reason.
    simdjson::dom::array skipped = j["skipped"];
    REQUIRE(skipped.size() == 5);
    for (auto s : skipped) {
        CHECK(std::string_view(s["name"]).ends_with("norm.weight"));
        CHECK(std::string_view(s["reason"]).starts_with("1-D"));
    }
}

TEST_CASE("gguf error: a lossless target reports zero error; --tensor filters; odd rows are skipped with the reason") {
    simdjson::dom::parser p;
    auto r = run_gguf("error --json --type f32 --tensor 'ffn_(up|down)' " + fx()("demo-llama-f16.gguf"));
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    simdjson::dom::array tensors = j["tensors"];
    CHECK(tensors.size() == 4);
    for (auto t : tensors) {
        CHECK(double(t["rmse"]) == 0.0);
        CHECK(std::string_view(t["snr_db"]) == "inf");
    }
    r = run_gguf("error --json --type q4_K " + fx()("demo-llama-f16.gguf"));  // rows of 64 and 128 values
    REQUIRE(r.exit_code == 0);
    auto k = parse_json(p, r.out);
    CHECK(simdjson::dom::array(k["tensors"]).size() == 0);
    CHECK(simdjson::dom::array(k["skipped"]).size() == 21);
    CHECK(std::string_view(k["skipped"].at(0)["reason"]) == "row length 64 is not a multiple of q4_K's block size 256");
    r = run_gguf("error --json --type iq2_xxs " + fx()("demo-llama-f16.gguf"));  // needs an imatrix: every tensor skipped
    REQUIRE(r.exit_code == 0);
    auto i = parse_json(p, r.out);
    CHECK(simdjson::dom::array(i["skipped"]).size() == 21);
}

TEST_CASE("gguf error --imatrix: the importance-weighted RMSE of the tensors the matrix has, null for the others") {
    simdjson::dom::parser p;
    test::TempDir dir;
    quant::ImportanceMatrix m;
    std::vector<float> sums(64, 1.0f);
    sums[3] = 500;  // one column that matters far more
    m.set("blk.0.ffn_up.weight", {sums, {1.0f}});
    const std::string imatrix = (dir / "m.imatrix.gguf").string();
    m.save(imatrix, quant::ImatrixFormat::Gguf);
    auto r = run_gguf("error --json --type q4_0 --tensor 'ffn_up' --imatrix " + imatrix + " " + fx()("demo-llama-f16.gguf"));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto j = parse_json(p, r.out);
    size_t weighted = 0;
    for (auto t : simdjson::dom::array(j["tensors"])) {
        if (std::string_view(t["name"]) == "blk.0.ffn_up.weight") {
            ++weighted;
            CHECK(double(t["weighted_rmse"]) > 0);
            CHECK(double(t["weighted_rmse"]) != double(t["rmse"]));
        } else {
            CHECK(t["weighted_rmse"].is_null());
        }
    }
    CHECK(weighted == 1);
    CHECK(double(j["total"]["weighted_rmse"]) == doctest::Approx(double(j["tensors"].at(0)["weighted_rmse"])));
    r = run_gguf("error --type q4_0 --tensor 'ffn_up' --imatrix " + imatrix + " " + fx()("demo-llama-f16.gguf"));
    CHECK(r.out.find("imatrix rmse") != std::string::npos);
    r = run_gguf("error --json --type q4_0 --tensor 'ffn_up' " + fx()("demo-llama-f16.gguf"));
    CHECK(parse_json(p, r.out)["total"]["weighted_rmse"].is_null());
}

TEST_CASE("gguf error refuses unknown types and unreadable files with exit 2") {
    auto r = run_gguf("error --type q9_9 " + fx()("demo-llama-f16.gguf"));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'q9_9' is not a type") != std::string::npos);
    r = run_gguf("error --type q8_0 " + shell_quote((fx().dir / "malformed/lying-kv-count.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("offset 16") != std::string::npos);
    r = run_gguf("error --type q8_0 --imatrix " + fx()("demo-llama-f16.gguf") + " " + fx()("demo-llama-f16.gguf"));
    CHECK(r.exit_code == 2);  // a model is not an importance matrix
    CHECK(r.err.find("not an importance matrix") != std::string::npos);
}

namespace {

// A model with one tensor of each kind whose faults the tests plant: token_embd (f16),
// norm (f32), q4k (q4_K) and q8 (q8_0), quantized from a smooth pattern.
struct Planted {
    test::TempDir dir;
    std::string path(const std::string& name) const { return (dir / name).string(); }
    std::vector<uint8_t> clean;
    Planted() {
        gguf::Writer w;
        w.set("general.architecture", gguf::OwnedValue::string("llama"));
        // The keys llama.cpp needs of any llama model (gguf check asks for them).
        w.set("llama.context_length", gguf::OwnedValue::u32(256));
        w.set("llama.embedding_length", gguf::OwnedValue::u32(256));
        w.set("llama.block_count", gguf::OwnedValue::u32(0));
        w.set("llama.attention.layer_norm_rms_epsilon", gguf::OwnedValue::f32(1e-5f));
        std::vector<float> x(2 * 256);
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 0.37f) * 0.05f;
        for (auto [name, type] : {std::pair{"token_embd.weight", gguf::TypeId::F16}, std::pair{"norm.weight", gguf::TypeId::F32},
                                  std::pair{"q4k.weight", gguf::TypeId::Q4_K}, std::pair{"q8.weight", gguf::TypeId::Q8_0}}) {
            auto bytes = std::make_shared<std::vector<uint8_t>>(quant::row_bytes(type, 256) * 2);
            quant::quantize(type, x, 256, {}, *bytes);
            w.add_tensor(name, type, {256, 2}, [bytes](gguf::ByteSink& out) { out.write(*bytes); });
        }
        clean = w.write_to_memory();
        test::write_bytes(dir / "clean.gguf", clean);
    }
    // Writes a copy with `bytes` at offset `at` of tensor `name`'s data.
    std::string plant(const std::string& file, const char* name, uint64_t at, std::vector<uint8_t> bytes) const {
        std::vector<uint8_t> b = clean;
        const gguf::File f = gguf::File::parse(clean, "clean");
        const gguf::TensorInfo* t = f.find_tensor(name);
        std::copy(bytes.begin(), bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(f.data_section_offset() + t->data_offset + at));
        test::write_bytes(dir / file, b);
        return path(file);
    }
};

}  // namespace

TEST_CASE("gguf check: a clean file passes with exit 0") {
    Planted p;
    auto r = run_gguf("check " + shell_quote(p.path("clean.gguf")));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("0 errors, 0 warnings") != std::string::npos);
    r = run_gguf("check " + fx()("demo-llama-f16.gguf"));
    CHECK(r.exit_code == 0);
}

TEST_CASE("gguf check reports every planted fault, naming its tensor, key or file, and nothing on the originals") {
    const std::filesystem::path dir = fx().dir / "faults";
    simdjson::dom::parser parser;
    for (const auto& [name, bytes] : gguf::fixtures::planted_fault_originals()) {
        if (name.find("-0000") != std::string::npos && name.find("-00001-") == std::string::npos) continue;  // the set is checked via part 1
        CAPTURE(name);
        auto r = run_gguf("check " + shell_quote((dir / name).string()));
        CHECK(r.exit_code == 0);
        CHECK_MESSAGE(r.out.find("0 errors, 0 warnings") != std::string::npos, r.out);
    }
    const std::vector<gguf::fixtures::PlantedFault> faults = gguf::fixtures::planted_faults();
    CHECK(faults.size() >= 20);
    std::set<std::string> kinds;
    for (const auto& f : faults) {
        CAPTURE(f.name);
        CHECK(kinds.insert(f.name).second);
        auto r = run_gguf("check --json " + shell_quote((dir / f.files.front().first).string()));
        CHECK(r.exit_code == (f.warning ? 0 : 1));
        auto j = parse_json(parser, r.out);
        bool found = false;
        for (auto finding : simdjson::dom::array(j["findings"])) {
            const std::string_view where = finding["where"], message = finding["message"], severity = finding["severity"];
            if (severity == (f.warning ? "warning" : "error") && where.ends_with(f.where) &&
                message.find(f.expected) != std::string_view::npos)
                found = true;
        }
        CHECK_MESSAGE(found, r.out);
    }
}

TEST_CASE("gguf check: trailing bytes are a warning; --json and --max-findings; unreadable files exit 2") {
    Planted p;
    std::vector<uint8_t> b = p.clean;
    b.insert(b.end(), 100, 0);
    test::write_bytes(p.dir / "trailing.gguf", b);
    auto r = run_gguf("check " + shell_quote(p.path("trailing.gguf")));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("warning: " + p.path("trailing.gguf") + ": 100 bytes after the last tensor's padded data") != std::string::npos);

    // Two faults, at most one listed: the counts stay exact.
    std::vector<uint8_t> two = p.clean;
    const gguf::File f = gguf::File::parse(p.clean, "clean");
    two[f.data_section_offset() + f.find_tensor("token_embd.weight")->data_offset + 1] = 0x7c;
    two[f.data_section_offset() + f.find_tensor("q8.weight")->data_offset + 1] = 0x7c;
    test::write_bytes(p.dir / "two.gguf", two);
    r = run_gguf("check --json --max-findings 1 " + shell_quote(p.path("two.gguf")));
    CHECK(r.exit_code == 1);
    simdjson::dom::parser parser;
    auto j = parse_json(parser, r.out);
    CHECK(uint64_t(j["errors"]) == 2);
    CHECK(simdjson::dom::array(j["findings"]).size() == 1);
    CHECK(bool(j["truncated"]));
    CHECK(std::string_view(j["findings"].at(0)["severity"]) == "error");

    // A structural fault the reader can read past is a finding (exit 1); one that leaves
    // nothing to read exits 2 with the reader's one-line error.
    const std::string overlapping = (fx().dir / "malformed/overlapping-tensors.gguf").string();
    r = run_gguf("check " + shell_quote(overlapping));
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("error: b: data [32, 64) overlaps tensor 'a' at [0, 64) (file offset 57)") != std::string::npos);
    const std::string lying = (fx().dir / "malformed/lying-string-length.gguf").string();
    r = run_gguf("check " + shell_quote(lying));
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("error: " + lying + ": offset ") == 0);
}

TEST_CASE("gguf requant: --help, --list, --dry-run (text and JSON), a written model that passes gguf check, clear refusals") {
    auto r = run_gguf("requant --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"--type", "--imatrix", "--include-weights", "--exclude-weights", "--tensor-type", "--output-tensor-type",
                            "--token-embedding-type", "--pure", "--leave-output-tensor", "--allow-requantize", "--override-kv",
                            "--keep-split", "--threads", "--dry-run", "--quiet"})
        CHECK(r.out.find(opt) != std::string::npos);
    r = run_gguf("requant --list");
    CHECK(r.exit_code == 0);
    for (const char* mix : {"Q4_K_M", "IQ2_XXS", "MXFP4_MOE", "Q2_0", "COPY", "BF16"}) CHECK(r.out.find(mix) != std::string::npos);

    test::TempDir dir;
    const std::string in = fx()("demo-llama-f16.gguf");
    r = run_gguf("requant " + in + " --type q8_0 --dry-run");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("blk.0.attn_q.weight") != std::string::npos);
    CHECK(r.out.find("f16 -> q8_0") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "x.gguf"));
    r = run_gguf("requant " + in + " --type Q8_0 --dry-run --json");
    simdjson::dom::parser parser;
    auto j = parse_json(parser, r.out);
    CHECK(simdjson::dom::array(j["tensors"]).size() == 21);
    CHECK(double(j["bits_per_weight_out"]) < double(j["bits_per_weight_in"]));

    const std::string out = shell_quote((dir / "q8.gguf").string());
    r = run_gguf("requant " + in + " " + out + " --type Q8_0 --threads 2 --override-kv general.name=str:renamed --override-kv x.n=int:7");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("21 tensors, 16 converted") != std::string::npos);
    r = run_gguf("check " + out);
    CHECK_MESSAGE(r.exit_code == 0, r.out);
    r = run_gguf("inspect --json " + out);
    auto k = parse_json(parser, r.out);
    CHECK(std::string_view(k["file_type"]["name"]) == "MOSTLY_Q8_0");
    CHECK(std::string_view(k["name"]) == "renamed");

    r = run_gguf("requant " + in + " " + out + " --type nonsense");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'nonsense' is not a type or mix") != std::string::npos);
    gguf::fixtures::DemoOptions wide;  // rows of whole 256-blocks: no fallback
    wide.n_embd = 256;
    wide.n_ff = 512;
    gguf::fixtures::demo_model(wide).write(dir / "wide.gguf");
    r = run_gguf("requant " + shell_quote((dir / "wide.gguf").string()) + " " + shell_quote((dir / "iq1.gguf").string()) + " --type IQ1_S");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("needs an importance matrix") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "iq1.gguf"));
    r = run_gguf("requant " + in + " " + out + " --type Q4_0 --override-kv a=int:-1");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--override-kv") != std::string::npos);
}

TEST_CASE("gguf requant interrupted by SIGINT exits 130 and leaves neither output nor temporary file") {
    test::TempDir dir;
    gguf::fixtures::DemoOptions big;
    big.n_embd = 512;
    big.n_ff = 2048;
    big.n_layer = 8;
    big.n_vocab = 8000;
    gguf::fixtures::demo_model(big).write(dir / "big.gguf");
    // IQ4_XS on one thread takes seconds here; the signal comes after 0.5 s.
    const std::string cmd = shell_quote(GGUF_BINARY) + " requant " + shell_quote((dir / "big.gguf").string()) + " " +
                            shell_quote((dir / "out.gguf").string()) + " --type IQ4_XS --threads 1 2>" + shell_quote((dir / "err").string()) +
                            " & pid=$!; sleep 0.5; kill -INT $pid; wait $pid";
    const int status = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(status) == 130);
    const std::vector<uint8_t> err = test::read_bytes(dir / "err");
    CHECK(std::string(err.begin(), err.end()).find("interrupted: nothing was written") != std::string::npos);
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.path().filename() != "big.gguf" && e.path().filename() != "err";
    CHECK(files == 0);
}

TEST_CASE("gguf imatrix: show (text, sorted, JSON), convert between the formats, merge weighted by counts; requant warns of unused entries") {
    auto r = run_gguf("imatrix --help");
    CHECK(r.exit_code == 0);
    for (const char* sub : {"show", "convert", "merge"}) CHECK(r.out.find(sub) != std::string::npos);
    r = run_gguf("imatrix show --help");
    for (const char* opt : {"--sort", "--json", "--top", "--chunk-size"}) CHECK(r.out.find(opt) != std::string::npos);

    // An importance matrix for the demo model's first attention tensor, plus an entry no
    // tensor of the model has.
    test::TempDir dir;
    const gguf::File model = gguf::File::open(fx().dir / "demo-llama-f16.gguf");
    const auto columns = static_cast<size_t>(model.find_tensor("blk.0.attn_q.weight")->shape[0]);
    quant::ImportanceMatrix m;
    std::vector<float> sums(columns, 64.0f);
    sums[7] = 6400.0f;  // column 7 matters most
    m.set("blk.0.attn_q.weight", quant::ImatrixEntry{sums, {64.0f}});
    m.set("blk.99.ffn_up.weight", quant::ImatrixEntry{{1.0f, 2.0f}, {1.0f}});
    m.datasets = {"corpus.txt"};
    m.chunk_size = 64;
    m.chunk_count = 1;
    m.save(dir / "im.dat", quant::ImatrixFormat::Legacy);
    const std::string dat = shell_quote((dir / "im.dat").string()), gguf_im = shell_quote((dir / "im.gguf").string());

    r = run_gguf("imatrix show " + dat + " --chunk-size 64 --top 3");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("legacy") != std::string::npos);
    CHECK(r.out.find("blk.0.attn_q.weight") != std::string::npos);
    CHECK(r.out.find("  7 ") != std::string::npos);  // the most important column leads the list
    r = run_gguf("imatrix show " + dat + " --chunk-size 64 --sort max --json");
    simdjson::dom::parser parser;
    auto j = parse_json(parser, r.out);
    CHECK(std::string_view(j["format"]) == "legacy");
    simdjson::dom::array tensors = j["tensors"];
    REQUIRE(tensors.size() == 2);
    CHECK(std::string_view(tensors.at(0)["name"]) == "blk.0.attn_q.weight");  // max 100 beats 2
    CHECK(double(tensors.at(0)["max"]) == 100.0);
    CHECK(uint64_t(tensors.at(0)["top"].at(0)["column"]) == 7);

    r = run_gguf("imatrix convert " + dat + " " + gguf_im + " --chunk-size 64");
    CHECK(r.exit_code == 0);
    const gguf::File converted = gguf::File::open(dir / "im.gguf");
    CHECK(converted.find("imatrix.chunk_size")->value.as_uint() == 64);
    CHECK(converted.find_tensor("blk.0.attn_q.weight.in_sum2") != nullptr);

    r = run_gguf("imatrix merge " + shell_quote((dir / "both.gguf").string()) + " " + gguf_im + " " + dat + " --chunk-size 64");
    CHECK(r.exit_code == 0);
    const quant::ImportanceMatrix both = quant::ImportanceMatrix::load(dir / "both.gguf");
    CHECK(both.entries().at("blk.0.attn_q.weight").counts == std::vector<float>{128.0f});
    CHECK((*both.find("blk.0.attn_q.weight"))[7] == 100.0f);
    CHECK(both.chunk_count == 2);
    CHECK(both.datasets == std::vector<std::string>{"corpus.txt", "corpus.txt"});

    r = run_gguf("imatrix show " + shell_quote((dir / "missing.dat").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("missing.dat: cannot open the file") != std::string::npos);

    // requant names the entry the model lacks, in text and in JSON.
    r = run_gguf("requant " + fx()("demo-llama-f16.gguf") + " --type Q4_K_M --imatrix " + dat + " --dry-run");
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("warning: the importance matrix's entry 'blk.99.ffn_up.weight' matches no tensor of the model") != std::string::npos);
    r = run_gguf("requant " + fx()("demo-llama-f16.gguf") + " --type Q4_K_M --imatrix " + gguf_im + " --dry-run --json");
    auto plan = parse_json(parser, r.out);
    CHECK(simdjson::dom::array(plan["warnings"]).size() == 1);
}

TEST_CASE("gguf requant on a disk that fills up says so and leaves no file") {
    // A file-size limit stands in for a full disk: writes past it fail (EFBIG) as they
    // would with ENOSPC, once the signal the kernel sends is ignored.
    test::TempDir dir;
    const std::string cmd = "bash -c " + shell_quote("trap '' XFSZ; ulimit -f 64; " + shell_quote(GGUF_BINARY) + " requant " +
                                                     fx()("demo-llama-f16.gguf") + " " + shell_quote((dir / "out.gguf").string()) +
                                                     " --type F32 2>" + shell_quote((dir / "err").string()));
    const int status = std::system(cmd.c_str());
    CHECK(WEXITSTATUS(status) == 2);
    std::ifstream err(dir / "err");
    const std::string text((std::istreambuf_iterator<char>(err)), {});
    CHECK(text.find("write failed") != std::string::npos);
    CHECK(text.find("nothing was written to") != std::string::npos);
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.path().filename() != "err";
    CHECK(files == 0);
}

TEST_CASE("a mistyped command names itself and the closest command; gguf help CMD shows that command's help") {
    auto r = run_gguf("inspectt x.gguf");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'inspectt' is not a 'gguf' command. Did you mean 'inspect'?") != std::string::npos);
    r = run_gguf("imatrix shwo x.dat");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'shwo' is not a 'gguf imatrix' command. Did you mean 'show'?") != std::string::npos);
    r = run_gguf("frobnicate");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("The commands are: inspect, error, check, requant, convert, compare-methods, split, merge, diff, edit, mem, compress, decompress, imatrix") != std::string::npos);
    r = run_gguf("help requant");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--imatrix") != std::string::npos);
    r = run_gguf("help");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("requant") != std::string::npos);
    // A usage error points at the subcommand's own help.
    r = run_gguf("check --threads -1 x.gguf");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'-1' is not a thread count") != std::string::npos);
    CHECK(r.err.find("Run 'gguf check --help'") != std::string::npos);
    r = run_gguf("requant " + fx()("demo-llama-f16.gguf") + " --override-kv x.y=bool:maybe --type Q8_0 --dry-run");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'maybe' is not a valid bool (true or false)") != std::string::npos);
    r = run_gguf("error " + fx()("demo-llama-f16.gguf") + " --type Q4_K_M");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("q4_K") != std::string::npos);  // lists the valid types
}

TEST_CASE("gguf requant takes llama-quantize's forms: IN OUT TYPE [NTHREADS], numeric file type ids, Q4_K for Q4_K_M") {
    test::TempDir dir;
    gguf::fixtures::DemoOptions wide;  // rows of whole 256-blocks: no fallback
    wide.n_embd = 256;
    wide.n_ff = 512;
    gguf::fixtures::demo_model(wide).write(dir / "wide.gguf");
    const std::string in = shell_quote((dir / "wide.gguf").string());
    auto types = [](const std::filesystem::path& p) {
        std::map<std::string, gguf::TypeId> t;
        const gguf::File f = gguf::File::open(p);
        for (const gguf::TensorInfo& i : f.tensors()) t[std::string(i.name)] = i.type;
        return t;
    };
    auto ffn_up = [](const std::filesystem::path& p) {  // blk.0.ffn_up.weight's type and bytes
        const gguf::File f = gguf::File::open(p);
        const gguf::TensorInfo* i = f.find_tensor("blk.0.ffn_up.weight");
        REQUIRE(i);
        const std::span<const uint8_t> d = f.tensor_data(*i);
        return std::pair{i->type, std::vector<uint8_t>(d.begin(), d.end())};
    };
    auto r = run_gguf("requant " + in + " " + shell_quote((dir / "a.gguf").string()) + " Q4_K_M 2");
    REQUIRE(r.exit_code == 0);
    r = run_gguf("requant " + in + " " + shell_quote((dir / "b.gguf").string()) + " 15");
    REQUIRE(r.exit_code == 0);
    r = run_gguf("requant " + in + " " + shell_quote((dir / "c.gguf").string()) + " --type q4_k");
    REQUIRE(r.exit_code == 0);
    CHECK(types(dir / "a.gguf") == types(dir / "b.gguf"));
    CHECK(types(dir / "a.gguf") == types(dir / "c.gguf"));
    CHECK(types(dir / "a.gguf").at("output.weight") == gguf::TypeId::Q6_K);
    r = run_gguf("requant " + in + " " + shell_quote((dir / "d.gguf").string()) + " Q4_K --pure");
    REQUIRE(r.exit_code == 0);
    CHECK(types(dir / "d.gguf").at("output.weight") == gguf::TypeId::Q4_K);
    r = run_gguf("requant " + in + " " + shell_quote((dir / "e.gguf").string()) + " Q8_0 --type Q4_0");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("given twice") != std::string::npos);

    // requant ARGS into STEM.gguf with OPTION and into STEM-plain.gguf without: the same types,
    // and a file that checks.
    auto requant_beside_plain = [&](const std::string& stem, const std::string& args, const std::string& option) {
        const std::filesystem::path with = dir / (stem + ".gguf"), without = dir / (stem + "-plain.gguf");
        auto res = run_gguf("requant " + in + " " + shell_quote(with.string()) + " " + args + " " + option);
        REQUIRE_MESSAGE(res.exit_code == 0, res.err);
        res = run_gguf("requant " + in + " " + shell_quote(without.string()) + " " + args);
        REQUIRE_MESSAGE(res.exit_code == 0, res.err);
        CHECK(types(with) == types(without));
        CHECK(run_gguf("check " + shell_quote(with.string())).exit_code == 0);
        return std::pair{with, without};
    };
    // blk.0.ffn_up.weight of two files, which must be of `type`: how many of its bytes differ
    // within bytes [first, last) of each block, and how many elsewhere.
    auto ffn_up_changes = [&](const std::filesystem::path& a, const std::filesystem::path& b, gguf::TypeId type, uint32_t first, uint32_t last) {
        const auto [type_a, x] = ffn_up(a);
        const auto [type_b, y] = ffn_up(b);
        REQUIRE(type_a == type);
        REQUIRE(type_b == type);
        REQUIRE(x.size() == y.size());
        const uint32_t block = gguf::type_info(type).type_size;
        size_t inside = 0, outside = 0;
        for (size_t k = 0; k < x.size(); ++k) (k % block >= first && k % block < last ? inside : outside) += x[k] != y[k];
        return std::pair{inside, outside};
    };
    // --effort: fast writes other Q4_0 blocks than the default search (with no more error than
    // llama.cpp's rounding: test_quant_ref), the same types, a file that checks; a wrong name is refused.
    {
        const auto [with, without] = requant_beside_plain("fast", "Q4_0 --pure", "--effort fast");
        const auto [type, fast] = ffn_up(with);
        CHECK(type == gguf::TypeId::Q4_0);
        CHECK(fast != ffn_up(without).second);
    }
    // --unbiased-scales: the same types and codes, only each block's f16 scale fields rescaled
    // (quant::ScaleFit::Unbiased; what they become: test_quant), a file that checks.
    {
        const auto [with, without] = requant_beside_plain("unbiased", "Q2_K --pure", "--unbiased-scales");
        const uint32_t block = gguf::type_info(gguf::TypeId::Q2_K).type_size;
        const auto [scale_bytes_changed, other_bytes_changed] = ffn_up_changes(with, without, gguf::TypeId::Q2_K, block - 4, block);  // d, dmin: a Q2_K block's last 4 bytes
        CHECK(other_bytes_changed == 0);
        CHECK(scale_bytes_changed > 0);
    }
    // --effort best on a grid i-quant: both grid searches, the better block of each (test_quant),
    // so other bytes than the default's somewhere, said of no tensor; on F16 it is said to change nothing.
    {
        const auto [with, without] = requant_beside_plain("best", "IQ3_S --pure", "--effort best");
        const auto [type, best] = ffn_up(with);
        CHECK(type == gguf::TypeId::IQ3_S);
        CHECK(best != ffn_up(without).second);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "best-again.gguf").string()) + " IQ3_S --pure --effort best");
        CHECK((r.err + r.out).find("changes nothing here") == std::string::npos);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "best-f16.gguf").string()) + " F16 --effort best");
        CHECK(r.exit_code == 0);
        CHECK((r.err + r.out).find("--effort best changes nothing here") != std::string::npos);
        CHECK((r.err + r.out).find("the grid i-quants IQ1_S to IQ3_S") != std::string::npos);
    }
    // Q8_0's efforts change its bytes with and without importance weights: without, fast writes
    // llama.cpp's rounding (other bytes than the default's search, and it says nothing); with
    // them, fast tries one start where the default tries seven.
    {
        const auto [fast_plain, default_plain] = requant_beside_plain("q8-fast-plain", "Q8_0 --pure", "--effort fast");
        CHECK(ffn_up(fast_plain).second != ffn_up(default_plain).second);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "q8-fast-plain-again.gguf").string()) + " Q8_0 --pure --effort fast");
        CHECK(r.exit_code == 0);
        CHECK((r.err + r.out).find("changes nothing here") == std::string::npos);
        quant::ImportanceMatrix m;
        {
            const gguf::File f = gguf::File::open(dir / "wide.gguf");
            const gguf::TensorInfo* up = f.find_tensor("blk.0.ffn_up.weight");
            REQUIRE(up);
            std::vector<float> sums(static_cast<size_t>(up->shape[0]));
            for (size_t c = 0; c < sums.size(); ++c) sums[c] = 1.0f + static_cast<float>((c * 37) % 11);
            m.set("blk.0.ffn_up.weight", {sums, {1.0f}});
        }
        const std::string imatrix = shell_quote((dir / "q8.imatrix.gguf").string());
        m.save(dir / "q8.imatrix.gguf", quant::ImatrixFormat::Gguf);
        const auto [with, without] = requant_beside_plain("q8-fast", "Q8_0 --pure --imatrix " + imatrix, "--effort fast");
        CHECK(ffn_up(with).second != ffn_up(without).second);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "q8-fast-again.gguf").string()) + " Q8_0 --pure --effort fast --imatrix " + imatrix);
        CHECK(r.exit_code == 0);
        CHECK((r.err + r.out).find("changes nothing here") == std::string::npos);
    }
    // --least-squares-scales: IQ2_XS keeps its least-squares scales; by default only its d
    // fields differ from those (halfway to the source's projection, as IQ1_S's, IQ1_M's and
    // IQ2_XXS's, IQ2_S's a quarter: test_quant). On F16 it
    // is said to change nothing.
    {
        quant::ImportanceMatrix m;  // uneven importance for every matrix (the IQ2 mixes need one)
        const gguf::File model = gguf::File::open(dir / "wide.gguf");
        for (const gguf::TensorInfo& i : model.tensors())
            if (i.n_dims >= 2) {
                std::vector<float> sums(i.shape[0]);
                for (size_t c = 0; c < sums.size(); ++c) sums[c] = 1.0f + static_cast<float>(c % 7);
                m.set(std::string(i.name), {sums, {1.0f}});
            }
        const std::string imatrix = (dir / "lsq.imatrix.gguf").string();
        m.save(imatrix, quant::ImatrixFormat::Gguf);
        const auto [with, without] = requant_beside_plain("lsq", "IQ2_S --pure --imatrix " + shell_quote(imatrix), "--least-squares-scales");  // the IQ2_S mix: IQ2_XS throughout
        const auto [d_changed, other_changed] = ffn_up_changes(with, without, gguf::TypeId::IQ2_XS, 0, 2);  // d: an IQ2_XS block's first 2 bytes
        CHECK(other_changed == 0);
        CHECK(d_changed > 0);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "lsq-f16.gguf").string()) + " F16 --least-squares-scales");
        CHECK(r.exit_code == 0);
        CHECK((r.err + r.out).find("--least-squares-scales changes nothing here") != std::string::npos);
        r = run_gguf("requant " + in + " " + shell_quote((dir / "both.gguf").string()) + " Q2_K --least-squares-scales --unbiased-scales");
        CHECK(r.exit_code == 2);
    }
    // --no-direct-io: written through the page cache, the same bytes as the default's O_DIRECT
    // write (gguf::WriteOptions::direct_io; test_writer checks its edge cases).
    {
        const auto [with, without] = requant_beside_plain("cached", "Q4_K_M", "--no-direct-io");
        CHECK(test::read_bytes(with) == test::read_bytes(without));
    }
    r = run_gguf("requant " + in + " " + shell_quote((dir / "f16.gguf").string()) + " F16 --unbiased-scales");  // no fitted type: said so
    CHECK(r.exit_code == 0);
    CHECK((r.err + r.out).find("--unbiased-scales changes nothing here") != std::string::npos);

    r = run_gguf("requant " + in + " " + shell_quote((dir / "x.gguf").string()) + " Q4_0 --effort quick");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--effort: 'quick' is not fast, default or best") != std::string::npos);

    r = run_gguf("requant --list");
    CHECK(r.out.find("Q4_K          15  q4_K      4.50  alias of Q4_K_M") != std::string::npos);
    CHECK(r.out.find("IQ2_S         28  iq2_xs    2.31") != std::string::npos);  // the base's bpw, and nothing that disagrees
    r = run_gguf("requant --help");
    CHECK(r.out.find("REQUIRED") != std::string::npos);
    CHECK(r.out.find("one per core") != std::string::npos);
    r = run_gguf("requant " + in + " --type Q8_0 --dry-run");
    CHECK(r.out.rfind("tensor ", 0) == 0);  // the table has a header
}

TEST_CASE("importance-matrix inputs: a model, a directory, a text file and OUT = IN are refused with the path and the reason") {
    test::TempDir dir;
    const std::string model = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("imatrix show " + model);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("demo-llama-f16.gguf: not an importance matrix") != std::string::npos);
    r = run_gguf("requant " + model + " " + shell_quote((dir / "o.gguf").string()) + " --type Q8_0 --imatrix " + model);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("not an importance matrix") != std::string::npos);
    r = run_gguf("imatrix show " + shell_quote(dir.path().string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("is a directory") != std::string::npos);
    std::ofstream(dir / "notes.txt") << "this is a text file, not an importance matrix\n";
    r = run_gguf("imatrix show " + shell_quote((dir / "notes.txt").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("notes.txt: offset 0: not an importance matrix") != std::string::npos);

    quant::ImportanceMatrix m;
    m.set("blk.99.ffn_up.weight", quant::ImatrixEntry{{1.0f, 2.0f}, {1.0f}});
    m.chunk_size = 64;
    m.save(dir / "im.gguf", quant::ImatrixFormat::Gguf);
    const auto before = test::read_bytes(dir / "im.gguf");
    const std::string im = shell_quote((dir / "im.gguf").string());
    r = run_gguf("imatrix merge " + im + " " + im + " " + im);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("would replace the input") != std::string::npos);
    r = run_gguf("imatrix convert " + im + " " + im);
    CHECK(r.exit_code == 2);
    CHECK(test::read_bytes(dir / "im.gguf") == before);
    // No entry matches the model: said plainly, besides the per-entry warnings.
    r = run_gguf("requant " + model + " --type Q8_0 --imatrix " + im + " --dry-run");
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("none of the importance matrix's 1 entries matches a tensor of the model") != std::string::npos);
}

TEST_CASE("requant names the tensor holding a value it cannot quantize") {
    test::TempDir dir;
    gguf::Writer w;
    w.set("general.architecture", gguf::OwnedValue::string("llama"));
    std::vector<float> values(64 * 4, 0.5f);
    values[3 * 64 + 5] = std::nanf("");
    const auto* bytes = reinterpret_cast<const uint8_t*>(values.data());
    w.add_tensor("blk.0.ffn_up.weight", gguf::TypeId::F32, {64, 4}, std::span<const uint8_t>(bytes, values.size() * 4));
    w.write(dir / "nan.gguf");
    auto r = run_gguf("requant " + shell_quote((dir / "nan.gguf").string()) + " " + shell_quote((dir / "o.gguf").string()) + " --type F16");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tensor 'blk.0.ffn_up.weight', row 3, column 5: nan cannot be quantized") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "o.gguf"));
}

TEST_CASE("bench --json measures every chosen type, path and operation beside memcpy") {
    const auto r = test::run_gguf("bench --types q4_0,q4_K,Q8_K --isa scalar --values 4096 --runs 1 --json");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    simdjson::dom::parser p;
    const simdjson::dom::array records = parse_json(p, r.out).get_array();
    std::set<std::string> seen;
    for (simdjson::dom::element e : records) {
        const std::string key = std::string(e["type"].get_string().value()) + "/" + std::string(e["isa"].get_string().value()) + "/" +
                                std::string(e["op"].get_string().value());
        seen.insert(key);
        CHECK(e["threads"].get_int64().value() == 1);
        for (const char* field : {"gbps_in", "gbps_out", "ns_per_value", "memcpy_gbps"}) {
            CAPTURE(field);
            CHECK(e[field].get_double().value() > 0);
        }
    }
    CHECK(seen == std::set<std::string>{"q4_0/scalar/dequant", "q4_0/scalar/dot", "q4_K/scalar/dequant", "q4_K/scalar/dot", "q8_K/scalar/dequant",
                                        "q8_K/scalar/dot"});
}

TEST_CASE("bench --list --json says what each path runs with its own code; the scalar path has everything") {
    const auto r = test::run_gguf("bench --list --json --types q4_0,q8_K,bf16 --isa scalar");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    simdjson::dom::parser p;
    std::map<std::string, std::array<bool, 3>> seen;
    for (simdjson::dom::element e : parse_json(p, r.out).get_array())
        seen[std::string(e["type"].get_string().value())] = {e["dequant"].get_bool().value(), e["dot"].get_bool().value(),
                                                              e["activations"].get_bool().value()};
    CHECK(seen["q4_0"] == std::array<bool, 3>{true, true, false});
    CHECK(seen["q8_K"] == std::array<bool, 3>{true, true, true});  // an activation format; as weights, multiplied with f32 activations
    CHECK(seen["bf16"] == std::array<bool, 3>{true, true, true});
}

TEST_CASE("bench refuses unknown types and paths, and GGUFKIT_ISA names a path or fails clearly") {
    auto r = test::run_gguf("bench --types q4_9 --runs 1");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("q4_9") != std::string::npos);
    r = test::run_gguf("bench --isa sse9 --runs 1");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("sse9") != std::string::npos);
    r = test::run_gguf("bench --types q8_0 --values 4096 --runs 1 --ops dequant --isa scalar");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("active: ") != std::string::npos);
    // --gpu measures nothing when it cannot run: a build without CUDA or a machine without a GPU says so.
    r = test::run_gguf("bench --types q8_0 --values 4096 --runs 1 --gpu");
    if (r.exit_code != 0) {
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("--gpu: ") != std::string::npos);
        CHECK(r.out.empty());
    } else {
        CHECK(r.out.find(" cuda ") != std::string::npos);
    }

    setenv("GGUFKIT_ISA", "bogus", 1);
    r = test::run_gguf("bench --types q8_0 --values 4096 --runs 1 --ops dequant --isa scalar");
    unsetenv("GGUFKIT_ISA");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("GGUFKIT_ISA=bogus") != std::string::npos);
    setenv("GGUFKIT_ISA", "scalar", 1);
    r = test::run_gguf("bench --types q8_0 --values 4096 --runs 1 --ops dequant --isa scalar");
    unsetenv("GGUFKIT_ISA");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("active: scalar") != std::string::npos);
}

TEST_CASE("tokenize prints ids and pieces with the model's own vocabulary, --ids as llama-tokenize does") {
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("tokenize " + demo + " 'w0 w1' --ids");
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "[1, 311, 312]\n");  // "▁w0" is token 311 of the demo vocabulary
    r = run_gguf("tokenize " + demo + " 'w0 w1' --no-bos --ids");
    CHECK(r.out == "[311, 312]\n");
    r = run_gguf("tokenize " + demo + " -p 'w0'");
    CHECK(r.out == "     1 -> '<s>'\n   311 -> ' w0'\n");
    // Control tokens in the text are tokens by default (llama-tokenize's default), text with
    // --no-parse-special; after a special token the text starts with a space again.
    r = run_gguf("tokenize " + demo + " '<s>w1' --no-bos --ids");
    CHECK(r.out == "[1, 312]\n");
    r = run_gguf("tokenize " + demo + " '<s>w1' --no-bos --ids --no-parse-special");
    CHECK(r.out.find("[1,") == std::string::npos);
    // Escapes in the text argument: \n is the byte 0x0A, whose token is <0x0A> (id 3 + 10);
    // then "w" (307) and "1" (<0x31>, 52), no space in front.
    r = run_gguf("tokenize " + demo + " 'w0\\nw1' --no-bos --ids");
    CHECK(r.out == "[311, 13, 307, 52]\n");
    r = run_gguf("tokenize " + demo + " 'w0' --show-count");
    CHECK(r.out.ends_with("Total number of tokens: 2\n"));
}

TEST_CASE("tokenize -f FILE and --json") {
    test::TempDir dir;
    {
        std::ofstream(dir / "text.txt", std::ios::binary) << "w2 w3\nw4";
    }
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("tokenize " + demo + " -f " + shell_quote((dir / "text.txt").string()) + " --ids");
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "[1, 313, 314, 13, 307, 55]\n");
    simdjson::dom::parser p;
    r = run_gguf("tokenize " + demo + " 'w0' --json");
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    CHECK(std::string_view(j["model"]) == "llama");
    CHECK(int64_t(j["count"]) == 2);
    CHECK(int64_t(j["vocabulary"]) == 320);
    CHECK(int64_t(j["tokens"].at(1)["id"]) == 311);
    CHECK(std::string_view(j["tokens"].at(1)["piece"]) == "\xe2\x96\x81w0");
    CHECK(std::string_view(j["tokens"].at(1)["text"]) == " w0");
    r = run_gguf("tokenize " + demo + " 'w0' --json --ids");
    j = parse_json(p, r.out);
    CHECK(int64_t(j["ids"].at(0)) == 1);
}

TEST_CASE("tokenize: bad usage and bad vocabularies exit 2 with the reason") {
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("tokenize " + demo);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("exactly one") != std::string::npos);
    r = run_gguf("tokenize " + demo + " text -f other.txt");
    CHECK(r.exit_code == 2);
    r = run_gguf("tokenize " + fx()("faults/token-id-outside-vocabulary.gguf") + " w0");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tokenizer.ggml.eos_token_id") != std::string::npos);
    r = run_gguf("tokenize " + fx()("all-value-types.gguf") + " w0");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tokenizer.ggml.model: missing") != std::string::npos);
    r = run_gguf("tokenize --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"--ids", "--json", "--no-bos", "--no-parse-special", "-f,--file", "--stdin"}) CHECK(r.out.find(opt) != std::string::npos);
}

TEST_CASE("gguf imatrix compute: a demo model on a text, GGUF and .dat, the same with 1 and 2 threads, read back by show") {
    auto r = run_gguf("imatrix compute --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"-f", "-o", "-c", "--chunks", "--process-output", "--threads", "--activations"}) CHECK(r.out.find(opt) != std::string::npos);

    test::TempDir dir;
    std::string text;
    for (int i = 0; i < 40; ++i) text += "The quick brown fox " + std::to_string(i) + " jumps over the lazy dog.\n";
    {
        std::ofstream out(dir / "text.txt", std::ios::binary);
        out << text;
    }
    const std::string model = fx()("demo-llama-f16.gguf"), txt = shell_quote((dir / "text.txt").string());
    auto path = [&](const char* name) { return shell_quote((dir / name).string()); };
    r = run_gguf("imatrix compute " + model + " -f " + txt + " -o " + path("one.gguf") + " -c 32 --chunks 4 --threads 1");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.find("[1/4]") != std::string::npos);
    CHECK(r.err.find("[4/4]") != std::string::npos);
    r = run_gguf("imatrix compute " + model + " -f " + txt + " -o " + path("two.gguf") + " -c 32 --chunks 4 --threads 2");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(test::read_bytes(dir / "one.gguf") == test::read_bytes(dir / "two.gguf"));

    const quant::ImportanceMatrix m = quant::ImportanceMatrix::load(dir / "one.gguf");
    CHECK(m.format == quant::ImatrixFormat::Gguf);
    CHECK(m.chunk_count == 4);
    CHECK(m.chunk_size == 32);
    REQUIRE(m.datasets.size() == 1);
    CHECK(m.datasets[0] == (dir / "text.txt").string());
    CHECK(m.size() == 14);  // 2 layers x 7 matrices; output.weight only with --process-output
    for (const auto& [name, e] : m.entries()) {
        CAPTURE(name);
        CHECK(e.counts == std::vector<float>{128.0f});
        CHECK(std::all_of(e.sums.begin(), e.sums.end(), [](float s) { return s > 0; }));
    }
    r = run_gguf("imatrix show " + path("one.gguf"));
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("14 entries, 4 chunks of 32 tokens") != std::string::npos);
    CHECK(r.out.find("blk.1.ffn_down.weight") != std::string::npos);

    // .dat: the legacy format; --process-output adds output.weight.
    r = run_gguf("imatrix compute " + model + " -f " + txt + " -o " + path("im.dat") + " -c 32 --chunks 2 --process-output");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const quant::ImportanceMatrix d = quant::ImportanceMatrix::load(dir / "im.dat", 32);
    CHECK(d.format == quant::ImatrixFormat::Legacy);
    CHECK(d.size() == 15);
    CHECK(d.find("output.weight") != nullptr);
    r = run_gguf("imatrix show " + path("im.dat") + " --chunk-size 32");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("output.weight") != std::string::npos);

    // Too short a text for two chunks: a plain error.
    r = run_gguf("imatrix compute " + model + " -f " + txt + " -o " + path("x.gguf") + " -c 4096");
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("shorter than two chunks") != std::string::npos);
}

// ---- gguf perplexity, gguf kld, gguf generate ------------------------------------------------

namespace {

// A text of demo-vocabulary words ("w0".."w8" are one token each): n tokens, BOS added.
std::string demo_words(int n) {
    std::string text;
    uint64_t s = 7;
    for (int i = 0; i < n; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        text += (i ? " w" : "w") + std::to_string((s >> 33) % 9);
    }
    return text;
}

struct EvalFiles {
    test::TempDir dir;
    std::string text, short_text;
    EvalFiles() {
        std::ofstream(dir / "text.txt", std::ios::binary) << demo_words(200);
        std::ofstream(dir / "short.txt", std::ios::binary) << demo_words(60);
        text = shell_quote((dir / "text.txt").string());
        short_text = shell_quote((dir / "short.txt").string());
    }
    // The demo model with some keys set or removed and one tensor left out; returns its quoted path.
    std::string variant(const std::string& name, const std::vector<std::pair<std::string, gguf::OwnedValue>>& set,
                        const std::vector<std::string>& remove = {}, const std::string& drop_tensor = "") const {
        const std::vector<uint8_t> bytes = gguf::fixtures::demo_model().write_to_memory();
        const gguf::File f = gguf::File::parse(bytes, "demo.gguf");
        gguf::Writer w;
        for (const gguf::KeyValue& kv : f.kvs()) w.set(std::string(kv.key), kv.value);
        for (const auto& [k, v] : set) w.set(k, v);
        for (const std::string& k : remove) w.remove(k);
        for (const gguf::TensorInfo& t : f.tensors()) {
            if (t.name == drop_tensor) continue;
            w.add_tensor(std::string(t.name), t.type, std::vector<uint64_t>(t.dims().begin(), t.dims().end()), f.tensor_data(t));
        }
        w.write(dir / name);
        return shell_quote((dir / name).string());
    }
};

double json_number(simdjson::dom::element e) { return double(e); }

}  // namespace

TEST_CASE("gguf perplexity: running figures, the final estimate, memory and arithmetic; the same PPL on 1 and 2 threads") {
    const EvalFiles ef;
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("perplexity " + demo + " -f " + ef.text + " -c 64");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[1]") != std::string::npos);
    CHECK(r.out.find("[3]") != std::string::npos);
    CHECK(r.out.find("over 3 chunks, n_ctx=64") != std::string::npos);
    CHECK(r.out.find("mapped weights") != std::string::npos);
    CHECK(r.out.find("KV cache") != std::string::npos);
    CHECK(r.out.find("arithmetic: f32") != std::string::npos);
    CHECK(r.out.find("tokens/s") != std::string::npos);
    const size_t at = r.out.find("Final estimate: PPL = ");
    REQUIRE(at != std::string::npos);
    const double ppl = std::stod(r.out.substr(at + 22));
    CHECK(std::isfinite(ppl));
    CHECK(ppl > 1.0);

    simdjson::dom::parser p;
    std::map<int, double> by_threads;
    for (int threads : {1, 2}) {
        r = run_gguf("perplexity " + demo + " -f " + ef.text + " -c 64 --json --threads " + std::to_string(threads));
        REQUIRE(r.exit_code == 0);
        auto j = parse_json(p, r.out);
        by_threads[threads] = json_number(j["ppl"]);
        CHECK(int64_t(j["chunks"]) == 3);
        CHECK(int64_t(j["threads"]) == threads);
        CHECK(std::string_view(j["arithmetic"]) == "f32");
        CHECK(int64_t(j["memory"]["mapped_weights"]) > 0);
        CHECK(std::abs(json_number(j["ppl"]) - ppl) < 1e-3 * ppl);  // the text printed 4 decimals
    }
    CHECK(by_threads[1] == by_threads[2]);
    // --chunks limits, -t and --activations ggml are taken; ggml says so.
    r = run_gguf("perplexity " + demo + " -f " + ef.text + " -c 64 --chunks 2 -t 1 --activations ggml");
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[2]") != std::string::npos);
    CHECK(r.out.find("[3]") == std::string::npos);
    CHECK(r.out.find("arithmetic: ggml") != std::string::npos);
    std::printf("gguf perplexity on the demo model (c=64, 3 chunks): PPL %.4f; 1 thread %.6f, 2 threads %.6f\n", ppl, by_threads[1],
                by_threads[2]);
}

TEST_CASE("gguf kld: a model against itself has KLD 0 and the same top token everywhere") {
    const EvalFiles ef;
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("kld " + demo + " " + demo + " -f " + ef.text + " -c 64");
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("Mean    KLD:   0.000000") != std::string::npos);
    CHECK(r.out.find("Same top p: 100.000") != std::string::npos);
    CHECK(r.out.find("Mean PPL(Q)/PPL(base)         :   1.000000") != std::string::npos);
    simdjson::dom::parser p;
    r = run_gguf("kld " + demo + " " + demo + " -f " + ef.text + " -c 64 --json");
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(p, r.out);
    CHECK(json_number(j["kld"]["value"]) == 0.0);
    CHECK(json_number(j["same_top"]["value"]) == 1.0);
    CHECK(json_number(j["ppl"]["value"]) == json_number(j["ppl_base"]["value"]));
    // F32 weights against the F16 demo: a small positive divergence.
    r = run_gguf("kld " + demo + " " + fx()("demo-llama-f32.gguf") + " -f " + ef.text + " -c 64 --json");
    REQUIRE(r.exit_code == 0);
    j = parse_json(p, r.out);
    CHECK(json_number(j["kld"]["value"]) >= 0.0);
    CHECK(json_number(j["kld"]["value"]) < 1e-3);
}

namespace {

// The closing report of gguf kld: from "====== Perplexity statistics" to the line after "Same top p".
std::string kld_report(const std::string& out) {
    const size_t from = out.find("====== Perplexity statistics"), to = out.find('\n', out.find("Same top p:"));
    if (from == std::string::npos || to == std::string::npos) return "(no report)";
    return out.substr(from, to - from);
}

// A base file rewritten with some keys set and, when given, kld.logits replaced by zeros of `logits_shape`.
std::string edited_base(const std::filesystem::path& from, const std::filesystem::path& to,
                        const std::vector<std::pair<std::string, gguf::OwnedValue>>& set, const std::vector<uint64_t>& logits_shape = {}) {
    const gguf::File f = gguf::File::open(from);
    gguf::Writer w;
    for (const gguf::KeyValue& kv : f.kvs()) w.set(std::string(kv.key), kv.value);
    for (const auto& [k, v] : set) w.set(k, v);
    static std::vector<uint8_t> zeros;
    for (const gguf::TensorInfo& t : f.tensors()) {
        if (t.name == "kld.logits" && !logits_shape.empty()) {
            zeros.assign(4 * logits_shape[0] * logits_shape[1] * logits_shape[2], 0);
            w.add_tensor("kld.logits", gguf::TypeId::F32, logits_shape, zeros);
        } else {
            w.add_tensor(std::string(t.name), t.type, std::vector<uint64_t>(t.dims().begin(), t.dims().end()), f.tensor_data(t));
        }
    }
    w.write(to);
    return shell_quote(to.string());
}

}  // namespace

TEST_CASE("gguf kld --save-base, then --base-logits: the three forms, and the one-run figures exactly (text and --json)") {
    const EvalFiles ef;
    const std::string base = fx()("demo-llama-f16.gguf"), model = fx()("demo-llama-f32.gguf");
    const std::string saved = shell_quote((ef.dir / "base.kld").string()), saved_while = shell_quote((ef.dir / "while.kld").string());
    const auto one_text = run_gguf("kld " + base + " " + model + " -f " + ef.text + " -c 64");
    const auto one_json = run_gguf("kld " + base + " " + model + " -f " + ef.text + " -c 64 --json");
    REQUIRE(one_text.exit_code == 0);
    REQUIRE(one_json.exit_code == 0);

    // BASE alone: its running perplexity, the final one as gguf perplexity gives it, the file.
    auto r = run_gguf("kld " + base + " -f " + ef.text + " -c 64 --save-base " + saved);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[3]") != std::string::npos);
    CHECK(r.out.find("saving the base's logits to") != std::string::npos);
    const size_t at = r.out.find("Final estimate: PPL(base) = ");
    REQUIRE(at != std::string::npos);
    const auto ppl = run_gguf("perplexity " + base + " -f " + ef.text + " -c 64");
    REQUIRE(ppl.exit_code == 0);
    const std::string final_line = r.out.substr(at + 28, r.out.find('\n', at) - at - 28);
    CHECK(ppl.out.find("Final estimate: PPL = " + final_line + "\n") != std::string::npos);
    REQUIRE(std::filesystem::exists(ef.dir / "base.kld"));
    const auto inspect = run_gguf("inspect " + saved);
    CHECK(inspect.exit_code == 0);
    CHECK(inspect.out.find("\"kld-base\"") != std::string::npos);
    CHECK(inspect.out.find("kld.logits") != std::string::npos);

    // MODEL against the file (n_ctx, chunks and arithmetic from it): the same report.
    r = run_gguf("kld --base-logits " + saved + " " + model + " -f " + ef.text);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[3]") != std::string::npos);
    CHECK(r.out.find("logits of ") != std::string::npos);
    CHECK(kld_report(r.out) == kld_report(one_text.out));
    CHECK(kld_report(r.out) != "(no report)");

    // --json: every field of the one-run output the same, timing and the base's memory aside.
    r = run_gguf("kld --base-logits " + saved + " " + model + " -f " + ef.text + " -c 64 --json");
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p1, p2;
    const simdjson::dom::object one = parse_json(p1, one_json.out).get_object();
    const simdjson::dom::object from_file = parse_json(p2, r.out).get_object();
    size_t compared = 0;
    for (const auto field : one) {
        const std::string key(field.key);
        if (key == "seconds" || key == "tokens_per_second" || key == "memory_base") continue;
        CAPTURE(key);
        simdjson::dom::element theirs;
        REQUIRE(from_file.at_key(key).get(theirs) == simdjson::SUCCESS);
        CHECK(simdjson::minify(theirs) == simdjson::minify(field.value));
        ++compared;
    }
    CHECK(compared >= 20);
    CHECK(std::string_view(from_file["base_logits"]["file"]) == (ef.dir / "base.kld").string());

    // Both models with --save-base: the one-run figures, and the same file as BASE alone.
    r = run_gguf("kld " + base + " " + model + " -f " + ef.text + " -c 64 --save-base " + saved_while);
    REQUIRE(r.exit_code == 0);
    CHECK(kld_report(r.out) == kld_report(one_text.out));
    CHECK(r.out.find("saved the base's logits to") != std::string::npos);
    CHECK(test::read_bytes(ef.dir / "while.kld") == test::read_bytes(ef.dir / "base.kld"));

    // --chunks: a file of 2 chunks, compared over 2 (its count) and over 1.
    r = run_gguf("kld " + base + " -f " + ef.text + " -c 64 --chunks 2 --save-base " + saved + " --json");
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p3;
    CHECK(int64_t(parse_json(p3, r.out)["chunks"]) == 2);
    r = run_gguf("kld --base-logits " + saved + " " + model + " -f " + ef.text);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[2]") != std::string::npos);
    CHECK(r.out.find("[3]") == std::string::npos);
    r = run_gguf("kld --base-logits " + saved + " " + model + " -f " + ef.text + " --chunks 1");
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("[2]") == std::string::npos);

    r = run_gguf("kld --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"--save-base", "--base-logits", "gguf kld BASE -f TEXT --save-base FILE", "gguf kld --base-logits FILE MODEL -f TEXT",
                            "--kl-divergence-base"})
        CHECK_MESSAGE(r.out.find(opt) != std::string::npos, opt);
}

TEST_CASE("gguf kld with a base file: misuse and bad files exit 2 naming the file and what differs") {
    const EvalFiles ef;
    const std::string base = fx()("demo-llama-f16.gguf"), model = fx()("demo-llama-f32.gguf");
    const std::filesystem::path saved_path = ef.dir / "base.kld";
    const std::string saved = shell_quote(saved_path.string());
    REQUIRE(run_gguf("kld " + base + " -f " + ef.text + " -c 64 --chunks 2 --save-base " + saved).exit_code == 0);
    const auto refused = [](const std::string& args, const std::vector<std::string>& says) {
        const auto r = run_gguf(args);
        CAPTURE(args);
        CAPTURE(r.err);
        CHECK(r.exit_code == 2);
        for (const std::string& s : says) CHECK_MESSAGE(r.err.find(s) != std::string::npos, s);
    };
    // The options' misuse.
    refused("kld --base-logits " + saved + " --save-base " + shell_quote((ef.dir / "x.kld").string()) + " " + model + " -f " + ef.text,
            {"--save-base writes a base file and --base-logits reads one"});
    refused("kld -f " + ef.text, {"give BASE and MODEL, BASE with --save-base FILE, or --base-logits FILE with MODEL"});
    refused("kld " + base + " -f " + ef.text, {"give MODEL"});
    refused("kld --base-logits " + saved + " " + base + " " + model + " -f " + ef.text, {"with --base-logits FILE, give only MODEL"});
    refused("kld " + base + " -f " + ef.text + " --save-base " + base, {"demo-llama-f16.gguf", "would replace the input"});
    CHECK(!std::filesystem::exists(ef.dir / "x.kld"));
    // Files that are not base files, or not of this version, or cut short.
    refused("kld --base-logits " + base + " " + model + " -f " + ef.text, {"demo-llama-f16.gguf: not a KL-divergence base file"});
    refused("kld --base-logits " + ef.text + " " + model + " -f " + ef.text, {"text.txt: offset 0: not a GGUF file"});
    refused("kld --base-logits " + edited_base(saved_path, ef.dir / "v2.kld", {{"kld.format_version", gguf::OwnedValue::u32(2)}}) + " " + model +
                " -f " + ef.text,
            {"v2.kld: KL-divergence base format version 2; this build reads version 1"});
    {
        std::vector<uint8_t> bytes = test::read_bytes(saved_path);
        REQUIRE(bytes.size() > 1000);
        bytes.erase(bytes.end() - 1000, bytes.end());
        std::ofstream(ef.dir / "cut.kld", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    refused("kld --base-logits " + shell_quote((ef.dir / "cut.kld").string()) + " " + model + " -f " + ef.text, {"cut.kld: "});
    // A file that does not match the run.
    refused("kld --base-logits " + saved + " " + model + " -f " + ef.text + " -c 32",
            {"base.kld: the base was saved with chunks of 64 tokens (n_ctx); this run asks for 32"});
    refused("kld --base-logits " + saved + " " + model + " -f " + ef.text + " --chunks 3", {"base.kld: it holds 2 chunks; this run asks for 3"});
    refused("kld --base-logits " + saved + " " + model + " -f " + ef.text + " --activations ggml",
            {"base.kld: the base was evaluated with f32 arithmetic; this run asks for ggml"});
    {
        std::ofstream(ef.dir / "other.txt", std::ios::binary) << "w3 " << demo_words(199);
    }
    refused("kld --base-logits " + saved + " " + model + " -f " + shell_quote((ef.dir / "other.txt").string()),
            {"base.kld: the text's tokens differ from the saved ones in chunk 1 at position 1", "text.txt"});
    refused("kld --base-logits " + edited_base(saved_path, ef.dir / "wide.kld", {{"kld.vocab_size", gguf::OwnedValue::u32(321)}}, {321, 31, 2}) +
                " " + model + " -f " + ef.text,
            {"wide.kld: the base's vocabulary has 321 tokens, the model's 320"});
}

TEST_CASE("gguf generate: greedy by default, a seed gives the same text twice") {
    const std::string demo = fx()("demo-llama-f16.gguf");
    auto a = run_gguf("generate " + demo + " -p 'w1 w2' -n 12");
    INFO(a.out << a.err);
    REQUIRE(a.exit_code == 0);
    CHECK(a.out.starts_with("w1 w2"));
    CHECK(a.out.size() > 5);
    CHECK(a.err.find("greedy") != std::string::npos);
    CHECK(a.err.find("tokens/s") != std::string::npos);
    CHECK(run_gguf("generate " + demo + " -p 'w1 w2' -n 12").out == a.out);
    const auto s1 = run_gguf("generate " + demo + " -p 'w1 w2' -n 16 --temp 0.9 --top-k 50 --top-p 0.95 --seed 42 --threads 1");
    const auto s2 = run_gguf("generate " + demo + " -p 'w1 w2' -n 16 --temp 0.9 --top-k 50 --top-p 0.95 --seed 42 --threads 2");
    REQUIRE(s1.exit_code == 0);
    CHECK(s1.out == s2.out);
    CHECK(run_gguf("generate " + demo + " -p w1 -n 4 --top-p 0").exit_code == 2);
    CHECK(run_gguf("generate " + demo + " -n 4").exit_code == 2);  // no prompt
}

TEST_CASE("--gpu: the weight products on the GPU where there is one, else an error saying why") {
    const EvalFiles ef;
    const test::TempDir dir;
    const std::string demo = fx()("demo-llama-f16.gguf");
    for (const std::string& command : {"perplexity " + demo + " -f " + ef.text + " -c 64 --gpu",
                                       "kld " + demo + " " + demo + " -f " + ef.text + " -c 64 --gpu",
                                       "imatrix compute " + demo + " -f " + ef.text + " -c 64 --gpu -o " + (dir / "gpu.imatrix.gguf").string(),
                                       "generate " + demo + " -p hello -n 2 --gpu"}) {
        CAPTURE(command);
        const auto r = run_gguf(command);
        if (r.exit_code == 0) {
            // A machine with a GPU (and a build with CUDA): the products ran there.
            CHECK((r.out + r.err).find("on CUDA: ") != std::string::npos);
        } else {
            // Without one: a message that says what --gpu needs, no crash.
            CHECK(r.exit_code == 2);
            CHECK(r.err.find("--gpu: ") != std::string::npos);
            CHECK((r.err.find("without CUDA") != std::string::npos || r.err.find("CUDA") != std::string::npos));
        }
    }
}

TEST_CASE("perplexity, kld, generate: bad input exits 2 naming the problem") {
    const EvalFiles ef;
    const std::string demo = fx()("demo-llama-f16.gguf");
    // A text shorter than two chunks.
    auto r = run_gguf("perplexity " + demo + " -f " + ef.short_text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("shorter than two chunks of 64") != std::string::npos);
    CHECK(r.err.find("short.txt") != std::string::npos);
    r = run_gguf("kld " + demo + " " + demo + " -f " + ef.short_text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("shorter than two chunks") != std::string::npos);
    // A text file that is not there.
    r = run_gguf("perplexity " + demo + " -f " + shell_quote((ef.dir / "absent.txt").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("absent.txt: cannot read") != std::string::npos);
    // An architecture the table does not know.
    const std::string gpt = ef.variant("gpt2.gguf", {{"general.architecture", gguf::OwnedValue::string("gpt2")}});
    r = run_gguf("perplexity " + gpt + " -f " + ef.text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("architecture 'gpt2' is not supported") != std::string::npos);
    CHECK(r.err.find("gpt2.gguf") != std::string::npos);
    // A missing tensor, a missing hyperparameter.
    const std::string no_tensor = ef.variant("no-ffn-down.gguf", {}, {}, "blk.1.ffn_down.weight");
    r = run_gguf("perplexity " + no_tensor + " -f " + ef.text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tensor blk.1.ffn_down.weight is missing") != std::string::npos);
    r = run_gguf("kld " + demo + " " + no_tensor + " -f " + ef.text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("no-ffn-down.gguf") != std::string::npos);
    const std::string no_heads = ef.variant("no-heads.gguf", {}, {"llama.attention.head_count"});
    r = run_gguf("perplexity " + no_heads + " -f " + ef.text + " -c 64");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("llama.attention.head_count") != std::string::npos);
    // A tokenizer model this code does not have.
    const std::string rwkv = ef.variant("rwkv-vocab.gguf", {{"tokenizer.ggml.model", gguf::OwnedValue::string("rwkv")}});
    for (const std::string& cmd : {"perplexity " + rwkv + " -f " + ef.text + " -c 64", "generate " + rwkv + " -p w1 -n 2"}) {
        r = run_gguf(cmd);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("tokenizer model 'rwkv' is not supported") != std::string::npos);
        CHECK(r.err.find("rwkv-vocab.gguf") != std::string::npos);
    }
    // Bad options.
    CHECK(run_gguf("perplexity " + demo + " -f " + ef.text + " --activations f16").exit_code == 2);
    CHECK(run_gguf("perplexity " + demo + " -f " + ef.text + " -c 1").exit_code == 2);
    CHECK(run_gguf("perplexity " + demo).exit_code == 2);  // no -f
    r = run_gguf("perplexity --help");
    CHECK(r.exit_code == 0);
    for (const char* opt : {"-c,--ctx-size", "--chunks", "-f,--file", "-t,--threads", "--activations", "--json"})
        CHECK(r.out.find(opt) != std::string::npos);
}

TEST_CASE("gguf split and gguf merge: parts as planned (text, --dry-run, --json), merged back to the same tensors") {
    test::TempDir d;
    const std::string model = fx()("demo-llama-mixed.gguf");
    const std::string prefix = shell_quote((d / "mixed").string());
    auto r = run_gguf("split " + model + " " + prefix + " --split-max-tensors 8 --dry-run");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out.find("21 tensors in 3 parts (at most 8 tensors each)") != std::string::npos);
    CHECK(r.out.find("mixed-00003-of-00003.gguf  5 tensors") != std::string::npos);
    CHECK(!std::filesystem::exists(d / "mixed-00001-of-00003.gguf"));

    simdjson::dom::parser p;
    r = run_gguf("split " + model + " " + prefix + " --split-max-size 400000 --no-tensor-first-split --json");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto j = parse_json(p, r.out);
    simdjson::dom::array parts = j["parts"];
    REQUIRE(parts.size() >= 3);
    uint64_t tensors = 0, index = 0;
    for (simdjson::dom::element part : parts) {
        const uint64_t n = uint64_t(part["tensors"]);
        CHECK((index == 0 ? n == 0 : n > 0));
        CHECK((n <= 1 || uint64_t(part["tensor_bytes"]) <= 400000));
        CHECK(std::filesystem::exists(std::string_view(part["path"])));
        tensors += n;
        ++index;
    }
    CHECK(tensors == 21);
    const std::string first = shell_quote(std::string(std::string_view(parts.at(0)["path"])));
    r = run_gguf("check " + first);
    CHECK_MESSAGE(r.exit_code == 0, (r.out + r.err));

    const std::string merged = shell_quote((d / "merged.gguf").string());
    r = run_gguf("merge " + first + " " + merged);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const gguf::File a = gguf::File::open(fx().dir / "demo-llama-mixed.gguf"), b = gguf::File::open(d / "merged.gguf");
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); ++i) {
        CHECK(a.tensors()[i].name == b.tensors()[i].name);
        const auto x = a.tensor_data(a.tensors()[i]), y = b.tensor_data(b.tensors()[i]);
        CHECK(std::equal(x.begin(), x.end(), y.begin(), y.end()));
    }
    CHECK(b.find("split.count")->value.u16() == 0);
    r = run_gguf("check " + merged);
    CHECK_MESSAGE(r.exit_code == 0, (r.out + r.err));
}

TEST_CASE("gguf split and merge refuse bad requests with the reason: two limits, a missing part, no set, replacing an input") {
    test::TempDir d;
    const std::string model = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("split " + model + " " + shell_quote((d / "x").string()) + " --split-max-tensors 4 --split-max-size 1M");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("excludes") != std::string::npos);
    r = run_gguf("split " + model + " " + shell_quote((d / "x").string()) + " --split-max-size 12X");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'12X' is not a size") != std::string::npos);

    // A set with its second part gone.
    std::filesystem::copy_file(fx().dir / "demo-split-00001-of-00003.gguf", d / "s-00001-of-00003.gguf");
    std::filesystem::copy_file(fx().dir / "demo-split-00003-of-00003.gguf", d / "s-00003-of-00003.gguf");
    r = run_gguf("merge " + shell_quote((d / "s-00001-of-00003.gguf").string()) + " " + shell_quote((d / "m.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("s-00002-of-00003.gguf") != std::string::npos, r.err);
    CHECK(!std::filesystem::exists(d / "m.gguf"));

    r = run_gguf("merge " + model + " " + shell_quote((d / "m.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("not part of a split set") != std::string::npos, r.err);

    // The output may not be one of the parts.
    const std::string part1 = fx()("demo-split-00001-of-00003.gguf");
    r = run_gguf("merge " + part1 + " " + fx()("demo-split-00002-of-00003.gguf"));
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("demo-split-00002-of-00003.gguf") != std::string::npos, r.err);
    // Splitting a set onto its own names is refused too.
    r = run_gguf("split " + part1 + " " + fx()("demo-split") + " --split-max-tensors 8");
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("demo-split-00001-of-00003.gguf") != std::string::npos, r.err);
}

TEST_CASE("gguf diff: a split set and its whole model are identical (exit 0); a requantized copy differs tensor by tensor (exit 1)") {
    auto r = run_gguf("diff " + fx()("demo-llama-f16.gguf") + " " + fx()("demo-split-00002-of-00003.gguf"));
    CHECK_MESSAGE(r.exit_code == 0, (r.out + r.err));
    CHECK(r.out.find("21 in both (21 identical, 0 changed)") != std::string::npos);
    CHECK(r.out.find("\nidentical\n") != std::string::npos);

    test::TempDir d;
    const std::string q8 = shell_quote((d / "q8.gguf").string());
    REQUIRE(run_gguf("requant " + fx()("demo-llama-f16.gguf") + " " + q8 + " --type Q8_0 --quiet").exit_code == 0);
    simdjson::dom::parser p;
    r = run_gguf("diff --json " + fx()("demo-llama-f16.gguf") + " " + q8);
    CHECK(r.exit_code == 1);
    auto j = parse_json(p, r.out);
    CHECK(bool(j["identical"]) == false);
    // The metadata: general.file_type alone.
    simdjson::dom::array keys = j["metadata"];
    REQUIRE(keys.size() == 1);
    CHECK(std::string_view(keys.at(0)["key"]) == "general.file_type");
    CHECK(std::string_view(keys.at(0)["detail"]) == "1 -> 7");
    // Each 2-D tensor: f16 -> q8_0 with figures equal to a dequantized comparison done here.
    const gguf::File a = gguf::File::open(fx().dir / "demo-llama-f16.gguf"), b = gguf::File::open(d / "q8.gguf");
    size_t checked = 0;
    for (simdjson::dom::element t : simdjson::dom::array(j["tensors"])) {
        const std::string name{std::string_view(t["name"])};
        CAPTURE(name);
        const gguf::TensorInfo* ta = a.find_tensor(name);
        const gguf::TensorInfo* tb = b.find_tensor(name);
        REQUIRE((ta && tb));
        if (ta->type == tb->type) {
            CHECK(std::string_view(t["change"]) == "identical");  // norms stay f32, unchanged
            continue;
        }
        CHECK(std::string_view(t["change"]) == "changed");
        std::vector<float> x(ta->n_elements), y(tb->n_elements);
        quant::dequantize(ta->type, a.tensor_data(*ta), x);
        quant::dequantize(tb->type, b.tensor_data(*tb), y);
        double ee = 0, xx = 0, yy = 0, xy = 0, top = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const double e = double(x[i]) - y[i];
            ee += e * e, xx += double(x[i]) * x[i], yy += double(y[i]) * y[i], xy += double(x[i]) * y[i];
            top = std::max(top, std::fabs(e));
        }
        CHECK(double(t["rmse"]) == doctest::Approx(std::sqrt(ee / double(x.size()))).epsilon(1e-9));
        CHECK(double(t["max_abs_diff"]) == doctest::Approx(top).epsilon(1e-12));
        CHECK(double(t["cosine"]) == doctest::Approx(xy / std::sqrt(xx * yy)).epsilon(1e-9));
        CHECK(double(t["snr_db"]) == doctest::Approx(10 * std::log10(xx / ee)).epsilon(1e-9));
        ++checked;
    }
    CHECK(checked >= 14);
}

TEST_CASE("gguf diff names changed, added and removed keys (arrays to the first differing element) and tensors") {
    test::TempDir d;
    const gguf::File f = gguf::File::open(fx().dir / "demo-llama-f16.gguf");
    gguf::Writer w = gguf::Writer::copy_of(f);
    w.set("general.name", gguf::OwnedValue::string("renamed"));
    w.remove("llama.context_length");
    w.set("extra.key", gguf::OwnedValue::u32(7));
    // The vocabulary with token 5 changed.
    std::vector<std::string> tokens;
    for (gguf::Value v : f.find("tokenizer.ggml.tokens")->value.array()) tokens.emplace_back(v.str());
    tokens[5] = "changed";
    w.set("tokenizer.ggml.tokens", gguf::OwnedValue::strings(tokens));
    w.write(d / "b.gguf");
    const std::string a_path = fx()("demo-llama-f16.gguf"), b_path = shell_quote((d / "b.gguf").string());
    auto r = run_gguf("diff " + a_path + " " + b_path);
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.out.find("~ general.name: \"ggufkit-demo\" -> \"renamed\"") != std::string::npos, r.out);
    CHECK(r.out.find("- llama.context_length = 256  (only in A)") != std::string::npos);
    CHECK(r.out.find("+ extra.key = 7  (only in B)") != std::string::npos);
    CHECK_MESSAGE(r.out.find("~ tokenizer.ggml.tokens: element 5 of 320: \"<0x02>\" -> \"changed\"") != std::string::npos, r.out);
    CHECK(r.out.find("21 in both (21 identical, 0 changed)") != std::string::npos);

    // --diffable: one line per key and per tensor; the same model gives the same lines.
    auto one = run_gguf("diff --diffable " + a_path), two = run_gguf("diff --diffable " + a_path);
    REQUIRE(one.exit_code == 0);
    CHECK(one.out == two.out);
    CHECK(count_lines(one.out) == static_cast<int64_t>(f.kvs().size() + f.tensors().size()));
    CHECK(one.out.find("tensor blk.0.attn_q.weight f16 [64, 64] bytes=8192 fingerprint=") != std::string::npos);
    // A split set lists as its whole model: the split keys are left out.
    CHECK(run_gguf("diff --diffable " + fx()("demo-split-00002-of-00003.gguf")).out == one.out);
    auto other = run_gguf("diff --diffable " + b_path);
    CHECK(other.out.find("kv general.name str \"renamed\"") != std::string::npos);
    // A long array is its fingerprint: the changed vocabulary shows as another line.
    auto line_of = [](const std::string& text, const std::string& start) {
        const size_t at = text.find(start);
        return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
    };
    const std::string vocab_a = line_of(one.out, "kv tokenizer.ggml.tokens"), vocab_b = line_of(other.out, "kv tokenizer.ggml.tokens");
    CHECK(vocab_a.find("arr[str,320] fingerprint=") != std::string::npos);
    CHECK(vocab_a != vocab_b);

    // Misuse.
    r = run_gguf("diff " + a_path);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("compares two models") != std::string::npos);
    r = run_gguf("diff --diffable " + a_path + " " + b_path);
    CHECK(r.exit_code == 2);
    r = run_gguf("diff " + a_path + " /nonexistent.gguf");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/nonexistent.gguf") != std::string::npos);
}

TEST_CASE("gguf edit: keys set (scalars and arrays from files), deleted, renamed; a chat template, a name, a renamed tensor") {
    test::TempDir d;
    {
        std::ofstream(d / "ids.json") << "[3, 1, 4, 1, 5]";
        std::ofstream(d / "words.txt") << "alpha\nbeta\ngamma";
        std::ofstream(d / "template.jinja") << "{% for m in messages %}{{ m.content }}{% endfor %}";
    }
    const std::string in = fx()("demo-llama-f16.gguf"), out = shell_quote((d / "out.gguf").string());
    auto r = run_gguf("edit " + in + " " + out + " --set llama.context_length=int:4096 --set my.ids=arr[i32]:@" +
                      shell_quote((d / "ids.json").string()) + " --set my.words=arr[str]:@" + shell_quote((d / "words.txt").string()) +
                      " --set my.ratio=f64:0.25 --delete tokenizer.ggml.add_eos_token --rename general.name=general.basename" +
                      " --name edited --chat-template " + shell_quote((d / "template.jinja").string()) +
                      " --rename-tensor output.weight=output_2.weight");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const gguf::File a = gguf::File::open(fx().dir / "demo-llama-f16.gguf"), b = gguf::File::open(d / "out.gguf");
    CHECK(b.find("llama.context_length")->value.u32() == 4096);  // int took the key's own type, u32
    const gguf::ArrayView ids = b.find("my.ids")->value.array();
    REQUIRE(ids.size() == 5);
    CHECK(ids.element_type() == gguf::ValueType::I32);
    CHECK(ids.at(2).i32() == 4);
    std::vector<std::string> words;
    for (gguf::Value v : b.find("my.words")->value.array()) words.emplace_back(v.str());
    CHECK(words == std::vector<std::string>{"alpha", "beta", "gamma"});
    CHECK(b.find("my.ratio")->value.f64() == 0.25);
    CHECK(b.find("tokenizer.ggml.add_eos_token") == nullptr);
    CHECK(b.find("general.basename")->value.str() == "ggufkit-demo");
    CHECK(b.find("general.name")->value.str() == "edited");
    CHECK(b.find("tokenizer.chat_template")->value.str() == "{% for m in messages %}{{ m.content }}{% endfor %}");
    REQUIRE(b.tensors().size() == a.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); ++i) {
        const std::string_view name = a.tensors()[i].name;
        CHECK(b.tensors()[i].name == (name == "output.weight" ? std::string_view("output_2.weight") : name));
        const auto x = a.tensor_data(a.tensors()[i]), y = b.tensor_data(b.tensors()[i]);
        CHECK(std::equal(x.begin(), x.end(), y.begin(), y.end()));
    }
}

TEST_CASE("gguf edit keeps known keys' types and never writes a file gguf check rejects") {
    test::TempDir d;
    const std::string in = fx()("demo-llama-f16.gguf"), out = shell_quote((d / "out.gguf").string());
    auto r = run_gguf("edit " + in + " " + out + " --set general.file_type=str:Q4_K_M");
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("general.file_type is u32; a str value would change its type") != std::string::npos, r.err);
    // Deleted first, it may come back with another type: gguf check's rule on the key refuses it.
    r = run_gguf("edit " + in + " " + out + " --delete general.file_type --set general.file_type=str:Q4_K_M");
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("gguf check rejects") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("general.file_type") != std::string::npos, r.err);
    r = run_gguf("edit " + in + " " + out + " --set llama.block_count=u32:70000");  // no such count of layers
    CHECK(r.exit_code == 2);
    CHECK(!std::filesystem::exists(d / "out.gguf"));
    r = run_gguf("edit " + in + " " + out + " --set llama.context_length=u32:-5");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("is not a u32 value") != std::string::npos);
    // int and float stand for a key's own type only within its family; arrays likewise.
    r = run_gguf("edit " + in + " " + out + " --set general.name=int:5");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("general.name is str; a i64 value would change its type") != std::string::npos);
    {
        std::ofstream(d / "v.txt") << "1\n2";
    }
    r = run_gguf("edit " + in + " " + out + " --set tokenizer.ggml.tokens=arr[float]:@" + shell_quote((d / "v.txt").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tokenizer.ggml.tokens is arr[str]; an array of f32 would change its type") != std::string::npos);
    // A renamed key keeps its type under its new name.
    r = run_gguf("edit " + in + " " + out + " --rename general.name=general.basename --set general.basename=u32:5");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("general.basename is str") != std::string::npos);
    // Numbers are decimal (or 0x hexadecimal), never octal; no spaces.
    r = run_gguf("edit " + in + " " + out + " --set llama.context_length=u32:0010 --set my.hex=u32:0x10");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(gguf::File::open(d / "out.gguf").find("llama.context_length")->value.u32() == 10);
    CHECK(gguf::File::open(d / "out.gguf").find("my.hex")->value.u32() == 16);
    std::filesystem::remove(d / "out.gguf");
    r = run_gguf("edit " + in + " " + out + " --set 'my.x=u64: -1'");
    CHECK(r.exit_code == 2);
    r = run_gguf("edit " + in + " " + out + " --delete no.such.key");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("has no key no.such.key") != std::string::npos);
    r = run_gguf("edit " + in + " " + in + " --name x");  // onto its input
    CHECK(r.exit_code == 2);
    r = run_gguf("edit " + in + " --name x");  // neither OUT nor --in-place
    CHECK(r.exit_code == 2);
    CHECK(!std::filesystem::exists(d / "out.gguf"));
}

TEST_CASE("gguf edit --in-place rewrites the header within its padding, leaves the data alone, and refuses what does not fit") {
    test::TempDir d;
    std::filesystem::copy_file(fx().dir / "demo-llama-f16.gguf", d / "m.gguf");
    const std::string m = shell_quote((d / "m.gguf").string());
    const std::vector<uint8_t> before = test::read_bytes(d / "m.gguf");
    const uint64_t data_start = gguf::File::open(d / "m.gguf").data_section_offset();
    auto r = run_gguf("edit " + m + " --in-place --name ggufkit-dem0");  // same length
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const std::vector<uint8_t> after = test::read_bytes(d / "m.gguf");
    REQUIRE(after.size() == before.size());
    CHECK(std::equal(before.begin() + static_cast<std::ptrdiff_t>(data_start), before.end(), after.begin() + static_cast<std::ptrdiff_t>(data_start)));
    CHECK(gguf::File::open(d / "m.gguf").find("general.name")->value.str() == "ggufkit-dem0");
    CHECK(run_gguf("check " + m).exit_code == 0);
    // Longer than the padding: refused with the bytes missing, the file untouched.
    r = run_gguf("edit " + m + " --in-place --name " + std::string(200, 'x'));
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("bytes missing") != std::string::npos, r.err);
    CHECK(test::read_bytes(d / "m.gguf") == after);
}

TEST_CASE("inspect --markdown: the summary, one row per key, the tensors by layer; pipes and line breaks escaped") {
    test::TempDir d;
    const gguf::File demo = gguf::File::open(fx().dir / "demo-llama-f16.gguf");
    gguf::Writer w = gguf::Writer::copy_of(demo);
    w.set("tokenizer.chat_template", gguf::OwnedValue::string("a | b\nc"));
    w.write(d / "m.gguf");
    auto r = run_gguf("inspect --markdown " + shell_quote((d / "m.gguf").string()));
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out.rfind("# m.gguf\n", 0) == 0);
    CHECK(r.out.find("| file type | MOSTLY_F16 (1) |") != std::string::npos);
    CHECK(r.out.find("## Metadata (25 of 25 keys)") != std::string::npos);
    CHECK_MESSAGE(r.out.find("| `tokenizer.chat_template` | str | `\"a \\| b\\nc\"` |") != std::string::npos, r.out);
    CHECK(r.out.find("### Global (3 tensors") != std::string::npos);
    CHECK(r.out.find("### blk.1 (9 tensors") != std::string::npos);
    // A row for every key and every tensor (and the summary tables).
    size_t rows = 0;
    for (size_t at = 0; (at = r.out.find("\n| ", at)) != std::string::npos; ++at) ++rows;
    CHECK(rows >= 25 + 21);
    CHECK(run_gguf("inspect --markdown --json " + shell_quote((d / "m.gguf").string())).exit_code == 2);
}

TEST_CASE("gguf edit --byte-order: big-endian and back gives the file again; check reads big-endian data; i-quants refused") {
    test::TempDir d;
    const std::string mixed = fx()("demo-llama-mixed.gguf"), be = shell_quote((d / "be.gguf").string()), le = shell_quote((d / "le.gguf").string());
    auto r = run_gguf("edit " + mixed + " " + be + " --byte-order big");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const gguf::File big = gguf::File::open(d / "be.gguf");
    CHECK(big.big_endian());
    // Q4_K's first block: d and dmin swapped, the packed scales and codes not.
    const gguf::File little = gguf::File::open(fx().dir / "demo-llama-mixed.gguf");
    const auto x = little.tensor_data(*little.find_tensor("token_embd.weight")), y = big.tensor_data(*big.find_tensor("token_embd.weight"));
    CHECK((y[0] == x[1] && y[1] == x[0] && y[2] == x[3] && y[3] == x[2]));
    CHECK(std::equal(x.begin() + 4, x.begin() + 144, y.begin() + 4));
    r = run_gguf("check " + be);
    CHECK_MESSAGE(r.exit_code == 0, r.out);
    r = run_gguf("edit " + be + " " + le + " --byte-order little");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(test::read_bytes(d / "le.gguf") == test::read_bytes(fx().dir / "demo-llama-mixed.gguf"));

    // A planted NaN is found at the same place in the big-endian file.
    for (const auto& f : gguf::fixtures::planted_faults()) {
        if (f.name != "nan-in-f16" && f.name != "inf-in-q4_K-d") continue;
        CAPTURE(f.name);
        const std::filesystem::path in = fx().dir / "faults" / f.files.front().first;
        auto plain = run_gguf("check " + shell_quote(in.string()));
        auto conv = run_gguf("edit " + shell_quote(in.string()) + " " + shell_quote((d / "f-be.gguf").string()) + " --byte-order big");
        REQUIRE_MESSAGE(conv.exit_code == 0, conv.err);
        auto swapped = run_gguf("check " + shell_quote((d / "f-be.gguf").string()));
        CHECK(plain.exit_code == 1);
        CHECK(swapped.exit_code == 1);
        const auto finding = [](const std::string& s) { return s.substr(0, s.find('\n')); };
        CHECK(finding(swapped.out) == finding(plain.out));
    }

    // An i-quant's fields are not known: refused, naming the tensor.
    gguf::Writer w;
    w.set("general.architecture", gguf::OwnedValue::string("llama"));
    std::vector<uint8_t> zeros(gguf::type_info(gguf::TypeId::IQ4_NL).type_size * 2, 0);
    w.add_tensor("t.iq4_nl", gguf::TypeId::IQ4_NL, {64}, zeros);
    w.write(d / "iq.gguf");
    r = run_gguf("edit " + shell_quote((d / "iq.gguf").string()) + " " + shell_quote((d / "iq-be.gguf").string()) + " --byte-order big");
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find("tensor t.iq4_nl is iq4_nl") != std::string::npos, r.err);
    CHECK(!std::filesystem::exists(d / "iq-be.gguf"));
}

// gguf mem on the demo model, its figures worked here from its own keys (spec/memory.md).
TEST_CASE("gguf mem: the KV cache, output buffer and weights of the demo model, llama.cpp's option names, --json") {
    const std::string model = fx()("demo-llama-f16.gguf");
    const gguf::File f = gguf::File::open((fx().dir / "demo-llama-f16.gguf").string());
    const uint64_t layers = f.find("llama.block_count")->value.u32(), embd = f.find("llama.embedding_length")->value.u32();
    const uint64_t heads = f.find("llama.attention.head_count")->value.u32(), heads_kv = f.find("llama.attention.head_count_kv")->value.u32();
    const uint64_t vocab = f.find("tokenizer.ggml.tokens")->value.array().size();
    const uint64_t kv_values = embd / heads * heads_kv;

    auto r = run_gguf("mem --json " + model);
    REQUIRE(r.exit_code == 0);
    simdjson::dom::parser p;
    simdjson::dom::element j = parse_json(p, r.out);
    CHECK(uint64_t(j["context"]["n_ctx"]) == 4096);
    CHECK(uint64_t(j["kv_cache"]["k_bytes"]) == layers * 4096 * kv_values * 2);
    CHECK(uint64_t(j["kv_cache"]["v_bytes"]) == layers * 4096 * kv_values * 2);
    CHECK(uint64_t(j["output_bytes"]) == vocab * 4);
    CHECK(std::string_view(j["weights"].at(0)["buffer"]) == "CPU_Mapped");
    CHECK(uint64_t(j["weights"].at(0)["tensors"]) == f.tensors().size());  // f16: nothing to repack
    CHECK(uint64_t(j["total_bytes"]) > uint64_t(j["kv_cache"]["bytes"]) + uint64_t(j["output_bytes"]));

    // llama.cpp's short option names; a q8_0 K cache of 2 parallel sequences, 1000 -> 1024 cells.
    r = run_gguf("mem --json -c 1000 -ub 256 -ctk q8_0 -np 2 -fa off " + model);
    REQUIRE(r.exit_code == 0);
    j = parse_json(p, r.out);
    CHECK(uint64_t(j["context"]["n_ctx"]) == 1024);
    CHECK(uint64_t(j["context"]["n_stream"]) == 2);
    CHECK(uint64_t(j["context"]["n_tokens"]) == 256);
    CHECK(bool(j["context"]["flash_attn"]) == false);
    CHECK(std::string_view(j["context"]["type_k"]) == "q8_0");
    CHECK(uint64_t(j["kv_cache"]["k_bytes"]) == layers * 1024 * (kv_values / 32 * 34));
    CHECK(uint64_t(j["output_bytes"]) == 2 * vocab * 4);

    r = run_gguf("mem " + model);
    REQUIRE(r.exit_code == 0);
    for (const char* line : {"CPU_Mapped", "KV cache", "output buffer", "compute buffer", "estimate", "total"}) {
        CAPTURE(line);
        CHECK(r.out.find(line) != std::string::npos);
    }
    CHECK(run_gguf("mem --help").out.find("--cache-type-k") != std::string::npos);
    // The summary line of gguf inspect, and its JSON.
    r = run_gguf("inspect --json --no-kv --no-tensors " + model);
    j = parse_json(p, r.out);
    CHECK(uint64_t(j["kv_cache"]["f16_bytes_per_token"]) == layers * kv_values * 2 * 2);
    CHECK(uint64_t(j["kv_cache"]["full_layers"]) == layers);
    r = run_gguf("inspect --json --no-kv --no-tensors " + fx()("all-value-types.gguf"));
    j = parse_json(p, r.out);
    CHECK(j["kv_cache"].is_null());
    r = run_gguf("inspect --no-kv --no-tensors " + model);
    CHECK(r.out.find(fmt::format("KV cache      {} per 1,000 tokens of context (f16, {} layers)",
                                 gguf::human_bytes(layers * kv_values * 2 * 2 * 1000), layers)) != std::string::npos);
}

TEST_CASE("gguf mem refuses what it cannot size: a bad cache type, a quantized V without flash attention, a file that is not a model") {
    const std::string model = fx()("demo-llama-f16.gguf");
    auto r = run_gguf("mem -ctk q9_9 " + model);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'q9_9' is not a cache type") != std::string::npos);
    r = run_gguf("mem -fa off -ctv q4_0 " + model);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("a quantized V cache needs flash attention") != std::string::npos);
    r = run_gguf("mem -fa sometimes " + model);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'sometimes' is not on, off or auto") != std::string::npos);
    r = run_gguf("mem " + fx()("all-value-types.gguf"));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("general.architecture is missing: not a model") != std::string::npos);
    CHECK(r.err.find("all-value-types.gguf") != std::string::npos);
    r = run_gguf("mem " + shell_quote((fx().dir / "malformed/lying-kv-count.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("lying-kv-count.gguf") != std::string::npos);
}

TEST_CASE("gguf requant --prune-layers: blocks left out and renumbered, block_count lowered; bad lists named") {
    test::TempDir d;
    const std::string in = fx()("demo-llama-f16.gguf"), out = shell_quote((d / "pruned.gguf").string());
    const gguf::File f = gguf::File::open((fx().dir / "demo-llama-f16.gguf").string());
    const uint32_t layers = f.find("llama.block_count")->value.u32();
    REQUIRE(layers >= 2);
    auto r = run_gguf("requant " + in + " " + out + " --type q8_0 --prune-layers 0 -q");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const gguf::File g = gguf::File::open((d / "pruned.gguf").string());
    CHECK(g.find("llama.block_count")->value.u32() == layers - 1);
    CHECK(g.find_tensor(fmt::format("blk.{}.attn_q.weight", layers - 1)) == nullptr);
    REQUIRE(g.find_tensor("blk.0.attn_norm.weight") != nullptr);
    // The new block 0 is the old block 1, its f32 norm copied as it is.
    const auto* a = g.find_tensor("blk.0.attn_norm.weight");
    const auto* b = f.find_tensor("blk.1.attn_norm.weight");
    const auto da = g.tensor_data(*a), db = f.tensor_data(*b);
    CHECK(std::equal(da.begin(), da.end(), db.begin(), db.end()));
    CHECK(run_gguf("check " + out).exit_code == 0);

    r = run_gguf("requant " + in + " " + out + " --type q8_0 --prune-layers 1,x");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("'x' is not a block number") != std::string::npos);
    r = run_gguf("requant " + in + " " + out + " --type q8_0 --prune-layers 99");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("the model has no block 99") != std::string::npos);
}

TEST_CASE("gguf compress / decompress: the original bytes back; --plain files decode with zstd -d; damage and non-GGUF input refused") {
    test::TempDir d;
    const std::string in = fx()("demo-llama-f16.gguf");
    const std::vector<uint8_t> original = test::read_bytes(fx().dir / "demo-llama-f16.gguf");
    const std::string packed = shell_quote((d / "m.gguf.zst").string());
    auto r = run_gguf("compress " + in + " " + packed + " --frame-size 8192");
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out.find("byte-grouped") != std::string::npos);
    r = run_gguf("decompress " + packed + " -q");  // default output: the name without .zst
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(test::read_bytes(d / "m.gguf") == original);
    r = run_gguf("decompress " + packed + " " + shell_quote((d / "m.gguf").string()));
    CHECK(r.exit_code == 0);  // replacing an earlier output is fine

    r = run_gguf("compress --plain -q " + in + " " + shell_quote((d / "p.gguf.zst").string()));
    REQUIRE(r.exit_code == 0);
    if (std::system("zstd --version > /dev/null 2>&1") == 0) {
        REQUIRE(std::system(("zstd -d -q -f " + shell_quote((d / "p.gguf.zst").string()) + " -o " + shell_quote((d / "p.gguf").string())).c_str()) == 0);
        CHECK(test::read_bytes(d / "p.gguf") == original);
    } else {
        MESSAGE("zstd is not installed: the zstd -d check of a --plain file did not run");
    }

    // Damage: a byte of the compressed data flipped; nothing is written.
    std::vector<uint8_t> bytes = test::read_bytes(d / "m.gguf.zst");
    bytes[bytes.size() / 3] ^= 0x40;
    test::write_bytes(d / "bad.gguf.zst", bytes);
    r = run_gguf("decompress " + shell_quote((d / "bad.gguf.zst").string()) + " " + shell_quote((d / "bad.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("bad.gguf.zst") != std::string::npos);
    CHECK(r.err.find("is damaged") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(d / "bad.gguf"));
    r = run_gguf("compress " + fx()("malformed/lying-kv-count.gguf") + " " + shell_quote((d / "x.zst").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("lying-kv-count.gguf") != std::string::npos);
    r = run_gguf("decompress " + in + " " + shell_quote((d / "y.gguf").string()));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("not a .gguf.zst") != std::string::npos);
    r = run_gguf("compress --level 40 " + in + " " + shell_quote((d / "z.zst").string()));
    CHECK(r.exit_code == 2);

    // The other commands take a .gguf.zst as they take the file: inspect, mem, check (the
    // damaged tensor named), requant (the same output).
    auto plain = run_gguf("inspect --json " + in), zst = run_gguf("inspect --json " + packed);
    REQUIRE(zst.exit_code == 0);
    simdjson::dom::parser p1, p2;
    CHECK(uint64_t(parse_json(p1, zst.out)["tensor_count"]) == uint64_t(parse_json(p2, plain.out)["tensor_count"]));
    CHECK(run_gguf("mem " + packed).exit_code == 0);
    r = run_gguf("check " + packed);
    CHECK(r.exit_code == 0);
    r = run_gguf("check " + shell_quote((d / "bad.gguf.zst").string()));
    CHECK(r.exit_code == 1);  // findings, as for any damaged tensor
    CHECK(r.out.find(".weight: frame ") != std::string::npos);  // the tensor, then its frame
    CHECK(r.out.find("is damaged") != std::string::npos);
    CHECK(r.out.find("1 error") != std::string::npos);
    REQUIRE(run_gguf("requant -q " + packed + " " + shell_quote((d / "a.gguf").string()) + " --type q8_0").exit_code == 0);
    REQUIRE(run_gguf("requant -q " + in + " " + shell_quote((d / "b.gguf").string()) + " --type q8_0").exit_code == 0);
    CHECK(test::read_bytes(d / "a.gguf") == test::read_bytes(d / "b.gguf"));
}
