#pragma once
/// @file
/// @brief Size-aware Belady: Belady's MIN weighted by bytes. Among sessions with a next use,
/// the one with the largest (time to next use) x (bytes) leaves first; sessions never used again
/// go before any of them, largest first. For unit-size items this is MIN; with sizes it is the
/// usual heuristic for the (NP-hard) variable-size optimum: a large session held for a distant
/// turn costs more room-time than a small one. The future comes from a `next_use_table`
/// (sim::replay with replay_options::oracle) or, without one, from the job queue (distance in
/// jobs). Sizes come with the hooks (eviction::event).
#include <algorithm>
#include <unordered_map>
#include <utility>

#include "cachedattn/core/next_use.hpp"
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/eviction/detail/recency_list.hpp"

namespace cachedattn::eviction {

class belady_size {
public:
    struct config {
        const next_use_table* oracle = nullptr;  ///< the future; nullptr: the queue is the future
    };
    static constexpr std::string_view name = "belady_size";

    belady_size() = default;
    explicit belady_size(const config& c) : oracle_(c.oracle) {}

    void on_insert(session_id s, const event& e) {
        list_.push_back(s);
        bytes_[s] = e.bytes;
    }
    void on_access(session_id s, const event& e) {
        list_.move_to_back(s);
        bytes_[s] = e.bytes;
    }
    void on_erase(session_id s) {
        list_.erase(s);
        bytes_.erase(s);
    }

    /// The largest next-use x bytes; never-used-again counts as infinitely far. Ties: least
    /// recently used. O(tracked).
    std::optional<session_id> victim(const context& ctx) const {
        std::optional<session_id> out;
        std::pair<bool, double> worst{false, -1};
        list_.visit([&](session_id s) {
            if (ctx.is_excluded(s)) return true;
            const auto w = weight(s, ctx);
            if (w > worst) {
                worst = w;
                out = s;
            }
            return true;
        });
        return out;
    }
    std::size_t size() const noexcept { return list_.size(); }

    /// Drop the session coming down rather than `victim` when it weighs less to keep the victim.
    bool admit(session_id incoming, session_id victim, const context& ctx) const {
        return weight(incoming, ctx) <= weight(victim, ctx);
    }

private:
    /// Room-time the session would hold until it is used: (never used again, distance x bytes);
    /// never-used sessions weigh by their bytes alone and outrank every other.
    std::pair<bool, double> weight(session_id s, const context& ctx) const {
        const auto it = bytes_.find(s);
        const double bytes = it == bytes_.end() ? 1.0 : static_cast<double>(std::max<std::size_t>(it->second, 1));
        if (oracle_) {
            const double at = oracle_->at(s);
            if (at == next_use_table::never) return {true, bytes};
            return {false, (std::max(at - ctx.now, 0.0) + 1e-6) * bytes};
        }
        const auto d = ctx.queue.distance(s);
        if (!d) return {true, bytes};
        return {false, static_cast<double>(*d + 1) * bytes};
    }

    const next_use_table* oracle_ = nullptr;
    detail::recency_list list_;
    std::unordered_map<session_id, std::size_t> bytes_;
};
static_assert(eviction_policy<belady_size>);

}  // namespace cachedattn::eviction
