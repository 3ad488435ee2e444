#pragma once
/// @file
/// @brief The eviction policy conformance suite, for policies written inside or outside this
/// tree: `check_eviction_policy<P>()` drives a policy through the contract of
/// eviction/concept.hpp (fixed cases, then a seeded random walk against a model of the tracked
/// set, with sizes, tiers, clocks, a job queue and every leave reason) and returns what it
/// violated, one line each; empty means conforming. No test framework is assumed:
///
///     const auto failures = cachedattn::testing::check_eviction_policy<my::policy>();
///     CHECK_MESSAGE(failures.empty(), fmt::format("{}", fmt::join(failures, "\n")));
#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/eviction/concept.hpp"

namespace cachedattn::testing {

struct eviction_conformance_options {
    std::uint64_t seed = 1;
    std::size_t random_steps = 2000;  ///< operations of the random walk
    /// A policy must name a victim whenever a tracked session is not excluded (the hierarchy
    /// cannot make room otherwise). Turn off for policies that may refuse on purpose.
    bool victim_when_possible = true;
};

template <eviction::eviction_policy P>
std::vector<std::string> check_eviction_policy(const typename P::config& cfg = {},
                                               const eviction_conformance_options& opt = {}) {
    using traits = eviction::eviction_traits<P>;
    std::vector<std::string> fail;
    auto expect = [&](bool ok, const std::string& what) {
        if (!ok) fail.push_back(std::string(P::name) + ": " + what);
        return ok;
    };
    auto id = [](std::uint64_t v) { return session_id{v}; };
    job_order order;
    const queue_view queue(order);
    double now = 0;
    auto ctx_of = [&](const std::vector<session_id>& excluded) { return eviction::context{queue, excluded, now, {}}; };
    auto ev = [&](std::size_t bytes) { return eviction::event{bytes, 1, now}; };
    auto leave = [&](std::size_t bytes, eviction::leave_reason why) { return eviction::leave_event{ev(bytes), why}; };

    // ---- fixed cases
    {
        P p{cfg};
        expect(p.size() == 0, "a new policy tracks no session");
        expect(!p.victim(ctx_of({})), "a new policy names no victim");
        for (std::uint64_t i = 1; i <= 5; ++i) traits::on_insert(p, id(i), ev(i * 4096));
        expect(p.size() == 5, "size() counts every inserted session");
        const auto v1 = p.victim(ctx_of({})), v2 = p.victim(ctx_of({}));
        expect(v1 == v2, "victim() is a const query: asking twice gives the same answer");
        expect(v1 && v1->value >= 1 && v1->value <= 5, "the victim is a tracked session");
        expect(p.victim(ctx_of({id(1), id(2), id(3), id(4)})) == id(5), "with four of five excluded, the fifth goes");
        expect(!p.victim(ctx_of({id(1), id(2), id(3), id(4), id(5)})), "with every session excluded, none goes");
        for (std::uint64_t i = 1; i <= 5; ++i) traits::on_access(p, id(i), ev(i * 8192));  // sessions grow
        expect(p.size() == 5, "on_access does not change size()");
        std::vector<std::uint64_t> seen;
        while (const auto v = p.victim(ctx_of({}))) {
            if (!expect(v->value >= 1 && v->value <= 5 &&
                            std::find(seen.begin(), seen.end(), v->value) == seen.end(),
                        "draining by victim + erase names each session once"))
                break;
            seen.push_back(v->value);
            traits::on_erase(p, *v, leave(v->value * 8192, eviction::leave_reason::demoted));
        }
        expect(seen.size() == 5 && p.size() == 0, "draining by victim + erase empties the policy");
        traits::on_insert(p, id(3), ev(4096));  // re-entering after leaving
        expect(p.size() == 1 && p.victim(ctx_of({})) == id(3), "a session may enter again after it left");
    }

    // ---- random walk against the tracked set
    P p{cfg};
    std::set<std::uint64_t> tracked;
    std::mt19937_64 rng(opt.seed);
    auto pick = [&](const std::set<std::uint64_t>& from) {
        auto it = from.begin();
        std::advance(it, std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng));
        return *it;
    };
    for (std::size_t step = 0; step < opt.random_steps && fail.size() < 20; ++step) {
        now += std::uniform_real_distribution<double>(0, 2)(rng);
        const auto bytes = std::uniform_int_distribution<std::size_t>(0, 1 << 20)(rng);
        const int op = std::uniform_int_distribution<int>(0, 9)(rng);
        if (op <= 2 || tracked.empty()) {
            std::uint64_t s = 1 + std::uniform_int_distribution<std::uint64_t>(0, 63)(rng);
            if (tracked.contains(s)) continue;
            traits::on_insert(p, id(s), ev(bytes));
            tracked.insert(s);
        } else if (op <= 4) {
            traits::on_access(p, id(pick(tracked)), ev(bytes));
        } else if (op == 5) {
            const auto s = pick(tracked);
            const auto why = static_cast<eviction::leave_reason>(std::uniform_int_distribution<int>(0, 3)(rng));
            traits::on_erase(p, id(s), leave(bytes, why));
            tracked.erase(s);
        } else if (op == 6) {  // the job queue moves
            if (!order.empty() && std::uniform_int_distribution<int>(0, 1)(rng)) order.pop();
            else order.push(id(1 + std::uniform_int_distribution<std::uint64_t>(0, 63)(rng)));
        } else {  // choose a victim with some sessions excluded, and apply it
            std::vector<session_id> excluded;
            for (auto s : tracked)
                if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) excluded.push_back(id(s));
            const auto ctx = ctx_of(excluded);
            const auto v = p.victim(ctx);
            const bool possible = tracked.size() > excluded.size();
            if (v) {
                expect(tracked.contains(v->value), "step " + std::to_string(step) + ": victim " +
                                                       std::to_string(v->value) + " is not tracked");
                expect(!ctx.is_excluded(*v), "step " + std::to_string(step) + ": victim " +
                                                 std::to_string(v->value) + " is excluded");
                expect(p.victim(ctx) == v, "step " + std::to_string(step) + ": victim() changed between two calls");
                if (tracked.contains(v->value) && !ctx.is_excluded(*v)) {
                    traits::on_erase(p, *v, leave(bytes, eviction::leave_reason::demoted));
                    tracked.erase(v->value);
                }
            } else if (opt.victim_when_possible) {
                expect(!possible, "step " + std::to_string(step) + ": no victim although " +
                                      std::to_string(tracked.size() - excluded.size()) + " sessions may go");
            }
        }
        if (!expect(p.size() == tracked.size(), "step " + std::to_string(step) + ": size() is " +
                                                    std::to_string(p.size()) + ", " + std::to_string(tracked.size()) +
                                                    " sessions are tracked"))
            break;
        for (auto s : traits::expired(p, now))
            if (!expect(tracked.contains(s.value), "expired() names an untracked session")) break;
    }
    return fail;
}

}  // namespace cachedattn::testing
