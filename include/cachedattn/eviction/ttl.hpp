#pragma once
/// @file
/// @brief Time-to-live retention (Continuum): a session is kept in the tier for `ttl_s`
/// seconds after its last use, across pauses (tool calls, think time), and released when its
/// TTL runs out: `expired(now)` names it and the hierarchy moves it one tier down (dropped from
/// the last tier), with or without memory pressure. Under pressure the victim is the session
/// whose TTL runs out first, i.e. the least recently used: with one TTL for all sessions the
/// two orders coincide.
#include <vector>

#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/timed_recency.hpp"

namespace cachedattn::eviction {

class ttl {
public:
    struct config {
        double ttl_s = 60.0;  ///< retention after the last use, in engine seconds
    };
    static constexpr std::string_view name = "ttl";
    static constexpr bool expiry_demotes = true;  ///< released sessions go one tier down

    ttl() = default;
    explicit ttl(const config& c) : cfg_(c) {}

    void on_insert(session_id s) { on_insert(s, 0.0); }
    void on_insert(session_id s, double now) { sessions_.insert(s, now); }
    void on_access(session_id s) { on_access(s, 0.0); }
    void on_access(session_id s, double now) { sessions_.touch(s, now); }
    void on_erase(session_id s) { sessions_.erase(s); }
    std::optional<session_id> victim(const context& ctx) const { return sessions_.order().first(ctx); }
    std::size_t size() const noexcept { return sessions_.size(); }

    /// Sessions unused for at least ttl_s at `now`, oldest first.
    std::vector<session_id> expired(double now) const { return sessions_.idle_for(cfg_.ttl_s, now); }

private:
    config cfg_{};
    detail::timed_recency sessions_;
};
static_assert(eviction_policy<ttl>);

}  // namespace cachedattn::eviction
