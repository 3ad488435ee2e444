#pragma once
/// @file
/// @brief The prefetch policy conformance suite: `check_prefetch_policy<P>()` asks a policy
/// for plans over random job queues and residencies (three tiers, sizes, a seeded walk) and
/// checks the contract of prefetch/concept.hpp: `plan` is a const query (same plan twice), the
/// target tier exists, every planned session is queued, stored below the target tier and
/// listed once, and sessions come nearest job first. Returns the violations, one line each;
/// empty means conforming. No test framework is assumed.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/core/residency_view.hpp"
#include "cachedattn/prefetch/concept.hpp"

namespace cachedattn::testing {

struct prefetch_conformance_options {
    std::uint64_t seed = 1;
    std::size_t rounds = 300;  ///< random queue + residency pairs
};

template <prefetch::prefetch_policy P>
std::vector<std::string> check_prefetch_policy(const typename P::config& cfg = {},
                                               const prefetch_conformance_options& opt = {}) {
    std::vector<std::string> fail;
    auto expect = [&](bool ok, const std::string& what) {
        if (!ok) fail.push_back(std::string(P::name) + ": " + what);
    };
    const P p{cfg};
    std::mt19937_64 rng(opt.seed);
    {
        const job_order none;
        const residency_view::directory dir;
        const auto plan = p.plan(queue_view(none), residency_view(&dir, tier_usage{3, {}, {}, {}}));
        expect(plan.sessions.empty(), "an empty queue plans no fetch");
    }
    for (std::size_t round = 0; round < opt.rounds && fail.size() < 20; ++round) {
        const std::string at = "round " + std::to_string(round) + ": ";
        // Sessions spread over three tiers (some not stored), sizes 1-64 KiB.
        residency_view::directory dir;
        tier_usage u{3, {}, {}, {}};
        u.capacity = {std::size_t{1} << 20, std::size_t{4} << 20, std::size_t{64} << 20};
        const std::size_t sessions = 1 + rng() % 40;
        for (std::uint64_t s = 1; s <= sessions; ++s) {
            const auto t = rng() % 4;
            if (t == 3) continue;
            const std::size_t bytes = 1024 * (1 + rng() % 64);
            if (u.used[t] + bytes > u.capacity[t]) continue;
            dir[session_id{s}] = t;
            u.used[t] += bytes;
            ++u.sessions[t];
        }
        job_order order;
        const std::size_t jobs = rng() % 50;
        for (std::size_t j = 0; j < jobs; ++j) order.push(session_id{1 + rng() % sessions});
        const queue_view q(order);
        const residency_view r(&dir, u);
        const auto plan = p.plan(q, r), again = p.plan(q, r);
        expect(plan.sessions == again.sessions && plan.target_tier == again.target_tier &&
                   plan.reserve_bytes == again.reserve_bytes,
               at + "plan() is a const query: asking twice gives the same plan");
        expect(plan.target_tier < u.tiers || plan.sessions.empty(), at + "the target tier does not exist");
        std::set<std::uint64_t> seen;
        std::size_t last = 0;
        for (std::size_t i = 0; i < plan.sessions.size(); ++i) {
            const session_id s = plan.sessions[i];
            const auto d = q.distance(s);
            const auto t = r.tier_of(s);
            expect(seen.insert(s.value).second, at + "session " + std::to_string(s.value) + " is planned twice");
            expect(d.has_value(), at + "session " + std::to_string(s.value) + " is planned but has no queued job");
            expect(t && *t > plan.target_tier,
                   at + "session " + std::to_string(s.value) + " is planned but not stored below the target tier");
            if (d) {
                expect(i == 0 || *d >= last, at + "sessions are not planned nearest job first");
                last = *d;
            }
        }
    }
    return fail;
}

}  // namespace cachedattn::testing
