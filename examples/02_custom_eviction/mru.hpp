#pragma once
/// @file
/// @brief Most-recently-used eviction, written as the tutorial in docs/design.md shows: the
/// session whose turn just ended leaves first. A bad idea for chat (the paper's look-ahead says
/// the opposite) but a clear example of a policy in one header.
#include <list>
#include <optional>
#include <unordered_map>

#include <cachedattn/eviction/concept.hpp>

namespace my_policies {

class mru {
public:
    struct config {};                            // run-time knobs (none here)
    static constexpr std::string_view name = "mru";

    mru() = default;
    explicit mru(const config&) {}

    // The hierarchy reports every event of the tier this instance watches.
    void on_insert(cachedattn::session_id s) {
        order_.push_front(s);
        where_[s] = order_.begin();
    }
    void on_access(cachedattn::session_id s) {
        order_.splice(order_.begin(), order_, where_.at(s));
    }
    void on_erase(cachedattn::session_id s) {
        order_.erase(where_.at(s));
        where_.erase(s);
    }

    // Choose, don't act: name the victim, skipping pinned or already-chosen sessions.
    std::optional<cachedattn::session_id> victim(const cachedattn::eviction::context& ctx) const {
        for (cachedattn::session_id s : order_)
            if (!ctx.is_excluded(s)) return s;
        return std::nullopt;
    }
    std::size_t size() const noexcept { return order_.size(); }

private:
    std::list<cachedattn::session_id> order_;  // most recent first
    std::unordered_map<cachedattn::session_id, std::list<cachedattn::session_id>::iterator> where_;
};
static_assert(cachedattn::eviction::eviction_policy<mru>);

}  // namespace my_policies
