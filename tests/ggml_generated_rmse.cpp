// ggml's quantization error on the generated inputs of quant_inputs.h, measured through
// llama.cpp's own libggml-base (ggml_quantize_chunk; the bytes dequantized by quant/, which
// is bit-exact with ggml on every type), printed beside ours; --write keeps ggml's figures in
// the TSV test_quant holds ours against (tests/data/quant/ggml-generated.tsv). --check-ref
// first quantizes rmse.tsv's own inputs (../shared/ref/quant) and prints the library's
// figures beside rmse.tsv's, so a library that is not the reference's quantizer shows.
//
//   LLAMA_LIB=/path/to/bins/linux-x64 ggml_generated_rmse [--check-ref] [--write FILE]
//
// LLAMA_LIB: the folder of libggml-base.so (npm's @node-llama-cpp/linux-x64 ships one; see
// README, "Measured against llama.cpp's quantizer").
#include <dlfcn.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "quant/quant.h"
#include "quant_inputs.h"
#include "support.h"

namespace {

struct Ggml {
    size_t (*quantize_chunk)(int type, const float* src, void* dst, int64_t start, int64_t nrows, int64_t n_per_row, const float* imatrix) = nullptr;
    bool (*requires_imatrix)(int type) = nullptr;
    const char* (*type_name)(int type) = nullptr;
};

// The types both quantize, by GGUF id and name (ggml's ids are GGUF's; a library without one
// of ours names it otherwise or "NONE").
std::vector<const gguf::TypeInfo*> shared_types(const Ggml& g) {
    std::vector<const gguf::TypeInfo*> out;
    for (const gguf::TypeInfo& t : gguf::all_types()) {
        // (Q8_1 and Q8_K: activations' layouts for dot products, which ggml_quantize_chunk refuses.)
        if (!quant::can_quantize(t.id) || !(t.quantized || t.id == gguf::TypeId::F16 || t.id == gguf::TypeId::BF16) || t.id == gguf::TypeId::Q8_1 ||
            t.id == gguf::TypeId::Q8_K)
            continue;
        const char* name = g.type_name(static_cast<int>(t.id));
        if (!name || std::string(name) != t.name) {
            fmt::print("note: {} is not in this libggml ({}): left out\n", t.name, name ? name : "null");
            continue;
        }
        out.push_back(&t);
    }
    return out;
}

std::vector<float> ggml_roundtrip(const Ggml& g, gguf::TypeId type, const std::vector<float>& x, int64_t rows, int64_t cols, const float* imp) {
    std::vector<uint8_t> q(quant::row_bytes(type, cols) * rows);
    const size_t written = g.quantize_chunk(static_cast<int>(type), x.data(), q.data(), 0, rows, cols, imp);
    if (written != q.size())
        throw std::runtime_error(fmt::format("ggml_quantize_chunk wrote {} bytes of {} ({} x {}), not {}", written, gguf::type_info(type).name, rows, cols, q.size()));
    std::vector<float> y(x.size());
    quant::dequantize(type, q, y);
    return y;
}

std::vector<float> our_roundtrip(gguf::TypeId type, const std::vector<float>& x, int64_t cols, const float* imp) {
    std::vector<uint8_t> q(quant::row_bytes(type, cols) * (static_cast<int64_t>(x.size()) / cols));
    quant::quantize(type, x, cols, imp ? std::span<const float>(imp, cols) : std::span<const float>(), q, 0);
    std::vector<float> y(x.size());
    quant::dequantize(type, q, y);
    return y;
}

// rmse.tsv's inputs through the library, beside rmse.tsv's figures (its weighted figure is
// normalised by rows^2, as test_quant_ref's measure explains). Returns the largest relative
// difference.
double check_reference(const Ggml& g, const std::vector<const gguf::TypeInfo*>& types) {
    const auto dir = test::ref_dir() / "quant";
    std::ifstream in(dir / "rmse.tsv");
    if (!in) throw std::runtime_error("--check-ref: no " + (dir / "rmse.tsv").string());
    test::GeneratedInput gauss{"gauss", 32, 4096, test::read_floats(dir / "input_gauss.f32"), test::read_floats(dir / "importance.f32")};
    test::GeneratedInput heavy{"heavy", 32, 4096, test::read_floats(dir / "input_heavy.f32"), gauss.importance};
    std::map<std::string, gguf::TypeId> by_name;
    for (const gguf::TypeInfo* t : types) by_name[std::string(t->name)] = t->id;
    std::string line;
    if (!std::getline(in, line) || line.rfind("type\t", 0) != 0) throw std::runtime_error((dir / "rmse.tsv").string() + ": no header line");
    fmt::print("{:<8} {:<6} {:<4} {:>12} {:>12} {:>8}  {:>12} {:>12} {:>8}\n", "type", "input", "imx", "libggml", "rmse.tsv", "ratio", "weighted", "rmse.tsv",
               "ratio");
    double worst = 0;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string name, id, block, bytes, input, imx;
        double ref_rmse, ref_weighted;
        f >> name >> id >> block >> bytes >> input >> imx >> ref_rmse >> ref_weighted;
        if (!f) throw std::runtime_error((dir / "rmse.tsv").string() + ": cannot read the line '" + line + "'");
        if (!by_name.count(name)) continue;
        const gguf::TypeId type = by_name[name];
        const test::GeneratedInput& x = input == "gauss" ? gauss : heavy;
        const bool use = imx == "yes";
        if (!use && g.requires_imatrix(static_cast<int>(type))) continue;
        const std::vector<float> y = ggml_roundtrip(g, type, x.values, x.rows, x.cols, use ? x.importance.data() : nullptr);
        test::ErrorFigures e = test::error_figures(x, y);
        e.weighted_rmse /= std::sqrt(static_cast<double>(x.rows));
        fmt::print("{:<8} {:<6} {:<4} {:>12.6g} {:>12.6g} {:>8.5f}  {:>12.6g} {:>12.6g} {:>8.5f}\n", name, input, imx, e.rmse, ref_rmse, e.rmse / ref_rmse,
                   e.weighted_rmse, ref_weighted, e.weighted_rmse / ref_weighted);
        worst = std::max({worst, std::fabs(e.rmse / ref_rmse - 1), std::fabs(e.weighted_rmse / ref_weighted - 1)});
    }
    fmt::print("largest relative difference from rmse.tsv: {:.2e}\n\n", worst);
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    bool check_ref = false;
    std::string write;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--check-ref") check_ref = true;
        else if (a == "--write" && i + 1 < argc) write = argv[++i];
        else {
            std::fprintf(stderr, "usage: LLAMA_LIB=DIR ggml_generated_rmse [--check-ref] [--write FILE]\n");
            return 2;
        }
    }
    const char* dir = std::getenv("LLAMA_LIB");
    if (!dir) {
        std::fprintf(stderr, "ggml_generated_rmse: set LLAMA_LIB to the folder of libggml-base.so\n");
        return 2;
    }
    const std::string lib = std::string(dir) + "/libggml-base.so";
    void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        std::fprintf(stderr, "ggml_generated_rmse: %s\n", dlerror());
        return 1;
    }
    Ggml g;
    g.quantize_chunk = reinterpret_cast<decltype(g.quantize_chunk)>(dlsym(handle, "ggml_quantize_chunk"));
    g.requires_imatrix = reinterpret_cast<decltype(g.requires_imatrix)>(dlsym(handle, "ggml_quantize_requires_imatrix"));
    g.type_name = reinterpret_cast<decltype(g.type_name)>(dlsym(handle, "ggml_type_name"));
    if (!g.quantize_chunk || !g.requires_imatrix || !g.type_name) {
        std::fprintf(stderr, "ggml_generated_rmse: %s lacks ggml_quantize_chunk, ggml_quantize_requires_imatrix or ggml_type_name\n", lib.c_str());
        return 1;
    }
    try {
        const std::vector<const gguf::TypeInfo*> types = shared_types(g);
        // A library whose quantizers are not the reference's does not write the TSV.
        if (check_ref && check_reference(g, types) > 1e-6 && !write.empty())
            throw std::runtime_error(lib + " does not reproduce rmse.tsv (above): not writing " + write);
        std::string tsv = "type\tinput\timatrix\trmse\tweighted_rmse\n";
        fmt::print("{:<8} {:<30} {:<4} {:>12} {:>12} {:>7}  {:>12} {:>12} {:>7}\n", "type", "input", "imx", "ours", "ggml", "ratio", "weighted", "ggml", "ratio");
        for (const test::GeneratedInput& x : test::generated_inputs())
            for (const gguf::TypeInfo* t : types)
                for (const bool use : {false, true}) {
                    if (!use && (g.requires_imatrix(static_cast<int>(t->id)) || quant::needs_importance(t->id))) continue;
                    const float* imp = use ? x.importance.data() : nullptr;
                    const test::ErrorFigures theirs = test::error_figures(x, ggml_roundtrip(g, t->id, x.values, x.rows, x.cols, imp));
                    const test::ErrorFigures ours = test::error_figures(x, our_roundtrip(t->id, x.values, x.cols, imp));
                    const char* imx = use ? "yes" : "no";
                    tsv += fmt::format("{}\t{}\t{}\t{:.9g}\t{:.9g}\n", t->name, x.name, imx, theirs.rmse, theirs.weighted_rmse);
                    fmt::print("{:<8} {:<30} {:<4} {:>12.6g} {:>12.6g} {:>7.4f}  {:>12.6g} {:>12.6g} {:>7.4f}\n", t->name, x.name, imx, ours.rmse, theirs.rmse,
                               ours.rmse / theirs.rmse, ours.weighted_rmse, theirs.weighted_rmse, ours.weighted_rmse / theirs.weighted_rmse);
                    std::fflush(stdout);
                }
        if (!write.empty()) {
            const std::string tmp = write + ".tmp";
            std::ofstream out(tmp, std::ios::binary);
            out << tsv;
            out.close();
            if (!out) {
                std::filesystem::remove(tmp);
                throw std::runtime_error("cannot write " + tmp);
            }
            std::filesystem::rename(tmp, write);
            fmt::print("wrote {}\n", write);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ggml_generated_rmse: %s\n", e.what());
        return 1;
    }
    return 0;
}
