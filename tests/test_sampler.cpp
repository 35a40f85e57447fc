// infer/sampler.h: greedy is the argmax, a fixed seed gives the same tokens, top-k and top-p
// restrict the draw; generation on the demo model; the planned memory figures.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <vector>

#include "fixtures.h"
#include "gguf/file.h"
#include "gguf/model.h"
#include "infer/forward.h"
#include "infer/sampler.h"

namespace {

std::vector<float> logits_of(uint32_t n, uint64_t seed) {
    std::vector<float> v(n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (float& x : v) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x = static_cast<float>(static_cast<int64_t>(s >> 40) % 2000) / 300.0f;
    }
    return v;
}

// The demo model parsed from memory (the bytes must outlive the views into them).
struct Demo {
    std::vector<uint8_t> bytes = gguf::fixtures::demo_model().write_to_memory();
    gguf::Model file = open(bytes);
    infer::Model model{file};
    static gguf::Model open(const std::vector<uint8_t>& bytes) {
        std::vector<gguf::File> parts;
        parts.push_back(gguf::File::parse(bytes, "demo.gguf"));
        return gguf::Model::from_parts(std::move(parts));
    }
};

}  // namespace

TEST_CASE("sampler: greedy is the argmax, the first among equals") {
    const std::vector<float> v = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    CHECK(infer::argmax(v) == 1);
    infer::Sampler greedy;
    CHECK(greedy.sample(v) == 1);
    for (uint64_t seed = 0; seed < 20; ++seed) {
        const std::vector<float> l = logits_of(300, seed);
        CHECK(greedy.sample(l) == infer::argmax(l));
        // top_k 1 and a tiny top_p leave only the argmax, whatever the temperature.
        infer::Sampler k1({1.5f, 1, 1.0f, seed}), p0({1.5f, 0, 1e-6f, seed});
        CHECK(k1.sample(l) == infer::argmax(l));
        CHECK(p0.sample(l) == infer::argmax(l));
    }
    CHECK_THROWS_AS(infer::argmax(std::vector<float>{}), std::invalid_argument);
    CHECK_THROWS_AS(infer::Sampler({1.0f, 0, 0.0f, 0}), std::invalid_argument);
    CHECK_THROWS_AS(infer::Sampler({1.0f, 0, 1.5f, 0}), std::invalid_argument);
}

TEST_CASE("sampler: a fixed seed draws the same tokens; top-k keeps to the k highest") {
    const std::vector<float> l = logits_of(300, 7);
    const auto draws = [&](infer::SamplerOptions o) {
        infer::Sampler s(o);
        std::vector<int32_t> ids;
        for (int i = 0; i < 200; ++i) ids.push_back(s.sample(l));
        return ids;
    };
    const std::vector<int32_t> a = draws({1.0f, 0, 1.0f, 42}), b = draws({1.0f, 0, 1.0f, 42}), c = draws({1.0f, 0, 1.0f, 43});
    CHECK(a == b);
    CHECK(a != c);
    CHECK(std::set<int32_t>(a.begin(), a.end()).size() > 5);  // a real draw, not the argmax every time
    // top-k 3: only the three highest logits come out.
    std::vector<float> sorted = l;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (int32_t id : draws({2.0f, 3, 1.0f, 5})) CHECK(l[static_cast<size_t>(id)] >= sorted[2]);
    // top-p: with two tokens far above the rest, p = 0.9 keeps only those two.
    std::vector<float> two(50, 0.0f);
    two[10] = 20.0f;
    two[20] = 20.0f;
    infer::Sampler s({1.0f, 0, 0.9f, 3});
    std::set<int32_t> seen;
    for (int i = 0; i < 100; ++i) seen.insert(s.sample(two));
    CHECK(seen == std::set<int32_t>{10, 20});
}

TEST_CASE("generate: greedy continues with the argmax of each step; a seed repeats its text") {
    const Demo d;
    const std::vector<int32_t> prompt = {1, 311, 312};
    infer::GenerateOptions o;
    o.max_tokens = 12;
    const std::vector<int32_t> greedy = infer::generate(d.model, prompt, o);
    REQUIRE(greedy.size() == 12);
    // The same by hand: evaluate the whole sequence and take each position's argmax.
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), greedy.begin(), greedy.end() - 1);
    infer::Context ctx(d.model, static_cast<uint32_t>(seq.size()));
    const uint32_t n_vocab = d.model.config().n_vocab;
    std::vector<float> logits((seq.size() - prompt.size() + 1) * n_vocab);
    ctx.eval(seq, logits, prompt.size() - 1);
    for (size_t i = 0; i < greedy.size(); ++i)
        CHECK(infer::argmax(std::span<const float>(logits.data() + i * n_vocab, n_vocab)) == greedy[i]);

    o.sampling = {0.8f, 40, 0.95f, 1234};
    const std::vector<int32_t> x = infer::generate(d.model, prompt, o), y = infer::generate(d.model, prompt, o);
    CHECK(x == y);
    // EOS ends the generation, the callback can stop it.
    const std::vector<int32_t> stopped = infer::generate(d.model, prompt, o, x[2]);
    CHECK(stopped.size() <= 3);
    CHECK(stopped.back() == x[2]);
    size_t calls = 0;
    CHECK(infer::generate(d.model, prompt, o, std::nullopt, [&](int32_t) { return ++calls < 4; }).size() == 4);
    CHECK_THROWS_AS(infer::generate(d.model, std::vector<int32_t>{}, o), std::invalid_argument);
}

TEST_CASE("planned memory is what the context reports after a batch of that size") {
    const Demo d;
    for (uint32_t n : {1u, 5u, 32u}) {
        infer::Context ctx(d.model, 64);
        std::vector<float> logits(d.model.config().n_vocab);
        std::vector<int32_t> tokens(n, 300);
        ctx.eval(tokens, logits, n - 1);
        const infer::MemoryFigures got = ctx.memory(), planned = infer::Context::planned_memory(d.model, 64, n);
        CHECK(got.mapped_weights == planned.mapped_weights);
        CHECK(got.kv_cache == planned.kv_cache);
        CHECK(got.activations == planned.activations);
    }
}
