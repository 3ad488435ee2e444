#pragma once
/// @file
/// @brief Session and token identifiers.
#include <compare>
#include <cstdint>
#include <functional>

namespace cachedattn {

/// @brief Token id in the model's vocabulary.
using token_id = std::int32_t;

/// @brief A conversation. The unit of caching and eviction is the whole session (paper §3).
struct session_id {
    std::uint64_t value = 0;
    friend constexpr auto operator<=>(session_id, session_id) = default;
};

}  // namespace cachedattn

template <>
struct std::hash<cachedattn::session_id> {
    std::size_t operator()(cachedattn::session_id s) const noexcept {
        // splitmix64 finaliser: sequential ids spread over buckets.
        std::uint64_t z = s.value + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return static_cast<std::size_t>(z ^ (z >> 31));
    }
};
