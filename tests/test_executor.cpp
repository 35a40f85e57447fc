#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "kernels/error_stats.h"
#include "quant/executor.h"
#include "quant/quant.h"

using quant::Executor;
using quant::RunOptions;
using namespace std::chrono_literals;

namespace {

// Waits (yielding, so that the threads being waited for get a core) until `done` or the
// time is up; says which.
template <class Pred> bool spin_until(Pred done, std::chrono::seconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::yield();
    }
    return true;
}

// Runs `f` on another thread and ends the process when it has not returned in time: a
// deadlock is a failure, not a hang of the whole suite.
template <class F> void within(std::chrono::seconds limit, F f) {
    auto finished = std::async(std::launch::async, f);
    if (finished.wait_for(limit) != std::future_status::ready) {
        std::fprintf(stderr, "test_executor: still running after %llds: deadlock\n", static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::_Exit(1);
    }
    finished.get();
}

// Counts the threads that ever touched it: a thread_local is constructed once per thread.
std::atomic<int> g_threads_seen{0};
struct CountsThreads {
    int order = ++g_threads_seen;
};
thread_local CountsThreads t_counted;

}  // namespace

TEST_CASE("run covers [0, n) exactly once with non-empty ranges, for many n, thread counts and grains") {
    Executor ex(4);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 64, 1000, 1001}) {
        for (int threads : {0, 1, 2, 3, 4, 9}) {
            for (int64_t grain : {0, 1, 3, 100}) {
                CAPTURE(n);
                CAPTURE(threads);
                CAPTURE(grain);
                std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
                std::atomic<int64_t> ranges{0}, empty{0};
                RunOptions o;
                o.threads = threads;
                o.grain = grain;
                ex.run(n, [&](int64_t b, int64_t e) {
                    ranges++;
                    if (b >= e) empty++;
                    for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
                }, o);
                CHECK(std::all_of(seen.begin(), seen.end(), [](const std::atomic<int>& c) { return c.load() == 1; }));
                CHECK(empty == 0);
                // The split depends on n, threads and grain alone.
                const int64_t split = threads > 0 ? threads : ex.size();
                CHECK(ranges == (grain > 0 ? (n + grain - 1) / grain : std::min<int64_t>(split, n)));
            }
        }
    }
}

TEST_CASE("a copy of a borrowed range function calls what the original borrowed, not the original itself") {
    int first = 0, second = 0;
    auto count_first = [&](int64_t, int64_t) { ++first; };
    auto count_second = [&](int64_t, int64_t) { ++second; };
    quant::detail::RangeFn original(count_first);
    quant::detail::RangeFn copy(original);  // a non-const source: the copy constructor, not the borrowing one
    original = quant::detail::RangeFn(count_second);
    copy(0, 1);
    CHECK(first == 1);
    CHECK(second == 0);
}

TEST_CASE("for_each_row_range keeps its split: min(threads, rows) contiguous ranges, in order of rows") {
    for (int threads : {1, 2, 3, 8})
        for (int64_t rows : {1, 5, 100}) {
            std::mutex m;
            std::vector<std::pair<int64_t, int64_t>> ranges;
            quant::for_each_row_range(rows, threads, [&](int64_t b, int64_t e) {
                std::lock_guard lock(m);
                ranges.emplace_back(b, e);
            });
            std::sort(ranges.begin(), ranges.end());
            CHECK(static_cast<int64_t>(ranges.size()) == std::min<int64_t>(threads, rows));
            for (size_t i = 0; i + 1 < ranges.size(); ++i) CHECK(ranges[i].second == ranges[i + 1].first);
            CHECK(ranges.back().second == rows);
        }
}

TEST_CASE("the pool's threads start once: 100 runs that each need every thread at once touch only size() threads") {
    Executor ex(4);
    REQUIRE(ex.size() == 4);
    const int before = g_threads_seen;
    bool all_at_once = true;
    for (int run = 0; run < 100; ++run) {
        std::atomic<int> arrived{0};
        std::atomic<bool> missed{false};
        ex.run(4, [&](int64_t, int64_t) {
            (void)t_counted.order;
            arrived++;
            // Four ranges that wait for one another: only four threads at once can finish them.
            if (!spin_until([&] { return arrived.load() == 4; })) missed = true;
        });
        all_at_once = all_at_once && !missed;
    }
    CHECK(all_at_once);
    // The caller (which may have been counted before) and the three pool threads.
    CHECK(g_threads_seen - before <= 4);
    CHECK(g_threads_seen - before >= 3);
}

TEST_CASE("the default executor has one thread per core and serves for_each_row_range") {
    CHECK(quant::default_executor().size() == quant::thread_count(0));
    CHECK(&quant::default_executor() == &quant::default_executor());
    // for_each_row_range covers every row once, on the pool (rethrowing what a range throws).
    std::vector<std::atomic<int>> hits(1000);
    quant::for_each_row_range(1000, 4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h.load() == 1; }));
    CHECK_THROWS_WITH(quant::for_each_row_range(10, 2, [](int64_t b, int64_t) { if (b > 0) throw std::runtime_error("range"); }), "range");
}

TEST_CASE("an exception in a range stops new ranges, is rethrown, and the pool works afterwards") {
    Executor ex(4);
    std::atomic<int> started{0};
    std::atomic<bool> thrown{false};
    RunOptions o;
    o.grain = 1;
    CHECK_THROWS_WITH_AS(ex.run(1000, [&](int64_t b, int64_t) {
        started++;
        if (b == 0) {
            thrown = true;
            throw std::runtime_error("range 0 failed");
        }
        // Other ranges last until the failure and a millisecond more: the 1000 would take a
        // quarter of a second, while the executor sees the failure microseconds after it.
        spin_until([&] { return thrown.load(); });
        std::this_thread::sleep_for(1ms);
    }, o), "range 0 failed", std::runtime_error);
    CHECK(started < 100);

    std::vector<std::atomic<int>> seen(1000);
    ex.run(1000, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
    }, o);
    CHECK(std::all_of(seen.begin(), seen.end(), [](const std::atomic<int>& c) { return c.load() == 1; }));
}

TEST_CASE("cancellation set mid-run starts no new ranges and throws Cancelled") {
    Executor ex(4);
    std::atomic<bool> cancel{false};
    std::atomic<int> started{0};
    RunOptions o;
    o.grain = 1;
    o.cancel = &cancel;
    CHECK_THROWS_AS(ex.run(1000, [&](int64_t b, int64_t) {
        started++;
        if (b == 0) cancel = true;
        else spin_until([&] { return cancel.load(); });
    }, o), quant::Cancelled);
    CHECK(started >= 1);
    CHECK(started <= 1 + 2 * 3);

    // Set before the run: nothing runs. Cancelled says "interrupted", as requant reports it.
    started = 0;
    CHECK_THROWS_WITH_AS(ex.run(10, [&](int64_t, int64_t) { started++; }, o), "interrupted", std::runtime_error);
    CHECK(started == 0);

    // A stop token works the same.
    std::stop_source source;
    RunOptions s;
    s.grain = 1;
    s.stop = source.get_token();
    CHECK_THROWS_AS(ex.run(1000, [&](int64_t b, int64_t) {
        if (b == 0) source.request_stop();
        else spin_until([&] { return source.stop_requested(); });
    }, s), quant::Cancelled);

    // Set during the last range: nothing was left undone, so the run completes.
    cancel = false;
    CHECK_NOTHROW(ex.run(1, [&](int64_t, int64_t) { cancel = true; }, o));
}

TEST_CASE("progress is reported on the calling thread, rate-limited, never backwards, and reaches the total") {
    Executor ex(4);
    const std::thread::id caller = std::this_thread::get_id();
    std::vector<std::pair<int64_t, int64_t>> calls;
    bool on_caller = true;
    RunOptions o;
    o.grain = 1;
    o.progress_interval = 0ms;
    o.progress = [&](int64_t done, int64_t total) {
        on_caller = on_caller && std::this_thread::get_id() == caller;
        calls.emplace_back(done, total);
    };
    ex.run(200, [](int64_t, int64_t) { std::this_thread::sleep_for(200us); }, o);
    CHECK(on_caller);
    REQUIRE(calls.size() >= 2);
    CHECK(calls.back() == std::pair<int64_t, int64_t>(200, 200));
    CHECK(calls.front().first < 200);
    for (size_t i = 1; i < calls.size(); ++i) CHECK(calls[i - 1].first <= calls[i].first);
    for (const auto& c : calls) CHECK(c.second == 200);

    // With a long interval only the last call is made.
    calls.clear();
    o.progress_interval = std::chrono::hours(1);
    ex.run(200, [](int64_t, int64_t) { std::this_thread::sleep_for(20us); }, o);
    CHECK(calls.size() == 1);

    // An exception from the callback ends the run like one from a range.
    o.progress_interval = 0ms;
    o.progress = [](int64_t, int64_t) { throw std::runtime_error("progress failed"); };
    CHECK_THROWS_WITH(ex.run(50, [](int64_t, int64_t) { std::this_thread::sleep_for(100us); }, o), "progress failed");
    CHECK_NOTHROW(ex.run(50, [](int64_t, int64_t) {}));
}

TEST_CASE("a run from inside a range runs inline on that thread and does not deadlock") {
    within(60s, [] {
        Executor ex(4);
        std::atomic<int> inner_total{0};
        std::atomic<bool> inline_everywhere{true};
        RunOptions o;
        o.grain = 1;
        ex.run(16, [&](int64_t, int64_t) {
            const std::thread::id outer = std::this_thread::get_id();
            ex.run(100, [&](int64_t b, int64_t e) {
                if (std::this_thread::get_id() != outer) inline_everywhere = false;
                inner_total += static_cast<int>(e - b);
            }, o);
            // Another executor's run, and the wrapper over the default one, nest the same way.
            quant::for_each_row_range(10, 4, [&](int64_t b, int64_t e) { inner_total += static_cast<int>(e - b); });
        }, o);
        CHECK(inner_total == 16 * 110);
        CHECK(inline_everywhere);
    });
}

TEST_CASE("runs from several outside threads at once share the pool; `threads` bounds how many work on one") {
    within(60s, [] {
        Executor ex(4);
        std::atomic<int> wrong{0};
        std::vector<std::thread> callers;
        for (int c = 0; c < 3; ++c)
            callers.emplace_back([&] {
                for (int run = 0; run < 50; ++run) {
                    std::vector<std::atomic<int>> seen(97);
                    RunOptions o;
                    o.grain = run % 3;
                    ex.run(97, [&](int64_t b, int64_t e) {
                        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
                    }, o);
                    for (auto& s : seen) wrong += s.load() != 1;
                }
            });
        for (std::thread& t : callers) t.join();
        CHECK(wrong == 0);

        std::atomic<int> in_flight{0}, most{0};
        RunOptions two;
        two.threads = 2;
        two.grain = 1;
        ex.run(200, [&](int64_t, int64_t) {
            const int now = ++in_flight;
            int seen = most.load();
            while (now > seen && !most.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::sleep_for(100us);
            --in_flight;
        }, two);
        CHECK(most <= 2);
    });
}

TEST_CASE("an executor of one thread runs everything on the caller") {
    Executor ex(1);
    CHECK(ex.size() == 1);
    std::atomic<bool> elsewhere{false};
    const std::thread::id caller = std::this_thread::get_id();
    RunOptions o;
    o.threads = 8;
    ex.run(100, [&](int64_t, int64_t) { elsewhere = elsewhere || std::this_thread::get_id() != caller; }, o);
    CHECK(!elsewhere);
}

TEST_CASE("round-trip error figures are the same bits on any number of threads, and its progress reaches the total") {
    constexpr int64_t rows = 1000, cols = 256;  // four ranges of 256 rows
    std::vector<float> x(rows * cols);
    uint32_t s = 7;
    for (float& v : x) v = static_cast<float>(static_cast<int32_t>(s = s * 1664525u + 1013904223u)) * 0x1p-31f;
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(x.data()), x.size() * 4);
    const kernels::ErrorStats one = kernels::round_trip_error(quant::TypeId::F32, bytes, rows, cols, quant::TypeId::Q4_K, {}, 1);
    for (int threads : {2, 3, 8}) {
        CAPTURE(threads);
        int64_t last_done = -1, last_total = -1;
        const uint64_t shape[] = {cols, rows};
        const kernels::ErrorStats many = kernels::tensor_round_trip_error(quant::TypeId::F32, bytes, shape, quant::TypeId::Q4_K, {}, threads,
                                                                      [&](int64_t done, int64_t total) {
                                                                          last_done = done;
                                                                          last_total = total;
                                                                      });
        CHECK(many.values == one.values);
        CHECK(many.sum_sq_error == one.sum_sq_error);
        CHECK(many.sum_sq_signal == one.sum_sq_signal);
        CHECK(many.max_abs_error == one.max_abs_error);
        CHECK(last_done == rows * cols);
        CHECK(last_total == rows * cols);
    }
}
