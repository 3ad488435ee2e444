#pragma once
/// @file
/// @brief CachedAttention's scheduler-aware eviction (§3.4): the job queue is a look-ahead
/// oracle. The eviction window is `L_ew = (C_dram + C_ssd) / S_avg` jobs (tiers below the device
/// tier over the mean session KV size). A session with a job inside the window is never chosen
/// while a session outside it can go; among those outside, the least recently used goes first.
/// When only in-window sessions are left, the one needed *latest* goes: from DRAM that means it
/// moves to SSD first; from the last tier it is dropped. An optional time-to-live retires
/// sessions unused for `ttl_s` seconds (1 hour in the paper's capacity study).
#include <vector>

#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/timed_recency.hpp"

namespace cachedattn::eviction {

class scheduler_aware {
public:
    struct config {
        std::size_t window_jobs = 0;  ///< 0: derive L_ew from capacities and the mean session size
        double ttl_s = 0;             ///< 0: no time-to-live
    };
    static constexpr std::string_view name = "scheduler_aware";

    scheduler_aware() = default;
    explicit scheduler_aware(const config& c) : cfg_(c) {}

    void on_insert(session_id s) { on_insert(s, 0.0); }
    void on_insert(session_id s, double now) { sessions_.insert(s, now); }
    void on_access(session_id s) { on_access(s, 0.0); }
    void on_access(session_id s, double now) { sessions_.touch(s, now); }
    void on_erase(session_id s) { sessions_.erase(s); }

    /// The eviction window in jobs for the hierarchy's current state.
    std::size_t window(const context& ctx) const {
        if (cfg_.window_jobs) return cfg_.window_jobs;
        const std::size_t avg = ctx.usage.mean_session_bytes();
        const std::size_t below = ctx.usage.tiers > 1 ? ctx.usage.capacity_from(1) : ctx.usage.capacity[0];
        return avg == 0 ? ctx.queue.size() : below / avg;
    }

    std::optional<session_id> victim(const context& ctx) const {
        const std::size_t w = window(ctx);
        std::optional<session_id> out;
        // Outside the window, least recently used first. Skips at most the in-window sessions.
        sessions_.order().visit([&](session_id s) {
            if (ctx.is_excluded(s) || ctx.queue.within(s, w)) return true;
            out = s;
            return false;
        });
        if (out) return out;
        // Only in-window sessions left: the one whose next job is latest.
        return detail::latest_queued(ctx, w, sessions_.order());
    }
    std::size_t size() const noexcept { return sessions_.size(); }

    /// Drop the session coming down rather than `victim` when the victim's job comes first.
    bool admit(session_id incoming, session_id victim, const context& ctx) const {
        const auto never = static_cast<std::size_t>(-1);
        return ctx.queue.distance(incoming).value_or(never) <= ctx.queue.distance(victim).value_or(never);
    }

    /// Sessions unused for ttl_s (none without a TTL), oldest first.
    std::vector<session_id> expired(double now) const { return sessions_.idle_for(cfg_.ttl_s, now); }

private:
    config cfg_{};
    detail::timed_recency sessions_;
};
static_assert(eviction_policy<scheduler_aware>);

}  // namespace cachedattn::eviction
