#include "viewer/worker.h"

#include <algorithm>
#include <exception>

#include "quant/executor.h"

namespace viewer {

Worker::Worker(size_t capacity) : capacity_(std::max<size_t>(1, capacity)), thread_([this] { run(); }) {}


Worker::~Worker() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (const TaskPtr& t : queue_) t->state_.store(State::Cancelled, std::memory_order_release);
        queue_.clear();
        if (running_) running_->progress.cancel.store(true);
    }
    changed_.notify_all();
    thread_.join();
}

void Worker::touch(const std::string& key) {
    recent_.remove(key);
    recent_.push_front(key);
    trim(key);
}

void Worker::trim(const std::string& keep) {
    size_t finished = 0;
    for (const auto& [k, t] : tasks_) finished += t->state() != State::Queued && t->state() != State::Running;
    // Oldest first; `keep` and unfinished tasks are never dropped.
    for (auto it = recent_.end(); finished > capacity_ && it != recent_.begin();) {
        --it;
        auto task = tasks_.find(*it);
        const bool drop = *it != keep && (task == tasks_.end() || (task->second->state() != State::Queued &&
                                                                   task->second->state() != State::Running));
        if (!drop) continue;
        if (task != tasks_.end()) {
            tasks_.erase(task);
            --finished;
        }
        it = recent_.erase(it);
    }
}

Worker::TaskPtr Worker::start(const std::string& key, std::function<std::any(Progress&)> job) {
    auto task = std::make_shared<Task>();
    task->key = key;
    task->job_ = std::move(job);
    tasks_[key] = task;
    queue_.push_back(task);
    touch(key);
    changed_.notify_all();
    return task;
}

Worker::TaskPtr Worker::request(const std::string& key, std::function<std::any(Progress&)> job) {
    std::lock_guard lock(mutex_);
    if (auto it = tasks_.find(key); it != tasks_.end()) {
        TaskPtr task = it->second;  // our own reference: the map's entry is not what we return
        if (task->state() == State::Queued) {  // asked for again: it runs next
            auto q = std::find(queue_.begin(), queue_.end(), task);
            if (q != queue_.end()) std::rotate(q, q + 1, queue_.end());
        }
        touch(key);
        return task;
    }
    return start(key, std::move(job));
}

Worker::TaskPtr Worker::retry(const std::string& key, std::function<std::any(Progress&)> job) {
    std::lock_guard lock(mutex_);
    if (auto it = tasks_.find(key); it != tasks_.end()) {
        TaskPtr task = it->second;
        if (task->state() == State::Queued || task->state() == State::Running) {
            touch(key);
            return task;
        }
    }
    return start(key, std::move(job));
}

Worker::TaskPtr Worker::find(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = tasks_.find(key);
    return it == tasks_.end() ? nullptr : it->second;
}

void Worker::cancel_locked(const TaskPtr& t) {
    t->progress.cancel.store(true);
    if (auto q = std::find(queue_.begin(), queue_.end(), t); q != queue_.end()) {
        queue_.erase(q);
        t->job_ = nullptr;
        t->state_.store(State::Cancelled, std::memory_order_release);
    }
}

void Worker::cancel(const std::string& key) {
    std::lock_guard lock(mutex_);
    if (auto it = tasks_.find(key); it != tasks_.end()) cancel_locked(it->second);
    changed_.notify_all();
}

void Worker::cancel_all() { cancel_prefix(""); }

void Worker::cancel_prefix(std::string_view prefix) {
    std::lock_guard lock(mutex_);
    std::vector<TaskPtr> hit;
    for (const TaskPtr& t : queue_)
        if (t->key.starts_with(prefix)) hit.push_back(t);
    if (running_ && running_->key.starts_with(prefix)) hit.push_back(running_);
    for (const TaskPtr& t : hit) cancel_locked(t);
    changed_.notify_all();
}

size_t Worker::pending() const {
    std::lock_guard lock(mutex_);
    return queue_.size() + (running_ ? 1 : 0);
}

bool Worker::wait_idle(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return queue_.empty() && !running_; });
}

void Worker::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        TaskPtr task = queue_.back();
        queue_.pop_back();
        running_ = task;
        task->state_.store(State::Running, std::memory_order_release);
        lock.unlock();
        State end = State::Done;
        try {
            task->result_ = task->job_(task->progress);
        } catch (const quant::Cancelled&) {
            end = State::Cancelled;
        } catch (const std::exception& e) {
            task->error_ = e.what();
            end = State::Failed;
        } catch (...) {
            task->error_ = "unknown error";
            end = State::Failed;
        }
        if (end == State::Done && task->progress.cancel.load()) end = State::Cancelled;
        task->job_ = nullptr;  // what it captured (files, buffers) goes now
        lock.lock();
        task->state_.store(end, std::memory_order_release);
        running_.reset();
        trim(task->key);  // it is finished now: the cache may be over capacity
        changed_.notify_all();
    }
}

}  // namespace viewer
