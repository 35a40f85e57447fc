// llama.cpp's quantizer, run through libllama's public C API (llama_model_quantize), where no
// llama-quantize binary is at hand: the yardstick of bench_requant's BENCH_BASELINE.
//   libllama-quantize [--imatrix FILE] IN OUT MIX [THREADS]
// MIX is a llama-quantize type name (Q4_K_M, IQ3_S, ...); THREADS defaults to 2; the
// importance matrix is read with our reader (either format) and handed over as
// llama-quantize hands over its own: per tensor, the mean squared activations. LLAMA_LIB names
// the folder holding libllama.v0.5.0.so and the libggml*.so it loads, as npm's package
// @node-llama-cpp/linux-x64@3.22.1 ships them (bins/linux-x64).
//
// The parameter struct is that build's: nthread (offset 0), ftype (4), and at 0x18 the
// importance data, a list of {name, values, count} ending in a null name. Its defaults are
// checked first, so another layout is refused instead of misread.
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/file_type.h"
#include "quant/imatrix.h"

namespace {

struct Params {
    alignas(8) unsigned char bytes[64];
};
struct ImportanceEntry {
    const char* name;
    const float* values;
    size_t count;
};

int fail(const std::string& message) {
    std::fprintf(stderr, "libllama-quantize: %s\n", message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string imatrix;
    if (args.size() >= 2 && args[0] == "--imatrix") {
        imatrix = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.size() < 3 || args.size() > 4) {
        std::fprintf(stderr, "usage: libllama-quantize [--imatrix FILE] IN OUT MIX [THREADS]\n");
        return 2;
    }
    for (size_t i = 0; i < 2; ++i) args[i] = std::filesystem::absolute(args[i]).string();
    if (!imatrix.empty()) imatrix = std::filesystem::absolute(imatrix).string();
    const auto mix = gguf::file_type_from_name(args[2]);
    if (!mix) return fail("unknown mix " + args[2]);
    const char* dir = std::getenv("LLAMA_LIB");
    if (!dir) return fail("LLAMA_LIB: the folder of libllama.v0.5.0.so is not set");
    const std::string lib = std::string(dir) + "/libllama.v0.5.0.so";
    void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!handle) return fail(dlerror());
    if (chdir(dir) != 0) return fail(std::string("cannot enter ") + dir);  // where ggml looks for its CPU backends
    auto backend_init = reinterpret_cast<void (*)()>(dlsym(handle, "llama_backend_init"));
    auto defaults = reinterpret_cast<Params (*)()>(dlsym(handle, "llama_model_quantize_default_params"));
    auto quantize = reinterpret_cast<uint32_t (*)(const char*, const char*, const Params*)>(dlsym(handle, "llama_model_quantize"));
    if (!backend_init || !defaults || !quantize) return fail(lib + " lacks llama_model_quantize or its companions");

    backend_init();
    Params p = defaults();
    int32_t ftype = 0;
    std::memcpy(&ftype, p.bytes + 4, 4);
    bool layout = ftype == static_cast<int32_t>(gguf::FileType::Q8_0);  // its default mix
    for (size_t i = 0x18; i < 0x38; ++i) layout = layout && p.bytes[i] == 0;  // the four pointers
    if (!layout) return fail(lib + ": its quantize parameters are not laid out as this program expects");
    const int32_t threads = args.size() > 3 ? std::atoi(args[3].c_str()) : 2;
    ftype = static_cast<int32_t>(*mix);
    std::memcpy(p.bytes, &threads, 4);
    std::memcpy(p.bytes + 4, &ftype, 4);

    std::vector<std::pair<std::string, std::vector<float>>> importance;
    std::vector<ImportanceEntry> list;
    if (!imatrix.empty()) {
        try {
            const auto m = quant::ImportanceMatrix::load(imatrix);
            for (const auto& [name, entry] : m.entries()) importance.emplace_back(name, entry.importance());
        } catch (const std::exception& e) {
            return fail(e.what());
        }
        for (const auto& [name, values] : importance) list.push_back({name.c_str(), values.data(), values.size()});
        list.push_back({nullptr, nullptr, 0});
        const ImportanceEntry* at = list.data();
        std::memcpy(p.bytes + 0x18, &at, sizeof at);
    }
    const auto start = std::chrono::steady_clock::now();
    const uint32_t rc = quantize(args[0].c_str(), args[1].c_str(), &p);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("libllama-quantize: %s %s in %.2f s\n", args[2].c_str(), rc == 0 ? "written" : "FAILED", seconds);
    return rc == 0 ? 0 : 1;
}
