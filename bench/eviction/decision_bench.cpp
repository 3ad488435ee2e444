// Cost of one eviction decision (victim query) and of one eviction cycle (victim + erase +
// insert of a newcomer) at 10^3 .. 10^6 resident sessions, for every eviction policy; and of
// one scheduler-aware prefetch plan. A 64-job queue over resident sessions is visible to every
// policy (only the queue-aware ones read it).
//   ./build/bench/bench/policy_decision_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cachedattn/cachedattn.hpp>
#include <random>

namespace ca = cachedattn;

namespace {
struct fixture {
    ca::job_order queue;
    ca::tier_usage usage;
    ca::residency_view::directory dir;
    fixture(std::int64_t n, std::uint64_t seed = 1) {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 64; ++i) queue.push(ca::session_id{rng() % static_cast<std::uint64_t>(n)});
        usage.tiers = 3;
        usage.capacity = {std::size_t(1) << 30, std::size_t(1) << 34, std::size_t(1) << 40};
        usage.used = {std::size_t(1) << 30, 0, 0};
        usage.sessions = {static_cast<std::size_t>(n), 0, 0};
    }
};

template <class P>
void eviction_decide(benchmark::State& state) {
    const auto n = state.range(0);
    fixture f(n);
    P p{typename P::config{}};
    for (std::int64_t i = 0; i < n; ++i) p.on_insert(ca::session_id{static_cast<std::uint64_t>(i)});
    const ca::queue_view q(f.queue);
    const ca::eviction::context ctx{q, {}, 0.0, f.usage};
    for (auto _ : state) benchmark::DoNotOptimize(p.victim(ctx));
    state.counters["decisions/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

template <class P>
void eviction_cycle(benchmark::State& state) {
    const auto n = state.range(0);
    fixture f(n);
    P p{typename P::config{}};
    for (std::int64_t i = 0; i < n; ++i) p.on_insert(ca::session_id{static_cast<std::uint64_t>(i)});
    const ca::queue_view q(f.queue);
    const ca::eviction::context ctx{q, {}, 0.0, f.usage};
    std::uint64_t next = static_cast<std::uint64_t>(n);
    std::uint64_t touch = 0;
    for (auto _ : state) {
        const auto v = p.victim(ctx);
        p.on_erase(*v);
        p.on_insert(ca::session_id{next++});
        p.on_access(ca::session_id{next - 1 - (touch++ % 8)});  // recent sessions get reused
    }
    state.counters["cycles/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void prefetch_plan_scheduler_aware(benchmark::State& state) {
    const auto n = state.range(0);
    fixture f(n);
    for (std::int64_t i = 0; i < n; ++i) f.dir[ca::session_id{static_cast<std::uint64_t>(i)}] = 2;  // all on SSD
    f.usage.used = {0, 0, std::size_t(1) << 36};
    f.usage.sessions = {0, 0, static_cast<std::size_t>(n)};
    ca::prefetch::scheduler_aware p({.window_jobs = 64});
    const ca::queue_view q(f.queue);
    const ca::residency_view r(&f.dir, f.usage);
    for (auto _ : state) benchmark::DoNotOptimize(p.plan(q, r));
    state.counters["plans/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

#define CACHEDATTN_EVICTION_BENCH(policy)                                                                     \
    BENCHMARK_TEMPLATE(eviction_decide, ca::eviction::policy)->Name("eviction_decide/" #policy)->RangeMultiplier(10)->Range(1000, 1000000); \
    BENCHMARK_TEMPLATE(eviction_cycle, ca::eviction::policy)->Name("eviction_cycle/" #policy)->RangeMultiplier(10)->Range(1000, 1000000)

CACHEDATTN_EVICTION_BENCH(lru);
CACHEDATTN_EVICTION_BENCH(fifo);
CACHEDATTN_EVICTION_BENCH(lfu);
CACHEDATTN_EVICTION_BENCH(arc);
CACHEDATTN_EVICTION_BENCH(ttl);
CACHEDATTN_EVICTION_BENCH(belady);
CACHEDATTN_EVICTION_BENCH(scheduler_aware);
BENCHMARK(prefetch_plan_scheduler_aware)->Name("prefetch_plan/scheduler_aware")->RangeMultiplier(10)->Range(1000, 1000000);
}  // namespace

BENCHMARK_MAIN();
