#pragma once
/// @file
/// @brief `tiers<Device, Host, File>`: the ordered list of storage tiers, fastest first.
#include <cstddef>
#include <tuple>

namespace cachedattn {

/// @brief Tier types in order of speed: `tiers<device_tier, host_tier, file_tier>`. The first
/// must model `tier::device_tier_like` (the model computes in it).
template <class... T>
struct tiers {
    static constexpr std::size_t size = sizeof...(T);
    using tuple = std::tuple<T...>;
    using configs = std::tuple<typename T::config...>;
};

}  // namespace cachedattn
