#pragma once
/// @file
/// @brief The engine's job queue: turns waiting to run, FCFS, and what the policies see of it
/// (a `queue_view`, the paper's look-ahead, §3.4).
#include <algorithm>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/engine/turn.hpp"

namespace cachedattn {

/// @brief A queued turn.
struct job {
    session_id session;
    std::vector<token_id> input;
    int max_new_tokens = 1;
};

/// @brief A finished job.
struct job_result {
    std::uint64_t id = 0;
    session_id session;
    turn_result result;
};

class job_queue {
public:
    struct entry {
        std::uint64_t id;
        job work;
        std::size_t passed_over = 0;  ///< times a later job ran first (I/O-aware scheduling)
    };

    /// I/O-aware reordering (beyond the paper): when the head job is not `ready` (its KV must
    /// still be read from below DRAM), run the first ready job among the next `window` instead.
    /// Bounded: a job is passed over at most `max_passes` times, and a session's jobs never
    /// overtake each other (its next turn needs this one's output). window 0: FCFS.
    struct reorder {
        std::size_t window = 0;
        std::size_t max_passes = 4;
    };

    /// Queues a turn behind the others. Returns its id.
    std::uint64_t push(job j) {
        const std::uint64_t id = next_id_++;
        order_.push(j.session);
        jobs_.push_back({id, std::move(j)});
        return id;
    }
    /// Takes up to `n` jobs from the head, a session at most once (its next turn needs this
    /// one's output): the batch stops at the first repeat.
    template <class Ready = decltype([](session_id) { return true; })>
    std::vector<entry> take_batch(std::size_t n, const reorder& r = {}, Ready&& ready = {}) {
        std::vector<entry> batch;
        while (!jobs_.empty() && batch.size() < n) {
            const std::size_t d = pick(r, ready);
            const session_id s = jobs_[d].work.session;
            if (std::any_of(batch.begin(), batch.end(), [&](const entry& b) { return b.work.session == s; })) break;
            for (std::size_t i = 0; i < d; ++i) ++jobs_[i].passed_over;
            order_.take(d);
            batch.push_back(std::move(jobs_[d]));
            jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(d));
            if (d > 0) ++reordered_;
        }
        return batch;
    }
    /// Jobs run ahead of an earlier one so far.
    std::size_t reordered() const noexcept { return reordered_; }
    /// The job at the head (the next to run), or nullptr.
    const job* front() const noexcept { return jobs_.empty() ? nullptr : &jobs_.front().work; }
    std::size_t size() const noexcept { return jobs_.size(); }
    bool empty() const noexcept { return jobs_.empty(); }
    queue_view view() const noexcept { return queue_view(order_); }

private:
    /// Distance of the job to run next: the head, unless it is not ready, may still be passed
    /// over, and a ready job of another session (its session's first queued) is in the window.
    template <class Ready>
    std::size_t pick(const reorder& r, Ready& ready) const {
        if (r.window < 2 || jobs_.front().passed_over >= r.max_passes || ready(jobs_.front().work.session)) return 0;
        const std::size_t end = std::min(r.window, jobs_.size());
        for (std::size_t d = 1; d < end; ++d) {
            const session_id s = jobs_[d].work.session;
            if (order_.distance(s) == d && ready(s)) return d;
            if (jobs_[d].passed_over >= r.max_passes) return 0;  // may not be passed again: nor may anything behind
        }
        return 0;
    }

    std::size_t reordered_ = 0;
    std::deque<entry> jobs_;
    job_order order_;
    std::uint64_t next_id_ = 0;
};

}  // namespace cachedattn
