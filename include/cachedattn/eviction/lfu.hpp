#pragma once
/// @file
/// @brief Least-frequently-used eviction: the session with the fewest uses in this tier leaves
/// first; ties go to the least recently used. O(log n) per event and per decision.
#include <set>
#include <tuple>
#include <unordered_map>

#include "cachedattn/eviction/concept.hpp"

namespace cachedattn::eviction {

class lfu {
public:
    struct config {};
    static constexpr std::string_view name = "lfu";

    lfu() = default;
    explicit lfu(const config&) {}

    void on_insert(session_id s) { put(s, 1); }
    void on_access(session_id s) {
        auto it = key_.find(s);
        if (it == key_.end()) return;
        const std::uint64_t f = std::get<0>(it->second) + 1;
        order_.erase(it->second);
        key_.erase(it);
        put(s, f);
    }
    void on_erase(session_id s) {
        auto it = key_.find(s);
        if (it == key_.end()) return;
        order_.erase(it->second);
        key_.erase(it);
    }
    std::optional<session_id> victim(const context& ctx) const {
        for (const auto& k : order_)
            if (!ctx.is_excluded(std::get<2>(k))) return std::get<2>(k);
        return std::nullopt;
    }
    std::size_t size() const noexcept { return key_.size(); }
    /// Uses counted for s in this tier (0 when untracked).
    std::uint64_t frequency(session_id s) const {
        auto it = key_.find(s);
        return it == key_.end() ? 0 : std::get<0>(it->second);
    }

private:
    using key = std::tuple<std::uint64_t, std::uint64_t, session_id>;  // (uses, recency, session)
    void put(session_id s, std::uint64_t f) {
        const key k{f, ++clock_, s};
        order_.insert(k);
        key_.emplace(s, k);
    }
    std::set<key> order_;
    std::unordered_map<session_id, key> key_;
    std::uint64_t clock_ = 0;
};
static_assert(eviction_policy<lfu>);

}  // namespace cachedattn::eviction
