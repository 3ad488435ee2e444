#pragma once
/// @file
/// @brief The read-only look at the job queue that scheduler-aware policies get.
#include <cstddef>
#include <optional>
#include <span>
#include <unordered_map>

#include "cachedattn/core/session.hpp"

namespace cachedattn {

/// @brief Which sessions have a queued job, and how far ahead. Distance 0 is the next job.
/// Policies never mutate the queue; the engine rebuilds the view when the queue changes.
class queue_view {
public:
    queue_view() = default;
    /// @param order sessions of queued jobs, next first (a session may appear several times)
    /// @param first_index distance of each session's first queued job; must outlive the view
    queue_view(std::span<const session_id> order,
               const std::unordered_map<session_id, std::size_t>* first_index) noexcept
        : order_(order), first_(first_index) {}

    std::size_t size() const noexcept { return order_.size(); }
    bool empty() const noexcept { return order_.empty(); }
    session_id at(std::size_t distance) const { return order_[distance]; }
    std::span<const session_id> order() const noexcept { return order_; }

    /// Distance of the session's next queued job, or nullopt when it has none.
    std::optional<std::size_t> distance(session_id s) const {
        if (first_ == nullptr) return std::nullopt;
        auto it = first_->find(s);
        if (it == first_->end()) return std::nullopt;
        return it->second;
    }

private:
    std::span<const session_id> order_{};
    const std::unordered_map<session_id, std::size_t>* first_ = nullptr;
};

}  // namespace cachedattn
