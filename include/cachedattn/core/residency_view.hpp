#pragma once
/// @file
/// @brief A read-only answer to "which tier holds this session?" for policies that plan moves.
#include <cstddef>
#include <optional>
#include <unordered_map>

#include "cachedattn/core/session.hpp"

namespace cachedattn {

/// @brief Tier index (0 = device, the fastest) of each stored session. Owned by the hierarchy.
class residency_view {
public:
    using directory = std::unordered_map<session_id, std::size_t>;
    residency_view() = default;
    residency_view(const directory* d, std::size_t tier_count) noexcept : dir_(d), tiers_(tier_count) {}

    std::optional<std::size_t> tier_of(session_id s) const {
        if (dir_ == nullptr) return std::nullopt;
        auto it = dir_->find(s);
        if (it == dir_->end()) return std::nullopt;
        return it->second;
    }
    std::size_t tier_count() const noexcept { return tiers_; }
    std::size_t sessions() const noexcept { return dir_ ? dir_->size() : 0; }

private:
    const directory* dir_ = nullptr;
    std::size_t tiers_ = 0;
};

}  // namespace cachedattn
