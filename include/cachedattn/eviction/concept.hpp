#pragma once
/// @file
/// @brief The eviction policy concept: which session leaves a tier when room is needed.
///
/// Contract. The hierarchy holds one policy instance per tier and tells it about every session
/// that enters (`on_insert`), is used (`on_access`) or leaves (`on_erase`) that tier, in that
/// tier's order of events. `victim(ctx)` is a const query ("choose"): it names the session the
/// policy would evict next, skipping `ctx.excluded` (sessions pinned by the running turn or
/// already chosen by the plan being built), or nullopt when nothing may go. The hierarchy then
/// decides where the victim goes (next tier down, or dropped) and applies the move; a policy
/// never moves bytes itself. Run-time knobs live in `P::config`.
///
/// Optional hooks (see `eviction_traits`): `on_insert(s, now)` / `on_access(s, now)` for
/// policies that need the engine clock (TTL), `expired(now)` for policies that retire
/// sessions without pressure, and `admit(incoming, victim, ctx)` for policies that would rather send
/// a session coming down further (or drop it) than displace the one they hold.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/core/residency_view.hpp"
#include "cachedattn/core/session.hpp"

namespace cachedattn::eviction {

/// @brief What a policy may look at when choosing a victim.
struct context {
    const queue_view& queue;                 ///< the job queue (empty without a scheduler)
    std::span<const session_id> excluded{};  ///< never return one of these
    double now = 0;                          ///< engine clock, seconds
    tier_usage usage{};                      ///< capacity and use of every tier

    bool is_excluded(session_id s) const noexcept {
        return std::find(excluded.begin(), excluded.end(), s) != excluded.end();
    }
};

/// @brief A type that decides eviction order for one tier.
template <class P>
concept eviction_policy =
    requires { typename P::config; } && std::constructible_from<P, const typename P::config&> &&
    requires(P& p, const P& cp, session_id s, const context& ctx) {
        { P::name } -> std::convertible_to<std::string_view>;
        p.on_insert(s);  // pre: s not tracked. post: s tracked
        p.on_access(s);  // pre: s tracked
        p.on_erase(s);   // pre: s tracked. post: s not tracked
        { cp.victim(ctx) } -> std::same_as<std::optional<session_id>>;
        { cp.size() } -> std::same_as<std::size_t>;
    };

/// @brief Fills in the optional hooks of an eviction policy.
template <eviction_policy P>
struct eviction_traits {
    /// s entered the tier at time `now`. Pre/post as `on_insert(s)`.
    static void on_insert(P& p, session_id s, double now) {
        if constexpr (requires { p.on_insert(s, now); }) p.on_insert(s, now);
        else p.on_insert(s);
    }
    /// s was used at time `now`. Pre: s tracked.
    static void on_access(P& p, session_id s, double now) {
        if constexpr (requires { p.on_access(s, now); }) p.on_access(s, now);
        else p.on_access(s);
    }
    /// Sessions to retire at time `now` whatever the pressure (default: none). Const query;
    /// the hierarchy moves them out and reports each through on_erase.
    static std::vector<session_id> expired(const P& p, double now) {
        if constexpr (requires { { p.expired(now) } -> std::same_as<std::vector<session_id>>; }) return p.expired(now);
        else return {};
    }
    /// Whether `incoming` (coming down from a faster tier) may displace `victim` from this tier
    /// (default: yes). Queue-aware policies refuse when the incoming session's next job is later
    /// than the victim's: the hierarchy then tries the next tier down, and drops it last.
    static bool admit(const P& p, session_id incoming, session_id victim, const context& ctx) {
        if constexpr (requires { { p.admit(incoming, victim, ctx) } -> std::same_as<bool>; })
            return p.admit(incoming, victim, ctx);
        else return true;
    }
    /// Whether retired sessions move one tier down (`P::expiry_demotes`) or leave the
    /// hierarchy (default).
    static constexpr bool expiry_demotes() {
        if constexpr (requires { { P::expiry_demotes } -> std::convertible_to<bool>; }) return P::expiry_demotes;
        else return false;
    }
};

}  // namespace cachedattn::eviction
