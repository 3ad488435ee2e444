#pragma once
/// @file
/// @brief Sessions in last-use order with their last-use times: the storage under the policies
/// that retire idle sessions after a time-to-live (ttl, scheduler_aware).
#include <unordered_map>
#include <vector>

#include "cachedattn/eviction/detail/recency_list.hpp"

namespace cachedattn::eviction::detail {

class timed_recency {
public:
    void insert(session_id s, double now) {
        list_.push_back(s);
        last_[s] = now;
    }
    void touch(session_id s, double now) {
        list_.move_to_back(s);
        last_[s] = now;
    }
    void erase(session_id s) {
        list_.erase(s);
        last_.erase(s);
    }
    /// Sessions unused for at least `ttl` at `now`, oldest first (none when ttl <= 0).
    std::vector<session_id> idle_for(double ttl, double now) const {
        std::vector<session_id> out;
        if (ttl <= 0) return out;
        list_.visit([&](session_id s) {
            if (now - last_.at(s) < ttl) return false;  // last-use order: the rest are newer
            out.push_back(s);
            return true;
        });
        return out;
    }
    const recency_list& order() const noexcept { return list_; }
    std::size_t size() const noexcept { return list_.size(); }

private:
    recency_list list_;  // last-use order, oldest first
    std::unordered_map<session_id, double> last_;
};

/// The tracked, non-excluded session whose next queued job is latest among the first `end`
/// queued jobs, or nullopt. O(min(end, tracked)): a long queue is scanned from its end only
/// when it is shorter than the list of tracked sessions (an HBM tier tracks a few dozen
/// sessions while thousands of jobs wait).
template <class Tracked>
std::optional<session_id> latest_queued(const context& ctx, std::size_t end, const Tracked& tracked) {
    end = end < ctx.queue.size() ? end : ctx.queue.size();
    if (tracked.size() < end) {
        std::optional<session_id> best;
        std::size_t best_d = 0;
        tracked.visit([&](session_id s) {
            const auto d = ctx.queue.distance(s);
            if (d && *d < end && (!best || *d > best_d) && !ctx.is_excluded(s)) {
                best = s;
                best_d = *d;
            }
            return true;
        });
        return best;
    }
    for (std::size_t p = end; p-- > 0;) {
        const session_id s = ctx.queue.at(p);
        if (ctx.queue.distance(s) == p && tracked.contains(s) && !ctx.is_excluded(s)) return s;
    }
    return std::nullopt;
}

}  // namespace cachedattn::eviction::detail
