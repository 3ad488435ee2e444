#pragma once
/// @file
/// @brief Least-recently-used eviction: the session whose last turn is oldest leaves first.
/// The paper's main baseline (58% hit rate at 128 GB DRAM / 10 TB SSD for LLaMA-13B, §5.3).
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/recency_list.hpp"

namespace cachedattn::eviction {

class lru {
public:
    struct config {};
    static constexpr std::string_view name = "lru";

    lru() = default;
    explicit lru(const config&) {}

    void on_insert(session_id s) { list_.push_back(s); }
    void on_access(session_id s) { list_.move_to_back(s); }
    void on_erase(session_id s) { list_.erase(s); }
    std::optional<session_id> victim(const context& ctx) const { return list_.first(ctx); }
    std::size_t size() const noexcept { return list_.size(); }

private:
    detail::recency_list list_;
};
static_assert(eviction_policy<lru>);

}  // namespace cachedattn::eviction
