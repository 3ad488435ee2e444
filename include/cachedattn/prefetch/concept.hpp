#pragma once
/// @file
/// @brief The prefetch policy concept: which sessions move up the hierarchy before their turn.
///
/// Contract. Before each scheduling step the hierarchy calls `plan(queue, residency)`, a const
/// query, and gets a `prefetch_plan`: sessions to bring up to `target_tier` (usually DRAM),
/// nearest job first. The hierarchy applies the plan only while the target tier has free room
/// (a prefetch never evicts a session another job needs sooner); a session already at or above
/// the target tier is skipped. Loading a session into the device tier when its turn runs is the
/// engine's job, not the prefetcher's.
#include <concepts>
#include <cstddef>
#include <string_view>
#include <vector>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/core/residency_view.hpp"

namespace cachedattn::prefetch {

/// @brief Sessions to promote, in the order to promote them.
struct prefetch_plan {
    std::size_t target_tier = 1;
    std::vector<session_id> sessions;
};

template <class P>
concept prefetch_policy =
    requires { typename P::config; } && std::constructible_from<P, const typename P::config&> &&
    requires(const P& cp, const queue_view& q, const residency_view& r) {
        { P::name } -> std::convertible_to<std::string_view>;
        { cp.plan(q, r) } -> std::same_as<prefetch_plan>;
    };

}  // namespace cachedattn::prefetch
