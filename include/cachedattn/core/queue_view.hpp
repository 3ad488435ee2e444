#pragma once
/// @file
/// @brief The job queue's order of sessions (`job_order`) and the read-only look at it that
/// scheduler-aware policies get (`queue_view`).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/session.hpp"

namespace cachedattn {

/// @brief Sessions of queued jobs in FCFS order, with O(1) push, pop and "how far ahead is
/// this session's next job". Jobs leave only from the front (FCFS).
class job_order {
public:
    void push(session_id s) {
        order_.push_back(s);
        seqs_[s].push_back(next_seq_++);
    }
    session_id pop() {
        if (order_.empty()) throw error("job_order::pop on an empty queue");
        const session_id s = order_.front();
        order_.pop_front();
        auto it = seqs_.find(s);
        it->second.erase(it->second.begin());
        if (it->second.empty()) seqs_.erase(it);
        ++head_seq_;
        return s;
    }
    /// Removes the job `distance` jobs from the head (0: pop). The jobs behind it move one
    /// closer. O(queue) unless it is the head.
    session_id take(std::size_t distance) {
        if (distance == 0) return pop();
        if (distance >= order_.size()) throw error("job_order::take past the end of the queue");
        const session_id s = order_[distance];
        order_.erase(order_.begin() + static_cast<std::ptrdiff_t>(distance));
        seqs_.clear();
        for (std::size_t i = 0; i < order_.size(); ++i) seqs_[order_[i]].push_back(head_seq_ + i);
        next_seq_ = head_seq_ + order_.size();
        return s;
    }
    std::size_t size() const noexcept { return order_.size(); }
    bool empty() const noexcept { return order_.empty(); }
    session_id at(std::size_t distance) const { return order_.at(distance); }
    /// Jobs ahead of `s`'s next queued job (0: it is next), or nullopt when none is queued.
    std::optional<std::size_t> distance(session_id s) const {
        auto it = seqs_.find(s);
        if (it == seqs_.end()) return std::nullopt;
        return static_cast<std::size_t>(it->second.front() - head_seq_);
    }
    /// Jobs queued for `s`.
    std::size_t jobs_of(session_id s) const {
        auto it = seqs_.find(s);
        return it == seqs_.end() ? 0 : it->second.size();
    }

private:
    std::deque<session_id> order_;
    // A session rarely has more than one job queued: erasing a vector's front is O(1) then, and
    // it allocates far less than a deque per session.
    std::unordered_map<session_id, std::vector<std::uint64_t>> seqs_;
    std::uint64_t next_seq_ = 0, head_seq_ = 0;
};

/// @brief Which sessions have a queued job, and how far ahead (distance 0 is the next job).
/// Policies never mutate the queue. A default-constructed view is an empty queue (no scheduler).
class queue_view {
public:
    queue_view() = default;
    explicit queue_view(const job_order& q) noexcept : q_(&q) {}

    std::size_t size() const noexcept { return q_ ? q_->size() : 0; }
    bool empty() const noexcept { return size() == 0; }
    session_id at(std::size_t distance) const { return q_->at(distance); }
    std::optional<std::size_t> distance(session_id s) const { return q_ ? q_->distance(s) : std::nullopt; }
    /// True when `s` has a job fewer than `window` jobs ahead.
    bool within(session_id s, std::size_t window) const {
        const auto d = distance(s);
        return d && *d < window;
    }

private:
    const job_order* q_ = nullptr;
};

}  // namespace cachedattn
