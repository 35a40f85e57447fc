// llama.cpp's quantizer, run through libllama's public C API (llama_model_quantize), where no
// llama-quantize binary is at hand: the yardstick of bench_requant's BENCH_BASELINE.
//   libllama-quantize [--imatrix FILE] IN OUT MIX [THREADS]
// MIX is a llama-quantize type name (Q4_K_M, IQ3_S, ...); THREADS defaults to 2; the
// importance matrix is read with our reader (either format) and handed over as
// llama-quantize hands over its own: per tensor, the mean squared activations. LLAMA_LIB names
// the folder holding libllama.v0.5.0.so and the libggml*.so it loads, as npm's package
// @node-llama-cpp/linux-x64@3.22.1 ships them (bins/linux-x64).
//
// The parameter struct is that build's (64 bytes): nthread (offset 0), ftype (4), and at 0x18
// the importance data, a list of {name, values, count} ending in a null name (older builds
// took a C++ map there). The defaults it writes are compared byte for byte with that build's
// into a larger buffer, so another layout is refused instead of misread; and the output's
// general.file_type must be the mix asked for (a build that numbers its mixes otherwise
// fails there).
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/file.h"
#include "gguf/file_type.h"
#include "quant/imatrix.h"

namespace {

struct Params {
    alignas(8) unsigned char bytes[512];  // the build's 64, and room to see a larger struct
};
// llama_model_quantize_default_params' 64 bytes in that build (nthread 0, ftype Q8_0, output
// and token embedding types GGML_TYPE_COUNT, quantize_output_tensor, four null pointers, and
// 2 at 0x3c); 0x16 and 0x17 are padding, not written.
constexpr unsigned char kDefaults[64] = {0, 0, 0, 0, 7, 0, 0, 0, 0x2b, 0, 0, 0, 0x2b, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xa5, 0xa5,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0};
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

int run(std::vector<std::string> args) {
    std::string imatrix;
    if (args.size() >= 2 && args[0] == "--imatrix") {
        imatrix = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.size() < 3 || args.size() > 4) {
        std::fprintf(stderr, "usage: libllama-quantize [--imatrix FILE] IN OUT MIX [THREADS]\n");
        return 2;
    }
    int32_t threads = 2;
    if (args.size() > 3) {
        char* end = nullptr;
        const long t = std::strtol(args[3].c_str(), &end, 10);
        if (*end != 0 || t < 1 || t > 4096) return fail("THREADS: a count from 1 to 4096, not " + args[3]);
        threads = static_cast<int32_t>(t);
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
    if (chdir(dir) != 0) return fail(std::string("cannot enter ") + dir + ": " + std::strerror(errno));  // where ggml looks for its CPU backends
    auto backend_init = reinterpret_cast<void (*)()>(dlsym(handle, "llama_backend_init"));
    // (A struct returned by value is written through a hidden first argument: the same call.)
    auto defaults = reinterpret_cast<void (*)(Params*)>(dlsym(handle, "llama_model_quantize_default_params"));
    auto quantize = reinterpret_cast<uint32_t (*)(const char*, const char*, const Params*)>(dlsym(handle, "llama_model_quantize"));
    if (!backend_init || !defaults || !quantize) return fail(lib + " lacks llama_model_quantize or its companions");

    backend_init();
    Params p;
    std::memset(p.bytes, 0xa5, sizeof p.bytes);
    defaults(&p);
    bool layout = std::memcmp(p.bytes, kDefaults, sizeof kDefaults) == 0;
    for (size_t i = sizeof kDefaults; i < sizeof p.bytes; ++i) layout = layout && p.bytes[i] == 0xa5;
    if (!layout) return fail(lib + ": its quantize parameters are not those of the build this program knows");
    p.bytes[0x16] = p.bytes[0x17] = 0;
    const int32_t ftype = static_cast<int32_t>(*mix);
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
    if (rc != 0) return 1;
    const gguf::File out = gguf::File::open(args[1]);
    const gguf::KeyValue* kv = out.find("general.file_type");
    if (!kv || kv->value.as_uint() != static_cast<uint64_t>(ftype))
        return fail(args[1] + ": general.file_type is not " + std::to_string(ftype) + " (" + args[2] + "): the build numbers its mixes otherwise");
    return 0;
}

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
