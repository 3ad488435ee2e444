#pragma once
/// @file
/// @brief Read-only facts about the hierarchy for policies that plan: which tier holds a
/// session, and each tier's capacity and use (what look-ahead windows are sized from).
#include <array>
#include <cstddef>
#include <optional>
#include <unordered_map>

#include "cachedattn/core/session.hpp"

namespace cachedattn {

inline constexpr std::size_t max_tiers = 8;

/// @brief Bytes and sessions per tier, taken when a policy is consulted.
struct tier_usage {
    std::size_t tiers = 0;
    std::array<std::size_t, max_tiers> capacity{}, used{}, sessions{};

    std::size_t free(std::size_t i) const noexcept { return capacity[i] - used[i]; }
    /// Mean stored bytes of one session over all tiers (the paper's S_avg); 0 when empty.
    std::size_t mean_session_bytes() const noexcept {
        std::size_t bytes = 0, n = 0;
        for (std::size_t i = 0; i < tiers; ++i) {
            bytes += used[i];
            n += sessions[i];
        }
        return n == 0 ? 0 : bytes / n;
    }
    /// Capacity of tiers [first, tiers): e.g. DRAM + SSD with first = 1.
    std::size_t capacity_from(std::size_t first) const noexcept {
        std::size_t c = 0;
        for (std::size_t i = first; i < tiers; ++i) c += capacity[i];
        return c;
    }
};

/// @brief Tier index (0 = device, the fastest) of each stored session, plus tier usage.
class residency_view {
public:
    using directory = std::unordered_map<session_id, std::size_t>;
    residency_view() = default;
    residency_view(const directory* d, const tier_usage& u) noexcept : dir_(d), usage_(u) {}

    std::optional<std::size_t> tier_of(session_id s) const {
        if (dir_ == nullptr) return std::nullopt;
        auto it = dir_->find(s);
        if (it == dir_->end()) return std::nullopt;
        return it->second;
    }
    std::size_t tier_count() const noexcept { return usage_.tiers; }
    std::size_t sessions() const noexcept { return dir_ ? dir_->size() : 0; }
    const tier_usage& usage() const noexcept { return usage_; }

private:
    const directory* dir_ = nullptr;
    tier_usage usage_{};
};

}  // namespace cachedattn
