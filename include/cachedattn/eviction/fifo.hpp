#pragma once
/// @file
/// @brief First-in-first-out eviction: the session that entered the tier first leaves first,
/// whatever its use since. The paper's weakest baseline (48% hit rate, §5.3).
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/recency_list.hpp"

namespace cachedattn::eviction {

class fifo {
public:
    struct config {};
    static constexpr std::string_view name = "fifo";

    fifo() = default;
    explicit fifo(const config&) {}

    void on_insert(session_id s) { list_.push_back(s); }
    void on_access(session_id) {}  // use does not change the order: that is FIFO
    void on_erase(session_id s) { list_.erase(s); }
    std::optional<session_id> victim(const context& ctx) const { return list_.first(ctx); }
    std::size_t size() const noexcept { return list_.size(); }

private:
    detail::recency_list list_;
};
static_assert(eviction_policy<fifo>);

}  // namespace cachedattn::eviction
