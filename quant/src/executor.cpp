#include "quant/executor.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "quant/quant.h"

namespace quant {

namespace {

using Clock = std::chrono::steady_clock;

// Set while this thread runs a range: a run started there goes inline (see executor.h).
thread_local bool t_in_range = false;

struct InRange {
    const bool outer = t_in_range;
    InRange() { t_in_range = true; }
    ~InRange() { t_in_range = outer; }
};

// One run() in progress. It lives on the caller's stack; the pool's threads reach it only
// while it is listed in Pool::jobs or while they are counted in `helpers`, and the caller
// returns only once it is unlisted and `helpers` is back to 0.
struct Job {
    detail::RangeFn fn;
    const RunOptions& options;
    int64_t n, ranges;
    int64_t grain;        // items per range, or 0 for `ranges` near-equal ranges:
    int64_t base, extra;  // then range i holds base items, plus one for the first `extra`

    int helpers_allowed = 0;                // pool threads that may join; guarded by Pool::mutex
    int helpers = 0;                        // pool threads on it now; likewise
    std::condition_variable helpers_left;   // signalled when `helpers` drops to 0

    std::atomic<int64_t> next{0};           // the next range to hand out
    std::atomic<int64_t> done{0};           // items of finished ranges
    std::atomic<bool> halted{false};        // an error or cancellation: hand out no more ranges
    std::mutex error_mutex;
    std::exception_ptr error;
    Clock::time_point last_report;          // the caller's last progress call, or the start

    Job(detail::RangeFn f, const RunOptions& o, int64_t items, int split) : fn(f), options(o), n(items), grain(o.grain) {
        if (options.progress) last_report = Clock::now();  // the clock costs a little; most runs report nothing
        if (grain > 0) {
            ranges = (n - 1) / grain + 1;
            base = extra = 0;
        } else {
            ranges = std::min<int64_t>(std::max(1, split), n);
            base = n / ranges;
            extra = n % ranges;
        }
    }
    int64_t begin(int64_t i) const { return grain > 0 ? i * grain : i * base + std::min(i, extra); }
    int64_t end(int64_t i) const { return grain > 0 ? begin(i) + std::min(grain, n - begin(i)) : begin(i + 1); }
    bool exhausted() const { return halted.load(std::memory_order_relaxed) || next.load(std::memory_order_relaxed) >= ranges; }
    bool cancel_requested() const {
        return (options.cancel && options.cancel->load(std::memory_order_acquire)) || options.stop.stop_requested();
    }

    void fail(std::exception_ptr e) {
        {
            std::lock_guard lock(error_mutex);
            if (!error) error = std::move(e);
        }
        halted.store(true);
    }

    // On the caller's thread only: the progress callback, at most once per interval. The
    // last call (done == n) is left to the end of run().
    void report_progress() {
        if (!options.progress) return;
        const Clock::time_point now = Clock::now();
        const int64_t items = done.load(std::memory_order_relaxed);
        if (now - last_report < options.progress_interval || items == n) return;
        last_report = now;
        try {
            options.progress(items, n);
        } catch (...) {
            fail(std::current_exception());
        }
    }

    // Claims and runs ranges until none are left or the run halts. The caller's thread
    // (`caller`) also reports progress between its ranges.
    void take_ranges(bool caller) {
        while (!halted.load(std::memory_order_relaxed)) {
            if (cancel_requested()) {
                halted.store(true);
                return;
            }
            const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= ranges) return;
            const int64_t b = begin(i), e = end(i);
            try {
                const InRange guard;
                fn(b, e);
            } catch (...) {
                fail(std::current_exception());
                return;
            }
            done.fetch_add(e - b, std::memory_order_relaxed);
            if (caller) report_progress();
        }
    }
};

}  // namespace

struct Executor::Pool {
    std::mutex mutex;
    std::condition_variable work_available;
    std::vector<Job*> jobs;  // runs with pool threads allowed to join
    bool stopping = false;
    std::vector<std::thread> threads;

    ~Pool() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        work_available.notify_all();
        for (std::thread& t : threads) t.join();
    }

    void worker() {
        std::unique_lock lock(mutex);
        for (;;) {
            const auto open = std::find_if(jobs.begin(), jobs.end(), [](const Job* j) { return j->helpers < j->helpers_allowed && !j->exhausted(); });
            if (open == jobs.end()) {
                if (stopping) return;
                work_available.wait(lock);
                continue;
            }
            Job& j = **open;
            ++j.helpers;
            lock.unlock();
            j.take_ranges(false);
            lock.lock();
            if (--j.helpers == 0) j.helpers_left.notify_one();
        }
    }

    void post(Job& j, int helpers) {
        {
            std::lock_guard lock(mutex);
            j.helpers_allowed = helpers;
            jobs.push_back(&j);
        }
        // Wake only as many threads as may join; the rest keep sleeping.
        if (static_cast<size_t>(helpers) >= threads.size()) work_available.notify_all();
        else
            for (int k = 0; k < helpers; ++k) work_available.notify_one();
    }

    // After the caller has run out of ranges: unlists the run so no thread joins it, then
    // waits for the threads still in a range, reporting progress meanwhile.
    void retire(Job& j) {
        std::unique_lock lock(mutex);
        jobs.erase(std::find(jobs.begin(), jobs.end(), &j));
        while (j.helpers > 0) {
            if (!j.options.progress) {
                j.helpers_left.wait(lock);
                continue;
            }
            j.helpers_left.wait_for(lock, std::max(j.options.progress_interval, std::chrono::milliseconds(1)));
            lock.unlock();
            j.report_progress();
            lock.lock();
        }
    }
};

Executor::Executor(int threads) : pool_(std::make_unique<Pool>()) {
    const int started = std::max(0, threads - 1);
    pool_->jobs.reserve(8);  // run() then rarely allocates under the lock
    pool_->threads.reserve(static_cast<size_t>(started));
    for (int k = 0; k < started; ++k) pool_->threads.emplace_back([pool = pool_.get()] { pool->worker(); });
}

Executor::~Executor() = default;

int Executor::size() const { return static_cast<int>(pool_->threads.size()) + 1; }

void Executor::run_ranges(int64_t n, detail::RangeFn fn, const RunOptions& options) {
    if (n <= 0) return;
    const int split = options.threads > 0 ? options.threads : size();
    Job j(fn, options, n, split);
    const int at_once = t_in_range ? 1 : std::min(split, size());
    const int helpers = static_cast<int>(std::min<int64_t>(at_once, j.ranges) - 1);
    if (helpers > 0) pool_->post(j, helpers);
    j.take_ranges(true);
    if (helpers > 0) pool_->retire(j);
    if (j.error) std::rethrow_exception(j.error);
    // Without an error, only cancellation leaves items undone (a cancellation seen after the
    // last range was handed out changes nothing).
    if (j.done.load() < n) throw Cancelled();
    if (options.progress) options.progress(n, n);
}

Executor& default_executor() {
    // Never destroyed: at exit its threads simply end with the process, and a run still
    // going on another thread then finds its pool intact.
    static Executor* const executor = new Executor(thread_count(0));
    return *executor;
}

void for_each_row_range(int64_t n_rows, int threads, const std::function<void(int64_t, int64_t)>& fn) {
    RunOptions o;
    o.threads = std::max(1, threads);
    default_executor().run(n_rows, fn, o);
}

}  // namespace quant
