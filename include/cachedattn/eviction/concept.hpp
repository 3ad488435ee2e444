#pragma once
/// @file
/// @brief The eviction policy concept: which session leaves a tier when room is needed.
///
/// Contract. The hierarchy holds one policy instance per tier and tells it about every session
/// that enters (`on_insert`), is used (`on_access`) or leaves (`on_erase`) that tier, in that
/// tier's order of events. Each hook gets an `event`: the session's size in this tier, the
/// tier's index and the engine clock (and, on leaving, why), so size- and time-aware policies
/// need nothing injected. The hierarchy's directory already says where the session is when a
/// hook runs. `victim(ctx)` is a const query ("choose"): it names the session the policy would
/// evict next, skipping `ctx.excluded` (sessions pinned by the running turn or already chosen by
/// the plan being built), or nullopt when nothing may go. The hierarchy then decides where the
/// victim goes (next tier down, or dropped) and applies the move; a policy never moves bytes
/// itself. Run-time knobs live in `P::config`.
///
/// Each hook may take the event or not: `on_insert(s, const event&)`, `on_insert(s, double now)`
/// or `on_insert(s)` (likewise on_access; on_erase takes a `leave_event`). Optional members
/// (see `eviction_traits`): `expired(now)` for policies that retire sessions without pressure,
/// and `admit(incoming, victim, ctx)` for policies that would rather send a session coming down
/// further (or drop it) than displace the one they hold.
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

/// @brief What the hierarchy tells a policy with each event of its tier.
struct event {
    std::size_t bytes = 0;  ///< bytes the session takes in this tier now (0: a miss not computed yet)
    std::size_t tier = 0;   ///< the tier this policy instance watches (0 = device)
    double now = 0;         ///< engine clock, seconds
};

/// @brief Why a session left a tier.
enum class leave_reason {
    demoted,   ///< chosen as a victim, moved one or more tiers down
    promoted,  ///< moved up (its turn, or the prefetcher)
    dropped,   ///< gone from the hierarchy (a victim with nowhere to go, or dropped by the engine)
    expired,   ///< retired by the policy's own expiry (TTL)
};

/// @brief A session leaving a tier: the event (its size there until now) and the reason.
struct leave_event : event {
    leave_reason why = leave_reason::dropped;
};

namespace detail {
template <class P, class E>
concept hook_insert = requires(P& p, session_id s, const E& e) { p.on_insert(s, e); } ||
                      requires(P& p, session_id s, double now) { p.on_insert(s, now); } ||
                      requires(P& p, session_id s) { p.on_insert(s); };
template <class P, class E>
concept hook_access = requires(P& p, session_id s, const E& e) { p.on_access(s, e); } ||
                      requires(P& p, session_id s, double now) { p.on_access(s, now); } ||
                      requires(P& p, session_id s) { p.on_access(s); };
template <class P, class E>
concept hook_erase = requires(P& p, session_id s, const E& e) { p.on_erase(s, e); } ||
                     requires(P& p, session_id s) { p.on_erase(s); };
}  // namespace detail

/// @brief A type that decides eviction order for one tier.
template <class P>
concept eviction_policy =
    requires { typename P::config; } && std::constructible_from<P, const typename P::config&> &&
    detail::hook_insert<P, event> &&       // pre: s not tracked. post: s tracked
    detail::hook_access<P, event> &&       // pre: s tracked
    detail::hook_erase<P, leave_event> &&  // pre: s tracked. post: s not tracked
    requires(const P& cp, const context& ctx) {
        { P::name } -> std::convertible_to<std::string_view>;
        { cp.victim(ctx) } -> std::same_as<std::optional<session_id>>;
        { cp.size() } -> std::same_as<std::size_t>;
    };

/// @brief Calls each hook in the richest form a policy declares, and fills in the optional members.
template <eviction_policy P>
struct eviction_traits {
    /// s entered the tier. Pre: s not tracked. Post: s tracked.
    static void on_insert(P& p, session_id s, const event& e) {
        if constexpr (requires { p.on_insert(s, e); }) p.on_insert(s, e);
        else if constexpr (requires { p.on_insert(s, e.now); }) p.on_insert(s, e.now);
        else p.on_insert(s);
    }
    /// s was used (its size may have changed). Pre: s tracked.
    static void on_access(P& p, session_id s, const event& e) {
        if constexpr (requires { p.on_access(s, e); }) p.on_access(s, e);
        else if constexpr (requires { p.on_access(s, e.now); }) p.on_access(s, e.now);
        else p.on_access(s);
    }
    /// s left the tier. Pre: s tracked. Post: s not tracked.
    static void on_erase(P& p, session_id s, const leave_event& e) {
        if constexpr (requires { p.on_erase(s, e); }) p.on_erase(s, e);
        else p.on_erase(s);
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
