#pragma once
/// @file
/// @brief Greedy-Dual-Size-Frequency (Cherkasova, 1998), the web-cache policy that weighs a
/// session's worth by its size: priority H = L + uses x cost / bytes. The lowest H leaves, and
/// the clock L rises to the H of each session evicted, so sessions that stop being used age out
/// however often they were used before. With unit cost (default) it keeps many small sessions
/// over a few large ones (more hits per byte); with `cost_is_size` the size cancels and it is
/// LFU with ageing. The size comes with every hook (eviction::event): nothing is looked up.
#include <set>
#include <unordered_map>
#include <utility>

#include "cachedattn/eviction/concept.hpp"

namespace cachedattn::eviction {

class gdsf {
public:
    struct config {
        bool cost_is_size = false;  ///< a miss costs its bytes (recompute ~ size) instead of 1
    };
    static constexpr std::string_view name = "gdsf";

    gdsf() = default;
    explicit gdsf(const config& c) : cfg_(c) {}

    void on_insert(session_id s, const event& e) { place(s, {0, 1, e.bytes}); }
    void on_access(session_id s, const event& e) {
        auto& [h, uses, bytes] = info_.at(s);
        order_.erase({h, s});
        place(s, {0, uses + 1, e.bytes});
    }
    void on_erase(session_id s, const leave_event& e) {
        const auto it = info_.find(s);
        if (it == info_.end()) return;
        // Ageing: only a victim sets the clock (a promotion is a use, not a judgement).
        if (e.why == leave_reason::demoted || e.why == leave_reason::dropped) clock_ = std::max(clock_, it->second.h);
        order_.erase({it->second.h, s});
        info_.erase(it);
    }
    /// Lowest priority first; equal priorities by session id (deterministic).
    std::optional<session_id> victim(const context& ctx) const {
        for (const auto& [h, s] : order_)
            if (!ctx.is_excluded(s)) return s;
        return std::nullopt;
    }
    std::size_t size() const noexcept { return info_.size(); }
    /// The current priority of a tracked session (tests, plots).
    double priority(session_id s) const { return info_.at(s).h; }

private:
    struct entry {
        double h;
        std::size_t uses, bytes;
    };
    void place(session_id s, entry e) {
        const double bytes = static_cast<double>(e.bytes ? e.bytes : 1);  // an empty miss: one byte
        const double cost = cfg_.cost_is_size ? bytes : 1.0;
        e.h = clock_ + static_cast<double>(e.uses) * cost / bytes;
        order_.insert({e.h, s});
        info_.insert_or_assign(s, e);
    }

    config cfg_{};
    double clock_ = 0;
    std::set<std::pair<double, session_id>> order_;
    std::unordered_map<session_id, entry> info_;
};
static_assert(eviction_policy<gdsf>);

}  // namespace cachedattn::eviction
