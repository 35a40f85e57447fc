#include "support.h"

#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "gguf/file.h"
#include "quant/imatrix.h"

namespace test {

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ggufkit-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_text(const std::filesystem::path& p) {
    const std::vector<uint8_t> bytes = read_bytes(p);
    return {bytes.begin(), bytes.end()};
}

std::vector<int32_t> read_token_ids(const std::filesystem::path& p) {
    std::string text = read_text(p);
    for (char& c : text)
        if (c == '[' || c == ']' || c == ',') c = ' ';
    std::istringstream in(text);
    std::vector<int32_t> ids;
    for (int64_t id; in >> id;) ids.push_back(static_cast<int32_t>(id));
    return ids;
}

std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw std::runtime_error("cannot write " + p.string());
}

std::vector<float> read_floats(const std::filesystem::path& p) {
    const std::vector<uint8_t> bytes = read_bytes(p);
    std::vector<float> values(bytes.size() / 4);
    std::memcpy(values.data(), bytes.data(), values.size() * 4);
    return values;
}

size_t bit_mismatches(std::span<const float> got, std::span<const float> want, std::string& first) {
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const bool same = std::bit_cast<uint32_t>(got[i]) == std::bit_cast<uint32_t>(want[i]) ||
                          (std::isnan(got[i]) && std::isnan(want[i]));
        if (!same && bad++ == 0)
            first = "value " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
    }
    return bad;
}

std::filesystem::path ref_dir() { return std::filesystem::path(GGUFKIT_SHARED_DIR) / "ref"; }

std::vector<std::filesystem::path> gguf_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> v;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".gguf") v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

RunResult run_gguf(const std::string& args) {
    TempDir d;
    std::string cmd = shell_quote(GGUF_BINARY) + " " + args + " >" + shell_quote((d / "out").string()) + " 2>" +
                      shell_quote((d / "err").string()) + " </dev/null";
    int status = std::system(cmd.c_str());
    auto text = [&](const char* name) {
        std::vector<uint8_t> b = read_bytes(d / name);
        return std::string(b.begin(), b.end());
    };
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text("out"), text("err")};
}

gguf::Writer realistic_model(gguf::TypeId type, uint64_t width, uint32_t layers, std::vector<std::vector<uint8_t>>& keep) {
    using namespace gguf;
    Writer w;
    w.set("general.architecture", OwnedValue::string("llama"));
    w.set("llama.block_count", OwnedValue::u32(layers));
    std::mt19937_64 rng(7);
    auto matrix = [&](const std::string& name, uint64_t cols, uint64_t rows, float sigma) {
        std::normal_distribution<float> normal(0.0f, sigma);
        std::student_t_distribution<float> tails(3.0f);
        std::vector<uint8_t> bytes(cols * rows * 2);
        for (uint64_t i = 0; i < cols * rows; ++i) {
            const float v = i % 97 == 0 ? sigma * tails(rng) : normal(rng);
            uint32_t bits;
            std::memcpy(&bits, &v, 4);
            uint16_t h;
            if (type == TypeId::BF16) {
                h = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
            } else {
                const _Float16 f = static_cast<_Float16>(v);
                std::memcpy(&h, &f, 2);
            }
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
        keep.push_back(std::move(bytes));
        w.add_tensor(name, type, {cols, rows}, keep.back());
    };
    auto norm = [&](const std::string& name, uint64_t n) {
        std::normal_distribution<float> normal(1.0f, 0.05f);
        std::vector<uint8_t> bytes(n * 4);
        for (uint64_t i = 0; i < n; ++i) {
            const float v = normal(rng);
            std::memcpy(bytes.data() + 4 * i, &v, 4);
        }
        keep.push_back(std::move(bytes));
        w.add_tensor(name, TypeId::F32, {n}, keep.back());
    };
    matrix("token_embd.weight", width, 512, 0.02f);
    for (uint32_t l = 0; l < layers; ++l) {
        norm(fmt::format("blk.{}.attn_norm.weight", l), width);
        matrix(fmt::format("blk.{}.attn_q.weight", l), width, width, 0.03f / std::sqrt(1.0f + static_cast<float>(l)));
        matrix(fmt::format("blk.{}.ffn_up.weight", l), width, 2 * width, 0.025f);
    }
    norm("output_norm.weight", width);
    return w;
}

gguf::fixtures::DemoOptions llama_bench_shape(const std::string& shape) {
    if (shape != "984M" && shape != "4G") throw std::invalid_argument("llama_bench_shape: 984M or 4G, not " + shape);
    gguf::fixtures::DemoOptions d;
    d.n_vocab = 32000;
    d.n_embd = 2048;
    d.n_ff = 5632;
    d.n_head = 32;
    d.n_head_kv = 4;
    d.n_layer = shape == "4G" ? 44 : 8;
    d.context = 2048;
    return d;
}

void write_generated_imatrix(const std::filesystem::path& model, const std::filesystem::path& out) {
    const gguf::File f = gguf::File::open(model);
    quant::ImportanceMatrix m;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (const auto& t : f.tensors()) {
        if (t.n_dims != 2 || t.name == "token_embd.weight") continue;
        std::vector<float> sums(static_cast<size_t>(t.shape[0]));
        for (float& v : sums) v = std::exp(normal(rng));
        m.set(std::string(t.name), quant::ImatrixEntry{std::move(sums), {1.0f}});
    }
    m.chunk_count = 1;
    m.chunk_size = 512;
    m.datasets = {"generated"};
    m.save(out, quant::ImatrixFormat::Gguf);
}

double run_quantize_command(const std::string& command, const std::filesystem::path& in, const std::filesystem::path& out,
                            const std::string& mix, const std::filesystem::path& imatrix, int threads) {
    std::vector<std::string> args;
    for (size_t at = 0; at < command.size();) {
        const size_t space = std::min(command.find(' ', at), command.size());
        if (space > at) args.push_back(command.substr(at, space - at));
        at = space + 1;
    }
    if (args.empty()) return -1;
    if (!imatrix.empty()) args.insert(args.end(), {"--imatrix", imatrix.string()});
    args.insert(args.end(), {in.string(), out.string(), mix, std::to_string(threads)});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (std::FILE* null = std::fopen("/dev/null", "w")) {
            ::dup2(::fileno(null), 1);
            ::dup2(::fileno(null), 2);
        }
        ::execvp(argv[0], argv.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? s : -1;
}

int64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace test
