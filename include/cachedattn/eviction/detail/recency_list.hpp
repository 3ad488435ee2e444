#pragma once
/// @file
/// @brief An ordered set of sessions with O(1) insert-at-back, move-to-back and erase; the
/// storage under LRU and FIFO.
#include <list>
#include <optional>
#include <unordered_map>

#include "cachedattn/eviction/concept.hpp"

namespace cachedattn::eviction::detail {

class recency_list {
public:
    void push_back(session_id s) {
        order_.push_back(s);
        where_.emplace(s, std::prev(order_.end()));
    }
    void move_to_back(session_id s) {
        auto it = where_.find(s);
        if (it != where_.end()) order_.splice(order_.end(), order_, it->second);
    }
    void erase(session_id s) {
        auto it = where_.find(s);
        if (it == where_.end()) return;
        order_.erase(it->second);
        where_.erase(it);
    }
    /// The frontmost session not excluded by `ctx`.
    std::optional<session_id> first(const context& ctx) const {
        for (session_id s : order_)
            if (!ctx.is_excluded(s)) return s;
        return std::nullopt;
    }
    /// Calls `f(s)` front to back until it returns false.
    template <class F>
    void visit(F&& f) const {
        for (session_id s : order_)
            if (!f(s)) return;
    }
    bool contains(session_id s) const { return where_.contains(s); }
    std::size_t size() const noexcept { return order_.size(); }

private:
    std::list<session_id> order_;
    std::unordered_map<session_id, std::list<session_id>::iterator> where_;
};

}  // namespace cachedattn::eviction::detail
