#include "bench.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <vector>

#include "gguf/types.h"
#include "json.h"
#include "kernels/kernels.h"
#include "options.h"
#include "quant/quant.h"
#if defined(GGUFKIT_WITH_CUDA)
#include "kernels/cuda.h"
#endif

namespace gguf::tools {

namespace {

struct BenchOptions {
    std::string types;
    std::string isas;
    std::string ops = "dequant,dot";
    int threads = 1;
    int64_t values = 65536;
    int runs = 7;
    bool json = false;
    bool list = false;
    bool gpu = false;
};

struct Record {
    std::string type, isa, op;
    int threads;
    double gbps_in, gbps_out, ns_per_value, memcpy_gbps;
};

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

// The types a user can pick: every quantized type the kernels read, and the float types.
bool benchable(const TypeInfo& t) {
    return !t.retired && kernels::can_dequantize(t.id) && (t.quantized || t.id == TypeId::F32 || t.id == TypeId::F16 || t.id == TypeId::BF16);
}

std::vector<TypeId> chosen_types(const std::string& list) {
    std::vector<TypeId> out;
    if (list.empty()) {
        for (const TypeInfo& t : all_types())
            if (benchable(t)) out.push_back(t.id);
        return out;
    }
    for (const std::string& name : split_list(list)) {
        const std::optional<TypeId> t = type_from_name(name);
        if (!t || !benchable(type_info(*t))) throw CLI::ValidationError("--types", fmt::format("'{}' is not a tensor type the kernels read", name));
        out.push_back(*t);
    }
    return out;
}

std::vector<kernels::Isa> chosen_isas(const std::string& list) {
    if (list.empty()) return kernels::available_isas();
    std::vector<kernels::Isa> out;
    for (const std::string& name : split_list(list)) {
        const std::optional<kernels::Isa> isa = kernels::isa_from_name(name);
        if (!isa) throw CLI::ValidationError("--isa", fmt::format("'{}' is not a path (scalar, avx2, avx512)", name));
        if (!kernels::isa_available(*isa)) throw CLI::ValidationError("--isa", fmt::format("this CPU or build cannot run the {} path", name));
        out.push_back(*isa);
    }
    return out;
}

// Realistic data of a type: Gaussian values quantized by quant/ (the activation formats
// through the kernels' own activation quantizer), so scales are ordinary numbers.
std::vector<uint8_t> sample(TypeId type, int64_t n) {
    // At most 64 Ki values are quantized (the grid types' searches are slow); a longer sample
    // repeats them, which changes nothing for kernels that treat every block alike.
    const int64_t fresh = std::min<int64_t>(n, int64_t{1} << 16);
    std::mt19937 rng(42);
    std::normal_distribution<float> gauss(0, 1);
    std::vector<float> x(static_cast<size_t>(fresh));
    for (float& v : x) v = gauss(rng);
    std::vector<uint8_t> out(static_cast<size_t>(quant::row_bytes(type, n)));
    const std::span<uint8_t> first(out.data(), static_cast<size_t>(quant::row_bytes(type, fresh)));
    if (!quant::can_quantize(type)) {  // Q8_1, Q8_K: activation formats
        kernels::quantize_activations(type, x, first, kernels::Isa::Scalar);
    } else {
        // Importance weights for the types that need them, in rows of 4096 values.
        const int64_t row = std::min<int64_t>(fresh, 4096);
        std::vector<float> importance(quant::needs_importance(type) ? static_cast<size_t>(row) : 0, 1.0f);
        quant::quantize(type, x, row, importance, first);
    }
    for (size_t at = first.size(); at < out.size(); at += first.size())
        std::memcpy(out.data() + at, first.data(), std::min(first.size(), out.size() - at));
    return out;
}

// One figure to measure: a call, and what it moves.
struct Case {
    Record record;  // the figures are filled in from the timings
    std::function<void()> call;
    double bytes_in = 0, bytes_out = 0, values = 0;  // per call
    int reps = 1;
    std::vector<double> seconds;  // per call, one per round
};

// Each case's repetitions are set to last a millisecond or more; then `runs` rounds time
// every case once, interleaved, so that a busy machine's slow phases touch all cases alike
// (the paths compared, and memcpy); each figure is the median of its rounds.
void time_cases(std::vector<Case>& cases, int runs) {
    using clock = std::chrono::steady_clock;
    auto time = [](Case& c) {
        const auto a = clock::now();
        for (int i = 0; i < c.reps; ++i) c.call();
        return std::chrono::duration<double>(clock::now() - a).count();
    };
    for (Case& c : cases) {
        c.call();  // warm the caches and the tables
        while (time(c) < 1e-3 && c.reps < (1 << 20)) c.reps *= 4;
    }
    for (int r = 0; r < runs; ++r)
        for (Case& c : cases) c.seconds.push_back(time(c) / c.reps);
    for (Case& c : cases) {
        std::sort(c.seconds.begin(), c.seconds.end());
        const double s = c.seconds[c.seconds.size() / 2];
        c.record.gbps_in = c.bytes_in / s / 1e9;
        c.record.gbps_out = c.bytes_out / s / 1e9;
        c.record.ns_per_value = s * 1e9 / c.values;
    }
}

// Splits [0, n_blocks) over `threads` threads (the calling one among them).
template <class F> void on_threads(int64_t n_blocks, int threads, F&& f) {
    if (threads <= 1) return f(int64_t{0}, n_blocks);
    quant::for_each_row_range(n_blocks, threads, f);
}

double to_double(uint64_t v) { return static_cast<double>(v); }
double to_double(int64_t v) { return static_cast<double>(v); }

// memcpy of `bytes` on the same threads: the yardstick.
Case memcpy_case(int64_t bytes, int threads) {
    auto a = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(bytes), uint8_t{1});
    auto b = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(bytes));
    Case c;
    c.call = [a, b, threads, lines = bytes / 64] {
        on_threads(lines, threads, [&](int64_t begin, int64_t end) {
            std::memcpy(b->data() + begin * 64, a->data() + begin * 64, static_cast<size_t>((end - begin) * 64));
        });
    };
    c.bytes_in = c.bytes_out = to_double(bytes);
    c.values = to_double(bytes / 4);
    return c;
}

// A matrix tile y += W x: 64 rows of 4096 weights, 64 activation vectors (a batch), by each
// internal form the path has for the type; the activations prepared once, the rows split
// over the threads in whole panels.
void add_tile_cases(const BenchOptions& o, TypeId type, kernels::Isa isa, std::vector<Case>& cases) {
    constexpr int64_t m = 64, k = 4096, n = 64;
    auto w = std::make_shared<const std::vector<uint8_t>>(sample(type, m * k));
    const auto stride = static_cast<int64_t>(quant::row_bytes(type, k));
    std::mt19937 rng(3);
    std::normal_distribution<float> gauss(0, 1);
    auto x = std::make_shared<std::vector<float>>(static_cast<size_t>(k * n));
    for (float& v : *x) v = gauss(rng);
    std::vector<std::pair<kernels::MatmulMethod, const char*>> methods = {{kernels::MatmulMethod::QuantizedActivations, "tile-q8"},
                                                                          {kernels::MatmulMethod::DequantizedPanel, "tile-f32"}};
    if (kernels::has_integer_panel(type, isa)) methods.emplace_back(kernels::MatmulMethod::IntegerPanel, "tile-int8");
    for (auto [method, name] : methods) {
        Case c;
        c.record = {std::string(type_info(type).name), std::string(kernels::isa_name(isa)), name, o.threads, 0, 0, 0, 0};
        c.call = [w, x, type, isa, method, stride, threads = o.threads] {
            kernels::MatmulInput input(type, k, n, method, false, isa);
            input.prepare(x->data());
            const int64_t panels = m / kernels::kMatmulPanelRows;
            on_threads(panels, threads, [&](int64_t begin, int64_t end) {
                const int64_t r0 = begin * kernels::kMatmulPanelRows, rows = (end - begin) * kernels::kMatmulPanelRows;
                std::vector<float> y(static_cast<size_t>(rows * n));
                kernels::matmul(type, w->data() + r0 * stride, stride, rows, input, y.data(), rows);
            });
        };
        c.bytes_in = to_double(w->size());
        c.bytes_out = to_double(x->size() * 4);
        c.values = to_double(m * k * n);
        cases.push_back(std::move(c));
    }
}

// Per type, every path and operation and a memcpy, timed interleaved.
std::vector<Record> measure(const BenchOptions& o, const std::vector<TypeId>& types, const std::vector<kernels::Isa>& isas, bool dequant,
                            bool dot, bool tiles) {
    std::vector<Record> out;
    const int64_t n = o.values;
    auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
    std::mt19937 rng(7);
    std::normal_distribution<float> gauss(0, 1);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = gauss(rng);
    for (TypeId type : types) {
        const TypeInfo& info = type_info(type);
        auto data = std::make_shared<const std::vector<uint8_t>>(sample(type, n));
        const int64_t blocks = n / info.block_size;
        std::vector<Case> cases;
        cases.push_back(memcpy_case(n * 4, o.threads));
        for (kernels::Isa isa : isas) {
            const std::string isa_name(kernels::isa_name(isa));
            if (dequant) {
                Case c;
                c.record = {std::string(info.name), isa_name, "dequant", o.threads, 0, 0, 0, 0};
                c.call = [data, values, type, isa, blocks, threads = o.threads, info] {
                    on_threads(blocks, threads, [&](int64_t begin, int64_t end) {
                        kernels::dequantize(type, std::span(*data).subspan(begin * info.type_size, (end - begin) * info.type_size),
                                            std::span(*values).subspan(begin * info.block_size, (end - begin) * info.block_size), isa);
                    });
                };
                c.bytes_in = to_double(data->size());
                c.bytes_out = to_double(n * 4);
                c.values = to_double(n);
                cases.push_back(std::move(c));
            }
            if (dot) {
                // The whole sample in one call, as ggml's figures were taken; with threads, one
                // row per thread.
                const int64_t rows = o.threads, row = n / rows;
                const uint64_t row_bytes = quant::row_bytes(type, row);
                auto xs = std::make_shared<std::vector<kernels::Activations>>();
                for (int64_t r = 0; r < rows; ++r) xs->emplace_back(type, std::span(x).subspan(r * row, row), isa);
                Case c;
                c.record = {std::string(info.name), isa_name, "dot", o.threads, 0, 0, 0, 0};
                c.call = [data, xs, type, isa, rows, row_bytes, threads = o.threads] {
                    static volatile float sink = 0;
                    on_threads(rows, threads, [&](int64_t begin, int64_t end) {
                        float acc = 0;
                        for (int64_t r = begin; r < end; ++r)
                            acc += kernels::dot(type, std::span(*data).subspan(r * row_bytes, row_bytes), (*xs)[static_cast<size_t>(r)], isa);
                        sink = sink + acc;
                    });
                };
                c.bytes_in = to_double(data->size());
                c.bytes_out = to_double(quant::row_bytes(kernels::activation_type(type), n));
                c.values = to_double(n);
                cases.push_back(std::move(c));
            }
            if (tiles) add_tile_cases(o, type, isa, cases);
        }
        time_cases(cases, o.runs);
        const double copy = cases.front().record.gbps_out;
        for (size_t i = 1; i < cases.size(); ++i) {
            cases[i].record.memcpy_gbps = copy;
            out.push_back(cases[i].record);
        }
    }
    return out;
}

// The CUDA kernels' dequantization: GB/s beside a device-to-device copy of the output's
// bytes, 64 Mi values a call (or --values, if more), to f32 and to f16.
// Throws, saying why, when --gpu cannot run here (before anything is measured).
void require_gpu() {
#if defined(GGUFKIT_WITH_CUDA)
    std::string why;
    if (!kernels::cuda::available(&why)) throw std::runtime_error("--gpu: " + why);
#else
    throw std::runtime_error("--gpu: this gguf was built without CUDA (configure with -DGGUFKIT_CUDA=ON where the CUDA toolkit is installed)");
#endif
}

std::vector<Record> measure_gpu(const BenchOptions& o, const std::vector<TypeId>& types) {
#if defined(GGUFKIT_WITH_CUDA)
    std::vector<Record> out;
    for (const kernels::cuda::GpuBenchRecord& g : kernels::cuda::bench_dequantize(types, std::max<int64_t>(o.values, int64_t{1} << 26), o.runs))
        out.push_back({std::string(type_info(g.type).name), "cuda", g.op, 1, g.gbps_in, g.gbps_out, g.ns_per_value, g.memcpy_gbps});
    return out;
#else
    (void)o, (void)types;
    require_gpu();
    return {};
#endif
}

void print_json(const std::vector<Record>& records) {
    Json j;
    j.begin_array();
    for (const Record& r : records) {
        j.begin_object()
            .field("type", r.type)
            .field("isa", r.isa)
            .field("op", r.op)
            .field("threads", int64_t{r.threads})
            .field("gbps_in", r.gbps_in)
            .field("gbps_out", r.gbps_out)
            .field("ns_per_value", r.ns_per_value)
            .field("memcpy_gbps", r.memcpy_gbps)
            .end_object();
    }
    j.end_array();
    fmt::print("{}\n", j.str());
}

void print_text(const BenchOptions& o, const std::vector<Record>& records) {
    fmt::print("{} values per call ({:.0f} KiB of f32), {} thread{}, median of {} runs; paths: ", o.values, static_cast<double>(o.values) / 256, o.threads,
               o.threads == 1 ? "" : "s", o.runs);
    std::string paths;
    for (kernels::Isa isa : kernels::available_isas()) paths += std::string(kernels::isa_name(isa)) + " ";
    fmt::print("{}(active: {})\n", paths, kernels::isa_name(kernels::active_isa()));
    fmt::print("Each type's figures are timed in interleaved rounds with a memcpy of {:.0f} KiB (its GB/s in the last column).\n\n",
               static_cast<double>(o.values) / 256);
    fmt::print("{:<8} {:<7} {:<8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8}\n", "type", "isa", "op", "GB/s in", "GB/s out", "% copy", "ns/value",
               "x scalar", "memcpy");
    for (const Record& r : records) {
        std::string vs_scalar = "";
        for (const Record& s : records)
            if (s.type == r.type && s.op == r.op && s.isa == "scalar" && r.isa != "scalar") vs_scalar = fmt::format("{:.1f}", r.gbps_in / s.gbps_in);
        const std::string share = r.op.starts_with("dequant") ? fmt::format("{:.0f}%", 100 * r.gbps_out / r.memcpy_gbps) : "";
        fmt::print("{:<8} {:<7} {:<8} {:>9.2f} {:>9.2f} {:>8} {:>9.3f} {:>8} {:>8.1f}\n", r.type, r.isa, r.op, r.gbps_in, r.gbps_out, share,
                   r.ns_per_value, vs_scalar, r.memcpy_gbps);
    }
    fmt::print("\nGB/s in: quantized bytes read (for dot and tiles, the weights); GB/s out: f32 written (dot: the activations read "
               "in their 8/16-bit form; tiles: the f32 activations); % copy: f32 output against memcpy; ns/value: per weight (tiles: "
               "per multiply-add).\n");
}

// Which operations each path runs with its own code (the rest use the scalar code).
int print_coverage(const std::vector<TypeId>& types, const std::vector<kernels::Isa>& isas, bool json) {
    if (json) {
        Json j;
        j.begin_array();
        for (TypeId t : types)
            for (kernels::Isa isa : isas) {
                const kernels::Coverage c = kernels::coverage(t, isa);
                j.begin_object().field("type", type_info(t).name).field("isa", kernels::isa_name(isa));
                j.field("dequant", c.dequantize).field("dot", c.dot).field("activations", c.activations).end_object();
            }
        j.end_array();
        fmt::print("{}\n", j.str());
        return 0;
    }
    fmt::print("{:<8}", "type");
    for (kernels::Isa isa : isas) fmt::print(" {:<24}", kernels::isa_name(isa));
    fmt::print("\n");
    for (TypeId t : types) {
        fmt::print("{:<8}", type_info(t).name);
        for (kernels::Isa isa : isas) {
            const kernels::Coverage c = kernels::coverage(t, isa);
            std::string what;
            for (auto [has, name] : {std::pair{c.dequantize, "dequant"}, std::pair{c.dot, "dot"}, std::pair{c.activations, "activations"}})
                if (has) {
                    if (!what.empty()) what += ',';
                    what += name;
                }
            fmt::print(" {:<24}", what.empty() ? "-" : what);
        }
        fmt::print("\n");
    }
    fmt::print("\n'-': the path runs the scalar code for that type. dot: with 8/16-bit activations; activations: "
               "quantizing activations to the type.\n");
    return 0;
}

int run_bench(const BenchOptions& o) {
    kernels::active_isa();  // a bad GGUFKIT_ISA fails here, before any measuring
    if (o.gpu) require_gpu();
    if (o.list) return print_coverage(chosen_types(o.types), chosen_isas(o.isas), o.json);
    const std::vector<TypeId> types = chosen_types(o.types);
    const std::vector<kernels::Isa> isas = chosen_isas(o.isas);
    bool dequant = false, dot = false, tiles = false;
    for (const std::string& op : split_list(o.ops)) {
        if (op == "dequant") dequant = true;
        else if (op == "dot") dot = true;
        else if (op == "tile") tiles = true;
        else throw CLI::ValidationError("--ops", fmt::format("'{}' is not an operation (dequant, dot, tile)", op));
    }
    if (o.values % (int64_t{256} * o.threads) != 0)
        throw CLI::ValidationError("--values", fmt::format("{} is not a multiple of 256 x {} threads (whole blocks of every type on every "
                                                           "thread)", o.values, o.threads));
    std::vector<Record> records = measure(o, types, isas, dequant, dot, tiles);
    if (o.gpu) {
        const std::vector<Record> gpu = measure_gpu(o, types);
        records.insert(records.end(), gpu.begin(), gpu.end());
    }
    if (o.json) print_json(records);
    else print_text(o, records);
    return 0;
}

}  // namespace

void add_bench(CLI::App& app, std::function<int()>& run) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App* c = app.add_subcommand("bench", "Measure dequantization and dot-product speed per tensor type and instruction set");
    c->footer("Prints GB/s per type and path beside memcpy of the same bytes measured in the same run. Asserts nothing; "
              "choose a type for your machine with it. GGUFKIT_ISA=scalar|avx2|avx512 sets the path other commands use.");
    c->add_option("--types", o->types, "Comma-separated types, e.g. q4_K,q8_0,iq4_xs (default: every type)");
    c->add_option("--isa", o->isas, "Comma-separated paths among scalar,avx2,avx512 (default: every path this CPU has)");
    c->add_option("--ops", o->ops, "Comma-separated among dequant, dot (the default: both) and tile (y += W x for 64 rows x 4096 "
                                   "x 8 vectors, by 8-bit activations and by dequantized f32 panels)");
    add_threads_option(c, o->threads)->default_val(1)->description("Threads sharing each call (default 1)");
    c->add_option("--values", o->values, "Values per call (default 65536: 256 KiB of f32, in cache); larger than the caches measures memory")
        ->check(CLI::PositiveNumber);
    c->add_option("--runs", o->runs, "Timings per figure; the median is shown (default 7)")->check(CLI::Range(1, 1000));
    c->add_flag("--json", o->json, "Print a JSON list of records (schema: spec/bench-json.md)");
    c->add_flag("--gpu", o->gpu, "Also the CUDA kernels' dequantization (to f32 and f16) beside a device-to-device copy, where a GPU exists");
    c->add_flag("--list", o->list, "Measure nothing: show which operations each path runs with its own code");
    c->callback([o, &run] {
        run = [o] {
            BenchOptions opts = *o;
            opts.threads = quant::thread_count(opts.threads);
            return run_bench(opts);
        };
    });
}

}  // namespace gguf::tools
