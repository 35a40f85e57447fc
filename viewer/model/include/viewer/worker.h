// The viewer's background computations: one worker thread takes jobs (the newest request
// first: what the user looks at now), runs each with a Progress it can report to and be
// cancelled through, and keeps the results by key ("values of blk.0.attn_q.weight",
// "error of ... as q4_K with imatrix ...") so that coming back to a tensor and setting costs
// nothing. The window polls; it never waits.
#pragma once

#include <any>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "viewer/analysis.h"

namespace viewer {

class Worker {
public:
    enum class State { Queued, Running, Done, Failed, Cancelled };

    struct Task {
        std::string key;
        Progress progress;
        // Set by the worker; read them after state() says Done / Failed.
        State state() const { return state_.load(std::memory_order_acquire); }
        const std::any& result() const { return result_; }
        const std::string& error() const { return error_; }  // Failed: the exception's message

        // For the worker only.
        std::atomic<State> state_{State::Queued};
        std::any result_;
        std::string error_;
        std::function<std::any(Progress&)> job_;
    };
    using TaskPtr = std::shared_ptr<Task>;

    // Keeps up to `capacity` finished tasks (Done, Failed or Cancelled; the least recently
    // requested dropped first). Waiting and running tasks never count and are never dropped,
    // nor is a task that has just finished (the window is about to show it).
    explicit Worker(size_t capacity = 256);
    // Cancels what runs, drops what waits, joins the thread.
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // The task for `key`: the cached or pending one (a queued one is moved to run next),
    // else a new one running `job` (the newest request runs next). A task that failed or
    // was cancelled stays so, with its message, until retry(): a window that asks for its
    // view every frame does not restart what the user cancelled or what cannot succeed.
    TaskPtr request(const std::string& key, std::function<std::any(Progress&)> job);
    // Starts `key` afresh unless it is waiting or running (then: that task).
    TaskPtr retry(const std::string& key, std::function<std::any(Progress&)> job);
    // The task for `key` if one is cached or pending, else nullptr (never starts one).
    TaskPtr find(const std::string& key) const;
    // Asks `key`'s task to stop: a queued one is Cancelled at once, a running one stops at
    // its next range (then Cancelled). The task stays, Cancelled, until retry().
    void cancel(const std::string& key);
    // cancel() for every waiting or running task, or for those whose key starts with
    // `prefix` (a closed file's).
    void cancel_all();
    void cancel_prefix(std::string_view prefix);
    // Tasks waiting or running.
    size_t pending() const;
    // Blocks until nothing is pending (tests, the screenshot mode) or `timeout` passes;
    // true when idle.
    bool wait_idle(std::chrono::milliseconds timeout) const;

    // Typed access to a finished result: nullptr while it is not Done.
    template <class T>
    static const T* get(const TaskPtr& t) {
        return t && t->state() == State::Done ? std::any_cast<T>(&t->result()) : nullptr;
    }

private:
    void run();
    // Marks key most recently used; drops the oldest finished tasks beyond capacity (never key).
    void touch(const std::string& key);
    void trim(const std::string& keep);  // drops the oldest finished tasks beyond capacity, never `keep`
    TaskPtr start(const std::string& key, std::function<std::any(Progress&)> job);  // mutex held
    void cancel_locked(const TaskPtr& task);
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::map<std::string, TaskPtr, std::less<>> tasks_;
    std::list<std::string> recent_;   // keys, most recent first
    std::vector<TaskPtr> queue_;       // the back runs next
    TaskPtr running_;
    size_t capacity_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace viewer
