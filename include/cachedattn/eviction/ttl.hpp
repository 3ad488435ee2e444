#pragma once
/// @file
/// @brief Time-to-live retention (Continuum): a session is kept in the tier for `ttl_s`
/// seconds after its last use, across pauses (tool calls, think time), and released when its
/// TTL runs out: `expired(now)` names it and the hierarchy moves it one tier down (dropped from
/// the last tier), with or without memory pressure. Under pressure the victim is the session
/// whose TTL runs out first, i.e. the least recently used: with one TTL for all sessions the
/// two orders coincide.
#include <unordered_map>
#include <vector>

#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/recency_list.hpp"

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
    void on_insert(session_id s, double now) {
        list_.push_back(s);
        last_[s] = now;
    }
    void on_access(session_id s) { on_access(s, 0.0); }
    void on_access(session_id s, double now) {
        list_.move_to_back(s);
        last_[s] = now;
    }
    void on_erase(session_id s) {
        list_.erase(s);
        last_.erase(s);
    }
    std::optional<session_id> victim(const context& ctx) const { return list_.first(ctx); }
    std::size_t size() const noexcept { return list_.size(); }

    /// Sessions unused for at least ttl_s at `now`, oldest first.
    std::vector<session_id> expired(double now) const {
        std::vector<session_id> out;
        list_.visit([&](session_id s) {
            if (now - last_.at(s) < cfg_.ttl_s) return false;  // last-use order: the rest are newer
            out.push_back(s);
            return true;
        });
        return out;
    }

private:
    config cfg_{};
    detail::recency_list list_;  // last-use order, oldest first
    std::unordered_map<session_id, double> last_;
};
static_assert(eviction_policy<ttl>);

}  // namespace cachedattn::eviction
