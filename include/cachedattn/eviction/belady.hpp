#pragma once
/// @file
/// @brief Belady's MIN, the offline optimum for unit-size items: evict the session whose next
/// use is farthest in the future, or never used again. It needs the future: the engine must
/// hold the whole remaining trace in its queue (the sim backend's oracle mode), and the queue
/// view then is the future. The upper bound every online policy is compared with.
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/timed_recency.hpp"

namespace cachedattn::eviction {

class belady {
public:
    struct config {};
    static constexpr std::string_view name = "belady";

    belady() = default;
    explicit belady(const config&) {}

    void on_insert(session_id s) { list_.push_back(s); }
    void on_access(session_id s) { list_.move_to_back(s); }
    void on_erase(session_id s) { list_.erase(s); }

    /// Never used again first (least recently used among them), else the farthest next use.
    /// Cost: the sessions skipped are queued ones, so O(queue) at worst.
    std::optional<session_id> victim(const context& ctx) const {
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
        const auto never = static_cast<std::size_t>(-1);
        return ctx.queue.distance(incoming).value_or(never) <= ctx.queue.distance(victim).value_or(never);
    }

private:
    detail::recency_list list_;
};
static_assert(eviction_policy<belady>);

}  // namespace cachedattn::eviction
