// Each policy's decision on small hand-built queues: who is evicted, and why.
#include "../support.hpp"

using namespace cachedattn;

namespace {
session_id S(std::uint64_t v) { return session_id{v}; }

/// A context over `q` with a hierarchy of DRAM + SSD holding `below_sessions` average sessions.
eviction::context ctx_of(const queue_view& q, std::span<const session_id> excluded = {}, double now = 0,
                         std::size_t below_sessions = 4) {
    tier_usage u;
    u.tiers = 3;
    u.capacity = {100, 100 * below_sessions / 2, 100 * below_sessions / 2};
    u.used = {100, 0, 0};
    u.sessions = {1, 0, 0};  // mean session: 100 bytes
    return eviction::context{q, excluded, now, u};
}
job_order queue_of(std::initializer_list<std::uint64_t> sessions) {
    job_order q;
    for (auto s : sessions) q.push(S(s));
    return q;
}
}  // namespace

TEST_CASE("job_order: distances follow FCFS pops") {
    auto q = queue_of({1, 2, 1, 3});
    CHECK(q.distance(S(1)) == 0u);
    CHECK(q.distance(S(3)) == 3u);
    CHECK_FALSE(q.distance(S(9)).has_value());
    CHECK(q.pop() == S(1));
    CHECK(q.distance(S(1)) == 1u);  // its second job
    CHECK(q.distance(S(2)) == 0u);
    CHECK(q.jobs_of(S(1)) == 1);
}

TEST_CASE("scheduler_aware eviction: outside the window first, LRU among them") {
    eviction::scheduler_aware p;
    for (std::uint64_t s = 1; s <= 5; ++s) p.on_insert(S(s));
    // window = (DRAM+SSD) / mean = 400/100 = 4 jobs; queue: 1 and 3 soon, 5 beyond the window.
    auto q = queue_of({3, 1, 7, 8, 5});
    const queue_view v(q);
    CHECK(p.window(ctx_of(v)) == 4);
    CHECK(p.victim(ctx_of(v)) == S(2));  // 2 is not queued and least recent
    const std::vector<session_id> ex{S(2), S(4)};
    CHECK(p.victim(ctx_of(v, ex)) == S(5));  // 5's job is beyond the window
}

TEST_CASE("scheduler_aware eviction: among in-window sessions the one needed latest goes") {
    eviction::scheduler_aware p;
    for (std::uint64_t s = 1; s <= 3; ++s) p.on_insert(S(s));
    auto q = queue_of({2, 9, 3, 1});  // window 4: all three queued inside it
    const queue_view v(q);
    CHECK(p.victim(ctx_of(v)) == S(1));  // distance 3
    const std::vector<session_id> ex{S(1)};
    CHECK(p.victim(ctx_of(v, ex)) == S(3));  // distance 2, though 2 is less recently used
    const std::vector<session_id> all{S(1), S(2), S(3)};
    CHECK_FALSE(p.victim(ctx_of(v, all)).has_value());
}

TEST_CASE("scheduler_aware eviction: a smaller store shrinks the window, TTL expires idle sessions") {
    eviction::scheduler_aware p({.window_jobs = 0, .ttl_s = 10});
    p.on_insert(S(1), 0.0);
    p.on_insert(S(2), 5.0);
    auto q = queue_of({8, 9, 1});
    const queue_view v(q);
    CHECK(p.victim(ctx_of(v, {}, 0, 4)) == S(2));  // window 4 holds 1's job at distance 2
    CHECK(p.victim(ctx_of(v, {}, 0, 2)) == S(1));  // window 2: 1 is outside, and older
    CHECK(p.expired(9.0).empty());
    CHECK(p.expired(12.0) == std::vector<session_id>{S(1)});
    p.on_access(S(1), 12.0);
    CHECK(p.expired(16.0) == std::vector<session_id>{S(2)});
}

TEST_CASE("belady: never-used-again first, then the farthest next use") {
    eviction::belady p;
    for (std::uint64_t s = 1; s <= 4; ++s) p.on_insert(S(s));
    auto q = queue_of({3, 1, 3, 4, 2});
    const queue_view v(q);
    CHECK(p.victim(ctx_of(v)) == S(2));  // 2 is next used at distance 4; nobody is unused...
    p.on_insert(S(6));
    CHECK(p.victim(ctx_of(v)) == S(6));  // ...until 6, never used again
    const std::vector<session_id> ex{S(6), S(2)};
    CHECK(p.victim(ctx_of(v, ex)) == S(4));
}

TEST_CASE("belady with a next-use oracle: the farthest next use, never first, whatever the queue") {
    next_use_table future;
    eviction::belady p({.oracle = &future});
    for (std::uint64_t s = 1; s <= 4; ++s) p.on_insert(S(s));
    future.set(S(1), 50);
    future.set(S(2), 10);
    future.set(S(3), 70);
    future.set(S(4), 20);
    auto q = queue_of({3});  // ignored: the oracle knows more than the queue
    const queue_view v(q);
    CHECK(p.victim(ctx_of(v)) == S(3));
    const std::vector<session_id> ex{S(3)};
    CHECK(p.victim(ctx_of(v, ex)) == S(1));
    future.forget(S(2));  // its conversation is over
    CHECK(p.victim(ctx_of(v)) == S(2));
    CHECK(p.admit(S(4), S(1), ctx_of(v)));        // needed at 20, the victim at 50
    CHECK_FALSE(p.admit(S(1), S(4), ctx_of(v)));  // the other way round
    const std::vector<session_id> all{S(1), S(2), S(3), S(4)};
    CHECK_FALSE(p.victim(ctx_of(v, all)).has_value());
}

TEST_CASE("lfu: fewest uses first, ties by recency") {
    eviction::lfu p;
    for (std::uint64_t s = 1; s <= 3; ++s) p.on_insert(S(s));
    p.on_access(S(1));
    p.on_access(S(1));
    p.on_access(S(2));
    const queue_view v;
    CHECK(p.victim(ctx_of(v)) == S(3));
    p.on_access(S(3));
    CHECK(p.victim(ctx_of(v)) == S(2));  // 2 and 3 both used twice; 2 less recently
    CHECK(p.frequency(S(1)) == 3);
}

TEST_CASE("arc: one-time sessions go before reused ones, a ghost hit adapts the target") {
    eviction::arc p;
    for (std::uint64_t s = 1; s <= 4; ++s) p.on_insert(S(s));
    p.on_access(S(1));  // 1 -> T2
    const queue_view v;
    CHECK(p.victim(ctx_of(v)) == S(2));  // T1's LRU (T1 above target p = 0)
    CHECK(p.in_t2(S(1)));
    p.on_erase(S(2));                    // 2 -> ghost B1
    CHECK(p.target_t1() == 0);
    p.on_insert(S(2));                   // B1 hit: T1 deserved more room
    CHECK(p.target_t1() > 0);
    CHECK(p.in_t2(S(2)));
}

TEST_CASE("ttl: released after the TTL, LRU under pressure") {
    eviction::ttl p({.ttl_s = 30});
    p.on_insert(S(1), 0);
    p.on_insert(S(2), 10);
    p.on_access(S(1), 20);
    const queue_view v;
    CHECK(p.victim(ctx_of(v)) == S(2));
    CHECK(p.expired(39).empty());
    CHECK(p.expired(40) == std::vector<session_id>{S(2)});
    CHECK(p.expired(55) == (std::vector<session_id>{S(2), S(1)}));
}
