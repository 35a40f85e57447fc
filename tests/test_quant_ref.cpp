// quant/ against the reference: dequantization must equal ggml's bit for bit.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <set>
#include <string>

#include "gguf/writer.h"
#include "kernels/error_stats.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "support.h"

namespace {

// The types whose dequantization this project implements so far; the test fails if one of
// them stops being available, and reports the reference types still to do.
const std::set<std::string> kImplemented = {
    "f16",     "bf16",   "q4_0",  "q4_1",    "q5_0",  "q5_1",  "q8_0",  "q2_K",   "q3_K",
    "q4_K",    "q5_K",   "q6_K",  "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s",
    "iq1_m",   "iq4_nl", "iq4_xs", "mxfp4",  "nvfp4", "tq1_0", "tq2_0", "q1_0",   "q2_0"};

}  // namespace

TEST_CASE("dequantization of random blocks and of quantized test rows equals the reference bit for bit") {
    const auto dir = test::ref_dir() / "quant";
    std::set<std::string> pending;
    size_t compared = 0;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        const std::string name(t.name);
        if (!std::filesystem::exists(dir / "random" / (name + ".bin"))) continue;
        if (!quant::can_dequantize(t.id)) {
            CHECK_MESSAGE(kImplemented.count(name) == 0, name);
            pending.insert(name);
            continue;
        }
        // Random blocks, and every quantized test input the reference has for this type (types
        // that need importance weights have only the imatrix ones).
        std::vector<std::filesystem::path> cases = {dir / "random" / name};
        for (const char* input : {"gauss", "heavy"})
            for (const char* mode : {"plain", "imatrix"}) {
                auto stem = dir / "roundtrip" / (name + "." + input + "." + mode);
                if (std::filesystem::exists(stem.string() + ".bin")) cases.push_back(stem);
            }
        for (const auto& stem : cases) {
            CAPTURE(stem);
            std::vector<uint8_t> bytes = test::read_bytes(stem.string() + ".bin");
            std::vector<float> want = test::read_floats(stem.string() + ".f32");
            std::vector<float> got(want.size());
            REQUIRE(quant::row_bytes(t.id, static_cast<int64_t>(want.size())) == bytes.size());
            quant::dequantize(t.id, bytes, got);
            std::string first;
            CHECK_MESSAGE(test::bit_mismatches(got, want, first) == 0, first);
            ++compared;
        }
    }
    for (const std::string& name : kImplemented) CHECK_MESSAGE(quant::can_dequantize(*gguf::type_from_name(name)), name);
    // Every reference file of an implemented type was compared.
    size_t reference_files = 0;
    for (const char* sub : {"random", "roundtrip"})
        for (const auto& e : std::filesystem::directory_iterator(dir / sub)) {
            const std::string f = e.path().filename().string();
            if (e.path().extension() == ".bin" && kImplemented.count(f.substr(0, f.find('.')))) ++reference_files;
        }
    CHECK(reference_files >= kImplemented.size() * 3);
    CHECK(compared == reference_files);
    std::string todo;
    for (const std::string& n : pending) todo += " " + n;
    if (!pending.empty()) MESSAGE("reference types whose dequantization is not implemented yet:" << todo);
    MESSAGE("compared " << compared << " reference files bit for bit");
}

namespace {

struct Inputs {
    std::vector<float> gauss, heavy, importance;
    static const Inputs& get() {
        static const Inputs in = [] {
            const auto dir = test::ref_dir() / "quant";
            return Inputs{test::read_floats(dir / "input_gauss.f32"), test::read_floats(dir / "input_heavy.f32"), test::read_floats(dir / "importance.f32")};
        }();
        return in;
    }
};
constexpr int64_t kRows = 32, kCols = 4096;

struct Quality {
    double rmse, weighted_rmse;
};

// Quantizes all 32 x 4096 values of an input, dequantizes them, and measures the error
// the way rmse.tsv does. Its weighted figures are sqrt(sum w_c e^2 / (32 x 32 x sum_c w_c)),
// a factor sqrt(32) below the formula its README states: f16, whose bytes ours equal
// exactly, reproduces both of its figures only with that normalisation (checked below).
Quality measure(gguf::TypeId type, const std::vector<float>& x, const float* importance, quant::Effort effort = quant::Effort::Default) {
    const std::vector<float>& w = Inputs::get().importance;
    std::vector<uint8_t> q(quant::row_bytes(type, kCols) * kRows);
    quant::quantize(type, x, kCols, importance ? std::span<const float>(importance, kCols) : std::span<const float>(), q, 0, effort);
    std::vector<float> y(x.size());
    quant::dequantize(type, q, y);
    double se = 0, wse = 0, wsum = 0;
    for (int64_t r = 0; r < kRows; ++r)
        for (int64_t c = 0; c < kCols; ++c) {
            const double e = static_cast<double>(x[r * kCols + c]) - y[r * kCols + c];
            se += e * e;
            wse += w[c] * e * e;
        }
    for (float v : w) wsum += v;
    return {std::sqrt(se / static_cast<double>(x.size())), std::sqrt(wse / (kRows * kRows * wsum))};
}

}  // namespace

TEST_CASE("quantization reaches at most 1.01x the reference's RMSE and weighted RMSE on every rmse.tsv row, 1.0x its RMSE without importance, and 0.95x its weighted RMSE with importance on 12 of issue 18's 18 rows") {
    std::ifstream in(test::ref_dir() / "quant" / "rmse.tsv");
    REQUIRE(in);
    std::string line;
    std::getline(in, line);
    std::set<std::string> pending;
    const std::set<std::string> kTarget095 = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_xs", "iq4_nl", "iq3_s", "iq2_s"};
    // The rows (type and input) that reach it at the default effort, and q5_K's at best.
    const std::set<std::string> kReaches095 = {"q2_K heavy",   "q4_K heavy",  "q5_K gauss",  "q5_K heavy",  "q6_K gauss", "q6_K heavy",
                                               "iq4_nl heavy", "iq4_xs heavy", "iq3_s gauss", "iq3_s heavy", "iq2_s gauss", "iq2_s heavy"},
                                kReaches095Best = {"q5_K"};
    std::string short_of_095, fourth_root_gain;
    size_t rows_at_095 = 0;
    int rows = 0;
    std::string table = fmt::format("\n{:<8} {:<6} {:<4} {:>12} {:>12} {:>6}  {:>12} {:>12} {:>6}\n", "type", "input", "imx",
                                    "rmse", "reference", "ratio", "weighted", "reference", "ratio");
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string name, id, block, bytes, input, imx;
        double ref_rmse, ref_weighted;
        f >> name >> id >> block >> bytes >> input >> imx >> ref_rmse >> ref_weighted;
        const gguf::TypeId type = *gguf::type_from_name(name);
        if (!quant::can_quantize(type)) {
            pending.insert(name);
            continue;
        }
        CAPTURE(line);
        const Inputs& data = Inputs::get();
        if (quant::needs_importance(type) && imx == "no") {
            // Issue 3: these types refuse to quantize without importance weights.
            std::vector<uint8_t> out(quant::row_bytes(type, kCols));
            CHECK_THROWS_WITH_AS(quant::quantize(type, std::span<const float>(data.gauss.data(), kCols), kCols, {}, out),
                                 doctest::Contains("needs importance weights"), std::invalid_argument);
            table += fmt::format("{:<8} {:<6} {:<4} refused without importance weights, as required\n", name, input, imx);
            continue;
        }
        const Quality q = measure(type, input == "gauss" ? data.gauss : data.heavy, imx == "yes" ? data.importance.data() : nullptr);
        CHECK(q.rmse <= 1.01 * ref_rmse);
        CHECK(q.weighted_rmse <= 1.01 * ref_weighted);
        // Issue 18: plain RMSE no worse than 1.0x the reference's without importance (1e-5: the
        // f16 rows, the reference's bytes, measured here as the f16 check below allows).
        if (imx == "no") CHECK(q.rmse <= ref_rmse * (1 + 1e-5));
        // The other efforts, where the type has them (quant::Effort): fast never above the
        // reference's RMSE without importance (each block judged by its plain error, the
        // reference's scale among the candidates; test_quant checks it block by block), and
        // with importance the default's search (ggml searches then too), but Q8_0's: ggml's
        // Q8_0 ignores importance, and fast refits its one scale in the fit's own weights
        // (importance x (sigma^2 + x^2)^(1/4)); held here to the reference's weighted RMSE,
        // which is measured, not guaranteed, as the weights differ; best shown beside them
        // (what is checked of it: below).
        const auto minimized = [&](const Quality& x) { return imx == "yes" ? x.weighted_rmse : x.rmse; };
        if (quant::traits(type)->fast) {
            const Quality fast = measure(type, input == "gauss" ? data.gauss : data.heavy, imx == "yes" ? data.importance.data() : nullptr, quant::Effort::Fast);
            if (imx == "yes" && type != gguf::TypeId::Q8_0) CHECK(minimized(fast) == minimized(q));
            else  // Q8_0 without importance writes the reference's bytes: equal, to the 9 digits rmse.tsv holds
                CHECK(minimized(fast) <= (imx == "yes" ? ref_weighted : ref_rmse) * (1 + 1e-7));
            table += fmt::format("{:<8} {:<6} {:<4} {:>12.6g} {:>12.6g} {:>6.3f}  {:>12.6g} {:>12.6g} {:>6.3f}  (--effort fast)\n", name, input, imx, fast.rmse,
                                 ref_rmse, fast.rmse / ref_rmse, fast.weighted_rmse, ref_weighted, fast.weighted_rmse / ref_weighted);
        }
        if (quant::traits(type)->best) {
            const Quality best = measure(type, input == "gauss" ? data.gauss : data.heavy, imx == "yes" ? data.importance.data() : nullptr, quant::Effort::Best);
            // The legacy types' best (they have a fast effort too) searches more widely for the
            // same fit, and comes out no worse here (Q8_0: from 21 starting scales, not 7, each
            // judged by a bound, so "no worse" is measured on these rows, not guaranteed). The grid i-quants' best keeps, per
            // super-block, whichever of two searches has less error in the fits' own weights
            // (importance x (sigma^2 + x^2)^(1/4)), which test_quant checks block by block; under
            // these rows' importance weights alone it can come out above the default (heavy
            // rows), so here it is held to the reference's bounds.
            // The k-quants' best (Q2_K, Q4_K, Q5_K: more starting scales, more rounds of the
            // super-block refit) comes out no worse than their default on these rows (measured).
            if (quant::traits(type)->fast || name.find("_K") != std::string::npos) CHECK(minimized(best) <= minimized(q));
            // (With importance Q4_K's and Q5_K's best is their default since 2026-12-05: equal here,
            // and q5_K's best held to 0.95x as its default is, below.)
            if (imx == "yes" && kReaches095Best.count(name)) CHECK(best.weighted_rmse <= 0.95 * ref_weighted);
            CHECK(best.rmse <= 1.01 * ref_rmse);
            CHECK(best.weighted_rmse <= 1.01 * ref_weighted);
            table += fmt::format("{:<8} {:<6} {:<4} {:>12.6g} {:>12.6g} {:>6.3f}  {:>12.6g} {:>12.6g} {:>6.3f}  (--effort best)\n", name, input, imx, best.rmse,
                                 ref_rmse, best.rmse / ref_rmse, best.weighted_rmse, ref_weighted, best.weighted_rmse / ref_weighted);
        }
        // With importance the fits weigh a value by importance x (sigma^2 + x^2)^(1/4)
        // (quant/src/fit.h): against the square root on every type
        // (quant::testing::importance_square_root, the weights before 2026-12-04; Q4_K's before
        // 2026-12-05), that is no higher weighted RMSE on any row, and lower on every k-quant and
        // i-quant.
        if (imx == "yes") {
            const Quality square_root = [&] {
                const quant::testing::ImportanceSquareRoot forced;
                return measure(type, input == "gauss" ? data.gauss : data.heavy, data.importance.data());
            }();
            CHECK(q.weighted_rmse <= square_root.weighted_rmse);
            if (name[0] == 'i' || name.find("_K") != std::string::npos) CHECK(q.weighted_rmse < square_root.weighted_rmse);
            fourth_root_gain += fmt::format(" {} {} {:.3f};", name, input, q.weighted_rmse / square_root.weighted_rmse);
        }
        if (name == "f16") {  // identical bytes: the measurement itself must agree
            CHECK(q.rmse == doctest::Approx(ref_rmse).epsilon(1e-5));
            CHECK(q.weighted_rmse == doctest::Approx(ref_weighted).epsilon(1e-5));
        }
        // Issue 18's target: with importance, at most 0.95x the reference's weighted RMSE on its
        // nine types. Asserted on the rows that reach it (11 of 18); the rest are listed with
        // their ratios (bench_quant_bound shows that no quantizer of the format can reach it on
        // q3_K, and on the gauss rows of q4_K, iq4_nl and iq4_xs).
        if (imx == "yes" && kTarget095.count(name)) {
            if (kReaches095.count(name + " " + input)) {
                CHECK(q.weighted_rmse <= 0.95 * ref_weighted);
                ++rows_at_095;
            }
            else if (q.weighted_rmse > 0.95 * ref_weighted) short_of_095 += fmt::format(" {} {} {:.3f};", name, input, q.weighted_rmse / ref_weighted);
        }
        table += fmt::format("{:<8} {:<6} {:<4} {:>12.6g} {:>12.6g} {:>6.3f}  {:>12.6g} {:>12.6g} {:>6.3f}\n", name, input, imx, q.rmse,
                             ref_rmse, q.rmse / ref_rmse, q.weighted_rmse, ref_weighted, q.weighted_rmse / ref_weighted);
        ++rows;
    }
    CHECK(rows_at_095 == kReaches095.size());  // every listed row was found and held
    std::string todo;
    for (const std::string& n : pending) todo += " " + n;
    MESSAGE("quantization quality, ours beside the reference (ratio <= 1.01 passes):" << table);
    if (!short_of_095.empty()) MESSAGE("issue 18's 0.95x weighted-RMSE target, not reached yet (weighted ratio):" << short_of_095);
    MESSAGE("weighted RMSE with the fourth root of sigma^2 + x^2 beside importance / with the square root:" << fourth_root_gain);
    if (!pending.empty()) MESSAGE("types whose quantization is not implemented yet:" << todo);
    CHECK(rows > 0);
}

TEST_CASE("f16, bf16 and q8_0 (without importance, its fast effort) quantization writes the reference's bytes exactly") {
    const Inputs& data = Inputs::get();
    for (const char* name : {"f16", "bf16", "q8_0"}) {
        const gguf::TypeId type = *gguf::type_from_name(name);
        for (const char* input : {"gauss", "heavy"}) {
            CAPTURE(name);
            CAPTURE(input);
            const std::vector<float>& x = std::string(input) == "gauss" ? data.gauss : data.heavy;
            std::vector<uint8_t> want = test::read_bytes(test::ref_dir() / "quant" / "roundtrip" / (std::string(name) + "." + input + ".plain.bin"));
            std::vector<uint8_t> got(want.size());
            quant::quantize(type, std::span<const float>(x.data(), 4 * kCols), kCols, {}, got, 0, quant::Effort::Fast);
            CHECK(got == want);
        }
    }
}

TEST_CASE("llama.cpp's importance file loads as in_sum2 / counts per tensor") {
    const auto path = test::ref_dir() / "gguf/llama-quantize/tiny.imatrix.gguf";
    quant::ImportanceMatrix m = quant::ImportanceMatrix::load(path);
    CHECK(m.size() == 14);
    CHECK(m.datasets == std::vector<std::string>{"licenses.txt"});
    CHECK(m.chunk_count == 157);
    CHECK(m.chunk_size == 128);
    const std::vector<float>* w = m.find("blk.0.ffn_down.weight");
    REQUIRE(w != nullptr);
    CHECK(w->size() == 768);
    const gguf::File f = gguf::File::open(path);
    float sum2, count;
    std::memcpy(&sum2, f.tensor_data(*f.find_tensor("blk.0.ffn_down.weight.in_sum2")).data() + 4 * 5, 4);
    std::memcpy(&count, f.tensor_data(*f.find_tensor("blk.0.ffn_down.weight.counts")).data(), 4);
    CHECK((*w)[5] == sum2 / count);
    CHECK(m.find("output.weight") == nullptr);
}

TEST_CASE("llama.cpp's two importance files: the same importance, and ours written in either format equal its bytes") {
    const auto dir = test::ref_dir() / "gguf/llama-quantize";
    const quant::ImportanceMatrix g = quant::ImportanceMatrix::load(dir / "tiny.imatrix.gguf");
    const quant::ImportanceMatrix d = quant::ImportanceMatrix::load(dir / "tiny.imatrix.dat", 128);  // computed with context 128
    CHECK(d.format == quant::ImatrixFormat::Legacy);
    REQUIRE(d.size() == g.size());
    for (const auto& [name, entry] : g.entries()) {
        CAPTURE(name);
        REQUIRE(d.find(name) != nullptr);
        CHECK(*d.find(name) == *g.find(name));
        CHECK(d.entries().at(name).counts == entry.counts);
    }
    CHECK(d.chunk_count == 157);
    CHECK(d.datasets == g.datasets);
    test::TempDir t;
    g.save(t / "again.gguf", quant::ImatrixFormat::Gguf);
    g.save(t / "converted.dat", quant::ImatrixFormat::Legacy);
    auto bytes = [](const std::filesystem::path& p) {
        std::ifstream in(p, std::ios::binary);
        return std::vector<char>(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(bytes(t / "again.gguf") == bytes(dir / "tiny.imatrix.gguf"));
    CHECK(bytes(t / "converted.dat") == bytes(dir / "tiny.imatrix.dat"));
}

TEST_CASE("bad importance files are refused naming the tensor") {
    test::TempDir d;
    const std::vector<float> sums = {1.0f, -2.0f}, one = {4.0f};
    auto bytes = [](const std::vector<float>& v) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4); };
    gguf::Writer missing;
    missing.add_tensor("w.in_sum2", gguf::TypeId::F32, {1}, bytes(one));
    missing.write(d / "missing.gguf");
    CHECK_THROWS_WITH_AS(quant::ImportanceMatrix::load(d / "missing.gguf"), doctest::Contains("tensor 'w.in_sum2' has no matching .counts tensor"), gguf::Error);
    gguf::Writer negative;
    negative.add_tensor("w.in_sum2", gguf::TypeId::F32, {2}, bytes(sums));
    negative.add_tensor("w.counts", gguf::TypeId::F32, {1}, bytes(one));
    negative.write(d / "negative.gguf");
    CHECK_THROWS_WITH(quant::ImportanceMatrix::load(d / "negative.gguf"), doctest::Contains("entry 'w': value 1 (column 1) is -2"));
}

TEST_CASE("on the tiny model, our error is at most 1.01x that of llama.cpp's own quantized files") {
    // Each file is compared on what its quantizer minimized: the importance-weighted squared
    // error for the .imatrix files (weights in_sum2 / counts per column), plain squared error
    // for the others.
    const auto dir = test::ref_dir() / "gguf/llama-quantize";
    const gguf::File source = gguf::File::open(dir / "tiny-source-f16.gguf");
    const quant::ImportanceMatrix imatrix = quant::ImportanceMatrix::load(dir / "tiny.imatrix.gguf");
    int compared = 0;
    double worst = 0;
    std::map<std::string, int> types;  // tensors compared per type
    for (const auto& path : test::gguf_files(dir)) {
        const std::string file = path.filename().string();
        if (file.rfind("tiny-", 0) != 0 || file == "tiny-source-f16.gguf") continue;
        const bool weighted = file.find(".imatrix.") != std::string::npos;
        const gguf::File theirs = gguf::File::open(path);
        for (const gguf::TensorInfo& t : theirs.tensors()) {
            const gguf::TensorInfo& s = *source.find_tensor(t.name);
            if (!quant::can_quantize(t.type) || t.type == s.type || t.n_dims < 2) continue;
            const std::vector<float>* w = weighted ? imatrix.find(t.name) : nullptr;
            if (quant::needs_importance(t.type) && !w) continue;  // llama.cpp falls back to another type there
            CAPTURE(file);
            CAPTURE(t.name);
            const int64_t cols = static_cast<int64_t>(s.shape[0]), rows = static_cast<int64_t>(s.n_elements) / cols;
            std::vector<float> x(s.n_elements), y_theirs(t.n_elements), y_ours(s.n_elements);
            quant::dequantize(s.type, source.tensor_data(s), x);
            quant::dequantize(t.type, theirs.tensor_data(t), y_theirs);
            const uint64_t row_size = quant::row_bytes(t.type, cols);
            std::vector<uint8_t> q(row_size * static_cast<uint64_t>(rows));
            quant::for_each_row_range(rows, 2, [&](int64_t b, int64_t e) {
                quant::quantize(t.type, std::span<const float>(x.data() + b * cols, static_cast<size_t>((e - b) * cols)), cols,
                                w ? std::span<const float>(*w) : std::span<const float>(),
                                std::span<uint8_t>(q.data() + row_size * static_cast<uint64_t>(b), row_size * static_cast<uint64_t>(e - b)), b);
            });
            quant::dequantize(t.type, q, y_ours);
            double ours = 0, their = 0;
            for (size_t i = 0; i < x.size(); ++i) {
                const double wc = w ? (*w)[i % static_cast<size_t>(cols)] : 1.0;
                ours += wc * (static_cast<double>(x[i]) - y_ours[i]) * (x[i] - y_ours[i]);
                their += wc * (static_cast<double>(x[i]) - y_theirs[i]) * (x[i] - y_theirs[i]);
            }
            CHECK(ours <= 1.01 * 1.01 * their);
            worst = std::max(worst, std::sqrt(ours / their));
            ++types.emplace(gguf::type_info(t.type).name, 0).first->second;
            ++compared;
        }
    }
    CHECK(compared >= 800);
    std::string per_type;
    for (const auto& [name, count] : types) per_type += fmt::format(" {}:{}", name, count);
    MESSAGE("compared " << compared << " tensors (" << per_type << " ); worst error ratio ours / llama.cpp: " << worst);
}
