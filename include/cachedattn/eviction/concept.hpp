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
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/core/session.hpp"

namespace cachedattn::eviction {

/// @brief What a policy may look at when choosing a victim.
struct context {
    const queue_view& queue;                   ///< the job queue (empty without a scheduler)
    std::span<const session_id> excluded{};    ///< never return one of these

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

}  // namespace cachedattn::eviction
