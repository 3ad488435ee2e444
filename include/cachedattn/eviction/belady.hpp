#pragma once
/// @file
/// @brief Belady's MIN, the offline optimum for unit-size items: evict the session whose next
/// use is farthest in the future, or never used again. It needs the future, from one of two
/// places: a `next_use_table` that a trace-driven run keeps (sim::replay with
/// replay_options::oracle; give the same table to config::oracle), or else the queue view,
/// which is the future when the whole remaining trace is queued. The upper bound every online
/// policy is compared with.
#include "cachedattn/core/next_use.hpp"
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/timed_recency.hpp"

namespace cachedattn::eviction {

class belady {
public:
    struct config {
        const next_use_table* oracle = nullptr;  ///< the future; nullptr: the queue is the future
    };
    static constexpr std::string_view name = "belady";

    belady() = default;
    explicit belady(const config& c) : oracle_(c.oracle) {}

    void on_insert(session_id s) { list_.push_back(s); }
    void on_access(session_id s) { list_.move_to_back(s); }
    void on_erase(session_id s) { list_.erase(s); }

    /// Never used again first (least recently used among them), else the farthest next use.
    /// Cost: the sessions skipped are queued ones, so O(queue) at worst.
    std::optional<session_id> victim(const context& ctx) const {
        if (oracle_) return farthest(ctx);
        std::optional<session_id> out;
        list_.visit([&](session_id s) {
            if (ctx.is_excluded(s) || ctx.queue.distance(s)) return true;
            out = s;
            return false;
        });
        if (out) return out;
        // Every tracked session is queued: the farthest first use.
        return detail::latest_queued(ctx, ctx.queue.size(), list_);
    }
    std::size_t size() const noexcept { return list_.size(); }

    /// Drop the session coming down rather than `victim` when the victim's job comes first.
    bool admit(session_id incoming, session_id victim, const context& ctx) const {
        if (oracle_) return oracle_->at(incoming) <= oracle_->at(victim);
        const auto never = static_cast<std::size_t>(-1);
        return ctx.queue.distance(incoming).value_or(never) <= ctx.queue.distance(victim).value_or(never);
    }

private:
    /// With an oracle: the farthest next use (never first), least recently used among equals. O(tracked).
    std::optional<session_id> farthest(const context& ctx) const {
        std::optional<session_id> out;
        double far = -1;
        list_.visit([&](session_id s) {
            if (ctx.is_excluded(s)) return true;
            const double t = oracle_->at(s);
            if (t > far) {
                far = t;
                out = s;
            }
            return t != next_use_table::never;  // nothing is farther than never
        });
        return out;
    }

    const next_use_table* oracle_ = nullptr;
    detail::recency_list list_;
};
static_assert(eviction_policy<belady>);

}  // namespace cachedattn::eviction
