// Benchmark: what one parallel call costs on tiny work, the persistent pool (quant::Executor)
// against a thread started per call (how for_each_row_range worked before the pool, kept
// here as the yardstick). Prints figures; asserts nothing. bench_executor [RUNS]
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "quant/executor.h"
#include "quant/quant.h"
#include "support.h"

namespace {

// The earlier for_each_row_range: threads - 1 threads started and joined on every call.
void thread_per_call(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n));
    if (parts == 1) {
        if (n > 0) fn(0, n);
        return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    auto run = [&](int64_t p) {
        try {
            fn(n * p / parts, n * (p + 1) / parts);
        } catch (...) {
            std::lock_guard lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (int64_t p = 1; p < parts; ++p) pool.emplace_back(run, p);
    run(0);
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 9;
    constexpr int kCalls = 1000;  // calls per timed run
    constexpr int64_t kItems = 64;
    std::atomic<int64_t> sink{0};
    // Tiny work: a few additions per range, so the figure is the call's own cost. The caller
    // may finish every range before another thread wakes, which the pool allows.
    const auto tiny = [&](int64_t b, int64_t e) {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) s += i;
        sink.fetch_add(s, std::memory_order_relaxed);
    };
    fmt::print("cost of one parallel call on {} items of tiny work, in microseconds; median of {} runs of {} calls; {} cores\n", kItems,
               runs, kCalls, quant::thread_count(0));
    fmt::print("  tiny: ranges of a few additions; together: one range per thread, each waiting until all have started\n"
               "  (every thread must take part: the wake-up or start of each is in the figure)\n\n");
    fmt::print("{:>7} | {:>12} {:>9} {:>7} | {:>12} {:>9} {:>7} | {:>13}\n", "threads", "tiny: start", "pool", "ratio", "together: start",
               "pool", "ratio", "pool, grain 1");
    for (int threads : {1, 2, 4, 8}) {
        quant::Executor pool(threads);
        std::atomic<int> arrived{0};
        const auto together = [&](int64_t, int64_t) {
            arrived.fetch_add(1);
            while (arrived.load() < threads) std::this_thread::yield();
        };
        const auto per_call = [&](auto call) {
            return test::median_ns(runs, [&] {
                       for (int c = 0; c < kCalls; ++c) {
                           arrived = 0;
                           call();
                       }
                   }) / kCalls / 1e3;
        };
        const double old_tiny = per_call([&] { thread_per_call(kItems, threads, tiny); });
        const double new_tiny = per_call([&] { pool.run(kItems, tiny); });
        const double old_together = per_call([&] { thread_per_call(threads, threads, together); });
        const double new_together = per_call([&] { pool.run(threads, together); });
        quant::RunOptions fine;
        fine.grain = 1;
        const double new_fine = per_call([&] { pool.run(kItems, tiny, fine); });
        fmt::print("{:>7} | {:>12.2f} {:>9.2f} {:>6.0f}x | {:>15.2f} {:>9.2f} {:>6.1f}x | {:>13.2f}\n", threads, old_tiny, new_tiny,
                   old_tiny / new_tiny, old_together, new_together, old_together / new_together, new_fine);
    }
    return sink.load() == 42 ? 1 : 0;  // keeps the work from being optimized away
}
