// Where quant's parallel work runs: a pool of threads started once and reused, so that a
// call costs a wake-up rather than a thread start (tens of microseconds each), which
// matters for the many small tensors of a model.
//
// run(n, fn) splits [0, n) into contiguous ranges and calls fn(begin, end) once per range,
// on the pool's threads and the calling thread together, and returns when every range is
// done. The split never depends on timing (only on n, `threads` and `grain`), so a result
// assembled by range index is the same on every run; which thread runs a range does vary.
//
// A run stops handing out ranges when a range throws, when `cancel` is set or `stop` is
// requested; ranges already started finish first. Then run() rethrows the first exception,
// or throws Cancelled when cancellation left some range undone.
//
// A run called from inside a range (of any executor) runs inline, on that thread alone:
// the outer run already keeps every thread busy, and a pool thread waiting for its own pool
// could deadlock. Runs from several outside threads at once share the pool.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <type_traits>

namespace quant {

// Thrown by Executor::run when cancellation left work undone.
struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("interrupted") {}
};

struct RunOptions {
    // Threads to split the work for (0: the executor's size). At most this many and at most
    // the executor's size run at once, the calling thread among them.
    int threads = 0;
    // Items per range. 0: one range per thread, the least overhead for even work. A positive
    // grain hands out ranges of that many items as threads become free, which balances
    // uneven work, and lets cancellation and progress act between ranges.
    int64_t grain = 0;
    // Either one, when set, stops the run (see above). Checked before each range.
    const std::atomic<bool>* cancel = nullptr;
    std::stop_token stop;
    // Called on the calling thread with items done and the total, between its own ranges or
    // while it waits for the others, at most once per interval, and a last time with
    // done == total when the run completes. An exception from it ends the run like one from
    // a range.
    std::function<void(int64_t done, int64_t total)> progress;
    std::chrono::milliseconds progress_interval{100};
};

namespace detail {
// fn(begin, end) borrowed for the length of one run() call, where std::function would copy
// (and may allocate for) the caller's lambda on every call.
class RangeFn {
public:
    // Never for a RangeFn itself: copying one must copy it, not wrap the copy's source.
    template <class F>
        requires(!std::is_same_v<std::remove_cv_t<F>, RangeFn>)
    explicit RangeFn(F& f)
        : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o, int64_t b, int64_t e) { (*static_cast<F*>(o))(b, e); }) {}
    void operator()(int64_t begin, int64_t end) const { call_(object_, begin, end); }

private:
    void* object_;
    void (*call_)(void*, int64_t, int64_t);
};
}  // namespace detail

class Executor {
public:
    // `threads` threads work on a run (at least 1): threads - 1 started now, and the caller.
    explicit Executor(int threads);
    // Stops and joins the pool's threads. No run may be in progress.
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    // Threads that can work on one run at once, the calling thread included.
    int size() const;

    // Calls fn(begin, end) (int64_t each) on ranges that cover [0, n) exactly once; see the
    // top of this file.
    template <class F>
        requires std::is_invocable_v<F&, int64_t, int64_t>
    void run(int64_t n, F&& fn, const RunOptions& options = {}) {
        run_ranges(n, detail::RangeFn(fn), options);
    }

private:
    struct Pool;
    void run_ranges(int64_t n, detail::RangeFn fn, const RunOptions& options);
    std::unique_ptr<Pool> pool_;
};

// The process-wide executor, started on first use with thread_count(0) threads (one per
// core). Callers that want fewer pass RunOptions::threads.
Executor& default_executor();

}  // namespace quant
