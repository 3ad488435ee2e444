#pragma once
/// @file
/// @brief On-demand fetching, the baseline for scheduler-aware prefetch: no look-ahead; only
/// the jobs about to run (the next `batch` jobs) have their KV fetched up to DRAM, at the
/// start of the step that runs them.
#include "cachedattn/prefetch/concept.hpp"

namespace cachedattn::prefetch {

class on_demand {
public:
    struct config {
        std::size_t batch = 1;        ///< jobs fetched: those of the next scheduling step
        std::size_t target_tier = 1;  ///< DRAM in tiers<device, host, file>
    };
    static constexpr std::string_view name = "on_demand";

    on_demand() = default;
    explicit on_demand(const config& c) : cfg_(c) {}

    prefetch_plan plan(const queue_view& q, const residency_view& r) const {
        prefetch_plan p;
        p.target_tier = cfg_.target_tier;
        for (std::size_t d = 0; d < cfg_.batch && d < q.size(); ++d) {
            const session_id s = q.at(d);
            const auto t = r.tier_of(s);
            if (q.distance(s) == d && t && *t > cfg_.target_tier) p.sessions.push_back(s);
        }
        return p;
    }

private:
    config cfg_{};
};
static_assert(prefetch_policy<on_demand>);

}  // namespace cachedattn::prefetch
