// GGUF files over HTTP (gguf/http.h): a URL opens as the same file does locally (the same
// errors and faults for malformed ones, however small the first read), the header costs
// about its size in traffic, and servers that ignore ranges, drop connections, want a token
// or redirect are handled, against a server started by the test (tests/http_server.h).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "fixtures.h"
#include "gguf/error.h"
#include "gguf/file.h"
#include "gguf/http.h"
#include "gguf/model.h"
#include "gguf/writer.h"
#include "http_server.h"
#include "support.h"

using namespace gguf;

namespace {

// Restores the process-wide URL settings a test changed.
struct HttpSettings {
    ~HttpSettings() {
        http::set_first_read(http::kFirstRead);
        http::set_headers({});
    }
};

// A server of the test's own, and the URL settings put back after the test.
struct Served {
    HttpSettings restore;
    test::HttpServer server;
};

struct Outcome {
    std::string message;  // the error's message, empty when the open succeeded
    std::optional<uint64_t> offset;
    std::vector<std::string> faults;  // lenient: each fault as text
    uint64_t kvs = 0, tensors = 0, data_offset = 0;
};

template <class Open> Outcome outcome(Open open) {
    Outcome o;
    try {
        FaultLog faults;
        const File f = open(faults);
        for (const Fault& x : faults.kept()) o.faults.push_back(fmt::format("{}|{}|{}", x.file_offset.value_or(~0ull), x.subject, x.message));
        o.kvs = f.kvs().size();
        o.tensors = f.tensors().size();
        o.data_offset = f.data_section_offset();
    } catch (const Error& e) {
        o.message = e.message();
        o.offset = e.offset();
    }
    return o;
}

// A model whose header is `tokens` strings long (a large vocabulary) and whose tensors
// declare `tensor_bytes` of data in all (F16, 8 GiB each at most).
Writer big_header_model(uint32_t tokens, uint64_t tensor_bytes) {
    Writer w;
    w.set("general.architecture", OwnedValue::string("llama"));
    for (const auto& [key, v] : {std::pair{"block_count", 13u}, {"context_length", 4096u}, {"embedding_length", 65536u},
                                 {"feed_forward_length", 65536u}, {"attention.head_count", 64u}, {"attention.head_count_kv", 8u}})
        w.set(fmt::format("llama.{}", key), OwnedValue::u32(v));
    std::vector<std::string> vocab(tokens);
    for (uint32_t i = 0; i < tokens; ++i) vocab[i] = fmt::format("token-{:08d}", i);
    w.set("tokenizer.ggml.tokens", OwnedValue::strings(vocab));
    const uint64_t each = uint64_t{8} << 30;
    for (uint32_t i = 0; tensor_bytes > 0; ++i) {
        const uint64_t bytes = std::min(each, tensor_bytes);
        w.add_tensor(fmt::format("blk.{}.ffn_up.weight", i), TypeId::F16, {65536, bytes / (2 * 65536)}, [](ByteSink&) {
            FAIL("the data of a header-only model is never written");
        });
        tensor_bytes -= bytes;
    }
    return w;
}

}  // namespace

TEST_CASE("http: is_url names http and https URLs only") {
    CHECK(http::is_url("http://example.com/m.gguf"));
    CHECK(http::is_url("HTTPS://example.com/m.gguf"));
    CHECK_FALSE(http::is_url("ftp://example.com/m.gguf"));
    CHECK_FALSE(http::is_url("model.gguf"));
    CHECK_FALSE(http::is_url("./http://x"));
}

TEST_CASE("http: HF_TOKEN is sent to huggingface.co and hf.co only, and never over a given Authorization header") {
    const std::vector<std::string> none;
    using V = std::vector<std::string>;
    CHECK(http::request_headers("https://huggingface.co/org/m/resolve/main/m.gguf", none, "tok") == V{"Authorization: Bearer tok"});
    CHECK(http::request_headers("https://cdn-lfs.huggingface.co/x", none, "tok") == V{"Authorization: Bearer tok"});
    CHECK(http::request_headers("https://hf.co/x", none, "tok") == V{"Authorization: Bearer tok"});
    CHECK(http::request_headers("https://user@HuggingFace.co:443/x", none, "tok") == V{"Authorization: Bearer tok"});
    CHECK(http::request_headers("https://nothuggingface.co/x", none, "tok").empty());
    CHECK(http::request_headers("https://huggingface.co.evil.com/x", none, "tok").empty());
    CHECK(http::request_headers("https://example.com/?u=https://huggingface.co/", none, "tok").empty());
    CHECK(http::request_headers("https://huggingface.co/x", none, nullptr).empty());
    CHECK(http::request_headers("https://huggingface.co/x", none, "").empty());
    CHECK(http::request_headers("http://huggingface.co/x", none, "tok").empty());  // never in clear text
    const V given{"authorization: Bearer mine", "X-A: b"};
    CHECK(http::request_headers("https://huggingface.co/x", given, "tok") == given);
}

TEST_CASE("http: --header lines must be 'Name: value'") {
    HttpSettings restore;
    CHECK_THROWS_AS(http::set_headers({"no colon"}), std::invalid_argument);
    CHECK_THROWS_AS(http::set_headers({": empty name"}), std::invalid_argument);
    CHECK_THROWS_AS(http::set_headers({"Bad Name: x"}), std::invalid_argument);
    CHECK_THROWS_AS(http::set_headers({"X-A: b\r\nX-Injected: c"}), std::invalid_argument);
    http::set_headers({"X-A: b"});
    CHECK(http::headers() == std::vector<std::string>{"X-A: b"});
}

TEST_CASE_FIXTURE(Served, "http: every fixture, malformed variant and planted fault opens from a URL as it does from memory, whatever the first read") {
    std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
    for (const auto& m : fixtures::malformed_variants()) files.emplace_back(m.name, m.bytes);
    for (const auto& p : fixtures::planted_faults())
        for (const auto& f : p.files) files.emplace_back(p.name + "/" + f.first, f.second);
    files.emplace_back("mixed", fixtures::demo_model(fixtures::mixed_demo_options()).write_to_memory());
    files.emplace_back("all-types", fixtures::all_value_types().write_to_memory());
    files.emplace_back("all-types-v1", fixtures::all_value_types({.version = 1}).write_to_memory());
    files.emplace_back("all-types-be", fixtures::all_value_types({.big_endian = true}).write_to_memory());
    size_t checked = 0;
    for (const auto& [name, bytes] : files) {
        const std::string path = fmt::format("/{}/{}.gguf", checked, name);
        server.add(path, bytes);
        const Outcome local = outcome([&](FaultLog& faults) { return File::parse(bytes, name, faults); });
        const Outcome local_strict = outcome([&](FaultLog&) { return File::parse(bytes, name); });
        for (const uint64_t first : {uint64_t{1}, uint64_t{7}, uint64_t{100}, uint64_t{4096}, http::kFirstRead}) {
            CAPTURE(name);
            CAPTURE(first);
            http::set_first_read(first);
            const Outcome remote = outcome([&](FaultLog& faults) { return File::open(server.url(path), faults); });
            CHECK(remote.message == local.message);
            CHECK(remote.offset == local.offset);
            CHECK(remote.faults == local.faults);
            CHECK(remote.kvs == local.kvs);
            CHECK(remote.tensors == local.tensors);
            CHECK(remote.data_offset == local.data_offset);
            const Outcome strict = outcome([&](FaultLog&) { return File::open(server.url(path)); });
            CHECK(strict.message == local_strict.message);
            CHECK(strict.offset == local_strict.offset);
        }
        ++checked;
    }
    CHECK(checked > 30);
}

TEST_CASE_FIXTURE(Served, "http: tensor data is fetched when read, equal to the file's, each range once") {
    const std::vector<uint8_t> bytes = fixtures::demo_model(fixtures::mixed_demo_options()).write_to_memory();
    server.add("/m.gguf", bytes);
    http::set_first_read(4096);
    const File local = File::parse(bytes, "local");
    const File f = File::open(server.url("/m.gguf"));
    REQUIRE(f.transfer());
    CHECK(f.size() == bytes.size());
    CHECK(f.transfer()->bytes < local.data_section_offset() * 2 + 4096);  // the header, not the data
    const uint64_t after_header = f.transfer()->bytes;
    // The last tensor first, then all (those before are fetched, that one not again).
    const TensorInfo& last = f.tensors().back();
    CHECK(std::ranges::equal(f.tensor_data(last), local.tensor_data(local.tensors().back())));
    CHECK(f.transfer()->bytes - after_header == last.n_bytes);
    for (size_t i = 0; i < f.tensors().size(); ++i) CHECK(std::ranges::equal(f.tensor_data(f.tensors()[i]), local.tensor_data(local.tensors()[i])));
    CHECK(f.transfer()->bytes <= bytes.size());  // nothing fetched twice
    CHECK(f.transfer()->bytes == server.body_bytes());
    CHECK(f.transfer()->requests == server.requests());
    CHECK_FALSE(f.compressed());
}

TEST_CASE_FIXTURE(Served, "http: a 100 GB model with a 4 MB header is inspected for about its header's size") {
    const uint64_t data = uint64_t{100} << 30;
    const Writer w = big_header_model(200000, data);
    const std::vector<uint8_t> header = w.header();
    const uint64_t data_offset = (header.size() + 31) / 32 * 32;
    server.add_sparse("/big.gguf", header, data_offset + data);
    const File f = File::open(server.url("/big.gguf"));
    CHECK(header.size() > 4'000'000);
    CHECK(f.size() == data_offset + data);
    CHECK(f.data_section_offset() == data_offset);
    CHECK(f.tensors().size() == 13);
    CHECK(f.find("tokenizer.ggml.tokens")->value.array().size() == 200000);
    REQUIRE(f.transfer());
    MESSAGE(fmt::format("header {} bytes; fetched {} bytes in {} requests", header.size(), f.transfer()->bytes, f.transfer()->requests));
    CHECK(f.transfer()->bytes >= header.size());
    CHECK(f.transfer()->bytes <= 2 * header.size());
    CHECK(f.transfer()->requests <= 5);  // 512 KiB, doubled at least each time
    CHECK(server.body_bytes() == f.transfer()->bytes);

    // The CLI: inspect prints it and reports the traffic; mem and check --no-data read no data.
    const test::RunResult r = test::run_gguf("inspect " + server.url("/big.gguf") + " --no-kv");
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("blk.12.ffn_up.weight") != std::string::npos);
    CHECK(r.err.find("over HTTP in") != std::string::npos);
    for (const char* cmd : {"check --no-data", "mem"}) {
        CAPTURE(cmd);
        const uint64_t before = server.body_bytes();
        const test::RunResult c = test::run_gguf(fmt::format("{} {}", cmd, server.url("/big.gguf")));
        CAPTURE(c.out);
        CAPTURE(c.err);
        CHECK(c.exit_code == (std::string_view(cmd) == "mem" ? 0 : 1));  // check: the made-up model lacks tensors llama needs
        CHECK(c.err.find("over HTTP in") != std::string::npos);
        CHECK(server.body_bytes() - before <= 2 * header.size());
    }
}

TEST_CASE_FIXTURE(Served, "http: a header claiming more than 1 GiB is refused before it is fetched") {
    // GGUF v3, no tensors, one key whose length says 1.5 GB, in a 2 GB file.
    std::vector<uint8_t> head = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{1'500'000'000}})
        for (int i = 0; i < 8; ++i) head.push_back(static_cast<uint8_t>(v >> (8 * i)));
    server.add_sparse("/lying.gguf", head, 2'000'000'000);
    CHECK_THROWS_WITH_AS(File::open(server.url("/lying.gguf")), doctest::Contains("more than the 1073741824 read over HTTP"), Error);
    CHECK(server.body_bytes() <= http::kFirstRead);
}

TEST_CASE_FIXTURE(Served, "http: a server that ignores Range is refused unless the whole file fits the first read") {
    server.ranges = test::HttpServer::Ranges::Ignore;
    const std::vector<uint8_t> small = fixtures::demo_model().write_to_memory();
    server.add("/small.gguf", small);
    server.add_sparse("/big.gguf", big_header_model(1000, uint64_t{1} << 30).header(), (uint64_t{1} << 30) + 65536);
    // The small file arrives whole: opened, its data read without another request.
    const File f = File::open(server.url("/small.gguf"));
    const File local = File::parse(small, "local");
    CHECK(std::ranges::equal(f.tensor_data(f.tensors().back()), local.tensor_data(local.tensors().back())));
    CHECK(f.transfer()->requests == 1);
    // A larger one: a clear error, and the transfer stopped.
    try {
        File::open(server.url("/big.gguf"));
        FAIL("a server ignoring ranges was not refused");
    } catch (const Error& e) {
        CHECK(e.file() == server.url("/big.gguf"));
        CHECK(e.message().find("does not honour range requests") != std::string::npos);
        CHECK(e.message().find("HTTP 200") != std::string::npos);
    }
    CHECK(server.body_bytes() < small.size() + (uint64_t{64} << 20));
    // With a small first read, the small file too.
    http::set_first_read(100);
    CHECK_THROWS_WITH_AS(File::open(server.url("/small.gguf")), doctest::Contains("does not honour range requests"), Error);
}

TEST_CASE_FIXTURE(Served, "http: a dropped connection is resumed where it stopped; one that keeps dropping is an error naming the URL") {
    const std::vector<uint8_t> bytes = fixtures::demo_model(fixtures::mixed_demo_options()).write_to_memory();
    server.add("/m.gguf", bytes);
    http::set_first_read(1 << 20);
    server.drop_after = 1000;
    server.drops = 2;
    const File f = File::open(server.url("/m.gguf"));
    REQUIRE(bytes.size() > (1 << 20));
    CHECK(f.transfer()->requests == 3);
    CHECK(f.transfer()->bytes == 1 << 20);  // resumed, not restarted
    CHECK(std::ranges::equal(f.bytes().first(1 << 20), std::span(bytes).first(1 << 20)));
    CHECK(server.request_lines().back() == fmt::format("GET /m.gguf Range: bytes=2000-{}", (1 << 20) - 1));

    // Drops that each bring some bytes are tried past four.
    server.drops = 6;
    const File g6 = File::open(server.url("/m.gguf"));
    CHECK(g6.transfer()->requests == 7);
    CHECK(g6.transfer()->bytes == 1 << 20);

    http::set_first_read(4096);
    server.drop_after = 0;
    server.drops = 1000;
    try {
        File::open(server.url("/m.gguf"));
        FAIL("a connection dropping every time was not an error");
    } catch (const Error& e) {
        CHECK(e.file() == server.url("/m.gguf"));
        CHECK(e.message().find("the connection dropped 4 times") != std::string::npos);
    }
    // A tensor whose transfer fails names the tensor.
    server.drops = 0;
    const File g = File::open(server.url("/m.gguf"));
    server.drops = 1000;
    const TensorInfo& t = g.tensors().back();
    const std::string expected = fmt::format("tensor '{}': the connection dropped", t.name);
    CHECK_THROWS_WITH_AS(g.tensor_data(t), doctest::Contains(expected.c_str()), Error);
    server.drops = 0;
    const File local = File::parse(bytes, "x");
    CHECK(std::ranges::equal(g.tensor_data(t), local.tensor_data(t)));  // tried again on the next read

    // Released pages leave memory and are fetched again.
    const uint64_t before = g.transfer()->bytes;
    g.release_pages(g.tensor_data(t));
    CHECK(g.transfer()->bytes == before);
    CHECK(std::ranges::equal(g.tensor_data(t), local.tensor_data(t)));
    CHECK(g.transfer()->bytes > before + t.n_bytes - 2 * 4096);

    // A server that stops honouring ranges, and a file that changes, are errors, not wrong bytes.
    const TensorInfo& first = g.tensors().front();
    server.ranges = test::HttpServer::Ranges::Ignore;
    CHECK_THROWS_WITH_AS(g.tensor_data(first), doctest::Contains("does not honour range requests"), Error);
    server.ranges = test::HttpServer::Ranges::Honour;
    server.add("/m.gguf", std::vector<uint8_t>(bytes.begin(), bytes.end() - 4096));
    CHECK_THROWS_WITH_AS(g.tensor_data(first), doctest::Contains("the file changed on the server"), Error);
}

TEST_CASE_FIXTURE(Served, "http: a busy server (503) is asked again after its Retry-After; one that stays busy is an error") {
    const std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    server.add("/m.gguf", bytes);
    server.busy = 3;
    const File f = File::open(server.url("/m.gguf"));
    CHECK(f.size() == bytes.size());
    CHECK(f.transfer()->requests == 4);
    server.busy = 1000;
    CHECK_THROWS_WITH_AS(File::open(server.url("/m.gguf")), doctest::Contains("the server stayed busy (HTTP 503) over 4 tries"), Error);
    server.busy = 0;
}

TEST_CASE("http: a .gguf.zst over HTTP is refused plainly") {
    test::HttpServer server;
    server.add("/m.gguf.zst", {0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0});
    CHECK_THROWS_WITH_AS(File::open(server.url("/m.gguf.zst")), doctest::Contains("a .gguf.zst is not read over HTTP"), Error);
}

TEST_CASE_FIXTURE(Served, "http: not found, access denied without the header and granted with it, redirects followed, an empty file") {
    const std::vector<uint8_t> bytes = fixtures::demo_model().write_to_memory();
    server.add("/m.gguf", bytes);
    server.add("/empty.gguf", {});
    server.redirect("/old/m.gguf", "/m.gguf");
    CHECK_THROWS_WITH_AS(File::open(server.url("/none.gguf")), doctest::Contains("not found (HTTP 404)"), Error);
    CHECK_THROWS_WITH_AS(File::open(server.url("/empty.gguf")), doctest::Contains("magic needs 4 bytes, only 0 left"), Error);
    CHECK(File::open(server.url("/old/m.gguf")).tensors().size() == File::parse(bytes, "x").tensors().size());
    server.require_header("Authorization: Bearer s3cret");
    CHECK_THROWS_WITH_AS(File::open(server.url("/m.gguf")), doctest::Contains("access denied (HTTP 401)"), Error);
    http::set_headers({"Authorization: Bearer s3cret"});
    CHECK(File::open(server.url("/m.gguf")).size() == bytes.size());
    const auto sent = server.last_headers();
    CHECK(std::find(sent.begin(), sent.end(), "Authorization: Bearer s3cret") != sent.end());
    // The CLI's --header, and its refusal of a malformed one.
    http::set_headers({});
    CHECK(test::run_gguf("inspect " + server.url("/m.gguf")).exit_code == 2);
    CHECK(test::run_gguf("inspect -H 'Authorization: Bearer s3cret' " + server.url("/m.gguf")).exit_code == 0);
    const test::RunResult bad = test::run_gguf("inspect --header 'no-colon' " + server.url("/m.gguf"));
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("Name: value") != std::string::npos);
    // A URL's header cannot be rewritten in place.
    const test::RunResult edit = test::run_gguf("edit -H 'Authorization: Bearer s3cret' " + server.url("/m.gguf") + " --in-place --name x");
    CHECK(edit.exit_code == 2);
    CHECK(edit.err.find("is read over HTTP: it cannot be rewritten in place") != std::string::npos);
}

TEST_CASE_FIXTURE(Served, "http: a split set is read from its first part's URL; a missing part is named") {
    test::TempDir dir;
    const auto parts = fixtures::write_demo_split(dir.path(), "demo", 3);
    for (const auto& p : parts) server.add("/sets/" + p.filename().string(), test::read_bytes(p));
    const Model local = Model::open(parts[0]);
    const Model m = Model::open(server.url("/sets/" + parts[0].filename().string()));
    REQUIRE(m.parts().size() == 3);
    CHECK(m.tensors().size() == local.tensors().size());
    for (size_t i = 0; i < m.tensors().size(); ++i) {
        CHECK(m.tensors()[i].info->name == local.tensors()[i].info->name);
        CHECK(std::ranges::equal(m.tensor_data(m.tensors()[i]), local.tensor_data(local.tensors()[i])));
    }
    const test::RunResult r = test::run_gguf("inspect " + server.url("/sets/" + parts[1].filename().string()));
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("(3 files)") != std::string::npos);

    test::HttpServer partial;
    partial.add(fmt::format("/{}", parts[0].filename().string()), test::read_bytes(parts[0]));
    partial.add(fmt::format("/{}", parts[2].filename().string()), test::read_bytes(parts[2]));
    const std::string first = partial.url(fmt::format("/{}", parts[0].filename().string()));
    CHECK_THROWS_WITH_AS(Model::open(first), doctest::Contains("not found (HTTP 404)"), Error);
    FaultLog faults;
    const Model lenient = Model::open(first, faults);
    CHECK(lenient.parts().size() == 2);
    REQUIRE(!faults.empty());
    CHECK(faults.kept()[0].message.find("part 2 of the 3-part split set cannot be read") != std::string::npos);
    const test::RunResult c = test::run_gguf("check --no-data " + first);
    CHECK(c.exit_code == 1);
    CHECK(c.out.find("part 2 of the 3-part split set cannot be read") != std::string::npos);
}

TEST_CASE_FIXTURE(Served, "http: gguf check reads the data from a URL and finds what it finds locally") {
    test::TempDir dir;
    for (const auto& p : fixtures::planted_faults()) {
        if (p.files.size() != 1) continue;
        const std::string path = fmt::format("/{}.gguf", p.name);
        server.add(path, p.files[0].second);
        test::write_bytes(dir / (p.name + ".gguf"), p.files[0].second);
        CAPTURE(p.name);
        const test::RunResult remote = test::run_gguf("check --json " + server.url(path));
        const test::RunResult local = test::run_gguf("check --json " + test::shell_quote((dir / (p.name + ".gguf")).string()));
        CHECK(remote.exit_code == local.exit_code);
        // The same findings, the file named by its URL.
        auto findings = [](std::string json, const std::string& from, const std::string& to) {
            for (size_t at = 0; (at = json.find(from, at)) != std::string::npos; at += to.size()) json.replace(at, from.size(), to);
            return json;
        };
        CHECK(remote.out == findings(local.out, (dir / (p.name + ".gguf")).string(), server.url(path)));
    }
}
