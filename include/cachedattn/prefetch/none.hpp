#pragma once
/// @file
/// @brief No prefetching: a session's KV moves up only when its own turn runs (the engine then
/// loads it into the device tier). The reference point for every look-ahead policy.
#include "cachedattn/prefetch/concept.hpp"

namespace cachedattn::prefetch {

class none {
public:
    struct config {};
    static constexpr std::string_view name = "none";

    none() = default;
    explicit none(const config&) {}

    prefetch_plan plan(const queue_view&, const residency_view&) const { return {}; }
};
static_assert(prefetch_policy<none>);

}  // namespace cachedattn::prefetch
