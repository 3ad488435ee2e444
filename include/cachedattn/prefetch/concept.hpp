#pragma once
/// @file
/// @brief The prefetch policy concept: which sessions move up the hierarchy before their turn.
///
/// Contract. Before each scheduling step the hierarchy calls `plan(queue, residency)`, a const
/// query, and gets a `prefetch_plan`: sessions to bring up to `target_tier` (usually DRAM),
/// nearest job first. For each, the hierarchy makes room for it plus `reserve_bytes` (a fetch
/// buffer kept free) in the target tier through that tier's eviction policy, never evicting a
/// session whose job comes no later than the fetched one's, and stops at the first session it
/// cannot place. Sessions already at or above the target tier are skipped. Loading a session into the device tier when its turn runs is the
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
    std::size_t reserve_bytes = 0;  ///< keep this much of the target tier free after each fetch
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
