#pragma once
/// @file
/// @brief CachedAttention's scheduler-aware fetching (§3.4): look `L_pw = C_dram_available /
/// S_avg` jobs ahead in the queue and bring those sessions' KV from SSD (or any tier below DRAM)
/// up to DRAM before their turn, nearest job first, keeping a fetch buffer of DRAM free.
///
/// "Available" DRAM is the DRAM the store may use (less the fetch buffer), not the bytes free
/// at the moment: saved sessions keep DRAM full in steady state, so a window of free bytes
/// would be zero and nothing would ever come up. The fetch makes room the way every move does,
/// through DRAM's eviction policy, and never displaces a session whose job comes sooner.
/// `window_from_free` restores the literal reading (prefetch only into free space).
#include <algorithm>

#include "cachedattn/prefetch/concept.hpp"

namespace cachedattn::prefetch {

class scheduler_aware {
public:
    struct config {
        std::size_t window_jobs = 0;          ///< 0: L_pw from the DRAM tier's free bytes
        std::size_t fetch_reserve_bytes = 0;  ///< DRAM kept free for on-demand fetches
        std::size_t target_tier = 1;          ///< DRAM in tiers<device, host, file>
        bool window_from_free = false;        ///< L_pw from free bytes rather than capacity
    };
    static constexpr std::string_view name = "scheduler_aware";

    scheduler_aware() = default;
    explicit scheduler_aware(const config& c) : cfg_(c) {}

    /// The prefetch window in jobs for the hierarchy's current state.
    std::size_t window(const residency_view& r) const {
        if (cfg_.window_jobs) return cfg_.window_jobs;
        const auto& u = r.usage();
        if (cfg_.target_tier >= u.tiers) return 0;
        const std::size_t avg = u.mean_session_bytes();
        const std::size_t room = cfg_.window_from_free ? u.free(cfg_.target_tier) : u.capacity[cfg_.target_tier];
        const std::size_t avail = room > cfg_.fetch_reserve_bytes ? room - cfg_.fetch_reserve_bytes : 0;
        return avg == 0 ? 0 : avail / avg;
    }

    prefetch_plan plan(const queue_view& q, const residency_view& r) const {
        prefetch_plan p;
        p.target_tier = cfg_.target_tier;
        p.reserve_bytes = cfg_.fetch_reserve_bytes;
        const std::size_t end = std::min(window(r), q.size());
        for (std::size_t d = 0; d < end; ++d) {
            const session_id s = q.at(d);
            if (q.distance(s) != d) continue;  // a later job of a session already planned
            const auto t = r.tier_of(s);
            if (t && *t > cfg_.target_tier) p.sessions.push_back(s);
        }
        return p;
    }

private:
    config cfg_{};
};
static_assert(prefetch_policy<scheduler_aware>);

}  // namespace cachedattn::prefetch
