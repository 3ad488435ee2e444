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
    std::vector<entry> take_batch(std::size_t n) {
        std::vector<entry> batch;
        while (!jobs_.empty() && batch.size() < n) {
            const session_id s = jobs_.front().work.session;
            if (std::any_of(batch.begin(), batch.end(), [&](const entry& b) { return b.work.session == s; })) break;
            order_.pop();
            batch.push_back(std::move(jobs_.front()));
            jobs_.pop_front();
        }
        return batch;
    }
    /// The job at the head (the next to run), or nullptr.
    const job* front() const noexcept { return jobs_.empty() ? nullptr : &jobs_.front().work; }
    std::size_t size() const noexcept { return jobs_.size(); }
    bool empty() const noexcept { return jobs_.empty(); }
    queue_view view() const noexcept { return queue_view(order_); }

private:
    std::deque<entry> jobs_;
    job_order order_;
    std::uint64_t next_id_ = 0;
};

}  // namespace cachedattn
