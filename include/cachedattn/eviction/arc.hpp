#pragma once
/// @file
/// @brief Adaptive Replacement Cache (Megiddo & Modha, FAST'03), over sessions: T1 holds
/// sessions used once since they entered, T2 those used again; ghost lists B1/B2 remember what
/// left each, and a hit on a ghost moves the target size `p` of T1 toward the list that would
/// have kept it. vLLM's CPU KV offloading offers ARC next to LRU.
///
/// Mapping to a tier: `on_erase` of a T1/T2 session records a ghost; `on_insert` of a ghost
/// adapts `p` and enters T2. The cache size `c` of the original is the most sessions this tier
/// has held at once (sessions vary in size; the tier's byte capacity is the real limit).
#include <algorithm>
#include <list>
#include <unordered_map>

#include "cachedattn/eviction/concept.hpp"

namespace cachedattn::eviction {

class arc {
public:
    struct config {};
    static constexpr std::string_view name = "arc";

    arc() = default;
    explicit arc(const config&) {}

    void on_insert(session_id s) {
        if (auto g = ghost_.find(s); g != ghost_.end()) {
            const bool in_b1 = g->second.first == list_id::b1;
            const double b1 = static_cast<double>(b1_.size()), b2 = static_cast<double>(b2_.size());
            if (in_b1) p_ = std::min(static_cast<double>(c_), p_ + std::max(b2 / std::max(b1, 1.0), 1.0));
            else p_ = std::max(0.0, p_ - std::max(b1 / std::max(b2, 1.0), 1.0));
            (in_b1 ? b1_ : b2_).erase(g->second.second);
            ghost_.erase(g);
            push(t2_, list_id::t2, s);
        } else {
            push(t1_, list_id::t1, s);
        }
        c_ = std::max(c_, t1_.size() + t2_.size());
    }
    void on_access(session_id s) {
        auto it = live_.find(s);
        if (it == live_.end()) return;
        (it->second.first == list_id::t1 ? t1_ : t2_).erase(it->second.second);
        live_.erase(it);
        push(t2_, list_id::t2, s);
    }
    void on_erase(session_id s) {
        auto it = live_.find(s);
        if (it == live_.end()) return;
        const bool from_t1 = it->second.first == list_id::t1;
        (from_t1 ? t1_ : t2_).erase(it->second.second);
        live_.erase(it);
        auto& ghosts = from_t1 ? b1_ : b2_;
        ghosts.push_back(s);
        ghost_[s] = {from_t1 ? list_id::b1 : list_id::b2, std::prev(ghosts.end())};
        trim(ghosts);
    }
    /// REPLACE: take T1's LRU while T1 is above its target p, else T2's LRU.
    std::optional<session_id> victim(const context& ctx) const {
        const bool t1_first = !t1_.empty() && static_cast<double>(t1_.size()) > p_;
        const auto& first = t1_first ? t1_ : t2_;
        const auto& second = t1_first ? t2_ : t1_;
        for (session_id s : first)
            if (!ctx.is_excluded(s)) return s;
        for (session_id s : second)
            if (!ctx.is_excluded(s)) return s;
        return std::nullopt;
    }
    std::size_t size() const noexcept { return live_.size(); }
    double target_t1() const noexcept { return p_; }
    bool in_t2(session_id s) const {
        auto it = live_.find(s);
        return it != live_.end() && it->second.first == list_id::t2;
    }

private:
    enum class list_id { t1, t2, b1, b2 };
    using list = std::list<session_id>;
    void push(list& l, list_id id, session_id s) {
        l.push_back(s);  // back = most recent
        live_[s] = {id, std::prev(l.end())};
    }
    void trim(list& ghosts) {
        while (ghosts.size() > std::max<std::size_t>(c_, 1)) {
            ghost_.erase(ghosts.front());
            ghosts.pop_front();
        }
    }
    list t1_, t2_, b1_, b2_;
    std::unordered_map<session_id, std::pair<list_id, list::iterator>> live_, ghost_;
    double p_ = 0;
    std::size_t c_ = 0;
};
static_assert(eviction_policy<arc>);

}  // namespace cachedattn::eviction
