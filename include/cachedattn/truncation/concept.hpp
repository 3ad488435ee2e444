#pragma once
/// @file
/// @brief The truncation policy concept: what is kept when a conversation overflows the
/// context window.
///
/// Contract. When `history + needed > window` (needed = the turn's new tokens plus its maximum
/// output), the engine asks `decide(history, needed, window)` and drops `drop_tokens` tokens of
/// the history starting after its first `keep_front` tokens (0: the oldest go), where
/// `history + needed - window <= drop_tokens <= history - keep_front`. With `reuse_cache` the stored KV of the kept tokens is reused if the positional
/// encoding policy can re-base it; otherwise the kept history is recomputed. `decide` is only
/// called on overflow and only with `needed <= window` (the engine rejects longer turns).
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "cachedattn/core/error.hpp"

namespace cachedattn::truncation {

struct decision {
    std::int64_t drop_tokens = 0;  ///< history tokens to drop
    bool reuse_cache = true;       ///< keep the stored KV of the kept tokens
    std::int64_t keep_front = 0;   ///< tokens kept before the dropped range (attention sinks)
};

template <class P>
concept truncation_policy =
    requires { typename P::config; } && std::constructible_from<P, const typename P::config&> &&
    requires(const P& cp, std::int64_t history, std::int64_t needed, std::int64_t window) {
        { P::name } -> std::convertible_to<std::string_view>;
        { cp.decide(history, needed, window) } -> std::same_as<decision>;
    };

namespace detail {
/// Validates a drop ratio for the policy called `policy`.
inline double checked_ratio(double ratio, std::string_view policy) {
    if (!(ratio > 0.0 && ratio <= 1.0))
        throw config_error("truncation::" + std::string(policy) + ": ratio must be in (0, 1], got " +
                           std::to_string(ratio));
    return ratio;
}

/// Drop `ratio` of the history, but at least enough to fit, at most all of it.
inline std::int64_t drop_count(double ratio, std::int64_t history, std::int64_t needed,
                               std::int64_t window) {
    const auto by_ratio = static_cast<std::int64_t>(static_cast<double>(history) * ratio + 0.999999);
    const std::int64_t to_fit = history + needed - window;
    std::int64_t d = by_ratio > to_fit ? by_ratio : to_fit;
    return d < 0 ? 0 : (d > history ? history : d);
}
}  // namespace detail

}  // namespace cachedattn::truncation
