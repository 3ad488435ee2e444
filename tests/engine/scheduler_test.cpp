// The job queue and scheduler: FCFS batches, look-ahead eviction and prefetch seen end to end.
#include "../support.hpp"

#include <set>

using namespace cachedattn;

namespace {

template <class H>
struct replay {
    std::map<std::uint64_t, std::vector<token_id>> history;  // our own copy, to build references
    std::array<std::size_t, 4> hits{};                       // per tier; [3] = misses
};

/// Submits `rounds` rounds of turns for `sessions` sessions (all queued up front), drains the
/// engine and checks every turn against the from-scratch reference.
template <class H>
replay<H> run_cycle(H& h, backend::cpu_backend& b, int sessions, int rounds, std::size_t batch, std::uint64_t seed) {
    engine eng(h, b, {.record_logits = true, .batch_size = batch});
    std::mt19937_64 rng(seed);
    std::map<std::uint64_t, std::vector<std::vector<token_id>>> inputs;
    for (int r = 0; r < rounds; ++r)
        for (int s = 1; s <= sessions; ++s) {
            auto in = test::random_tokens(rng, 8, b.vocab());
            inputs[static_cast<std::uint64_t>(s)].push_back(in);
            eng.submit({session_id{static_cast<std::uint64_t>(s)}, in, 4});
        }
    replay<H> out;
    std::map<std::uint64_t, std::size_t> turn;
    for (const auto& jr : eng.drain()) {
        auto& hist = out.history[jr.session.value];
        const auto& in = inputs[jr.session.value][turn[jr.session.value]++];
        hist.insert(hist.end(), in.begin(), in.end());
        CHECK(test::rel_error(jr.result.first_logits, test::reference_logits(b, hist)) < 1e-4);
        hist.insert(hist.end(), jr.result.generated.begin(), jr.result.generated.end());
        if (jr.result.metrics.hit_tier) ++out.hits[*jr.result.metrics.hit_tier];
        else ++out.hits[3];
        h.check_invariants();
    }
    return out;
}

template <class H>
typename H::config one_session_per_tier(const backend::cpu_backend& b, const std::filesystem::path& dir) {
    const std::size_t block = b.geometry().block_bytes();
    return test::capacities<H>(4 * block, 4 * block, 4 * block + 512, dir);
}

}  // namespace

TEST_CASE("scheduler: FCFS batches take a session at most once") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 1);
    test::temp_dir dir("fcfs");
    H h(test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.batch_size = 3});
    const std::vector<token_id> in{1, 2, 3};
    for (std::uint64_t s : {1, 2, 1, 3, 4}) eng.submit({session_id{s}, in, 2});
    CHECK(eng.queued() == 5);
    CHECK(eng.queue().distance(session_id{3}) == 3u);
    auto first = eng.step();  // [1, 2]: the second job of 1 must wait for the first's output
    REQUIRE(first.size() == 2);
    CHECK(first[0].session == session_id{1});
    CHECK(first[1].session == session_id{2});
    CHECK(first[0].id == 0);
    auto second = eng.step();  // [1, 3, 4]
    REQUIRE(second.size() == 3);
    CHECK(second[0].session == session_id{1});
    CHECK(second[0].result.metrics.reused_tokens > 0);
    CHECK(eng.queued() == 0);
    CHECK_THROWS_AS(eng.submit({session_id{9}, {9999}, 2}), input_error);
    CHECK_THROWS_AS(engine(h, b, {.batch_size = 0}), config_error);
}

TEST_CASE("scheduler-aware eviction keeps what the queue needs next, LRU cycles through misses") {
    backend::cpu_backend b(model::model_config::tiny(), 2);
    test::temp_dir dir("cycle");
    using lru_stack = test::stack3<eviction::lru>;
    using sa_stack = test::stack3<eviction::scheduler_aware>;
    lru_stack lru(one_session_per_tier<lru_stack>(b, dir.path() / "lru"), b.geometry(), b.weights_id());
    sa_stack sa(one_session_per_tier<sa_stack>(b, dir.path() / "sa"), b.geometry(), b.weights_id());
    const auto l = run_cycle(lru, b, 4, 4, 1, 7);
    const auto s = run_cycle(sa, b, 4, 4, 1, 7);
    const auto hits = [](const auto& r) { return r.hits[0] + r.hits[1] + r.hits[2]; };
    MESSAGE("hits lru " << hits(l) << ", scheduler-aware " << hits(s) << " of 12 possible");
    CHECK(hits(s) > hits(l));
}

TEST_CASE("belady: with the whole future queued, never fewer hits than scheduler-aware or LRU") {
    backend::cpu_backend b(model::model_config::tiny(), 3);
    test::temp_dir dir("belady");
    using lru_stack = test::stack3<eviction::lru>;
    using opt_stack = test::stack3<eviction::belady>;
    using sa_stack = test::stack3<eviction::scheduler_aware>;
    lru_stack lru(one_session_per_tier<lru_stack>(b, dir.path() / "lru"), b.geometry(), b.weights_id());
    opt_stack opt(one_session_per_tier<opt_stack>(b, dir.path() / "opt"), b.geometry(), b.weights_id());
    sa_stack sa(one_session_per_tier<sa_stack>(b, dir.path() / "sa"), b.geometry(), b.weights_id());
    const auto l = run_cycle(lru, b, 5, 3, 1, 8);
    const auto o = run_cycle(opt, b, 5, 3, 1, 8);
    const auto s = run_cycle(sa, b, 5, 3, 1, 8);
    const auto hits = [](const auto& r) { return r.hits[0] + r.hits[1] + r.hits[2]; };
    MESSAGE("hits lru " << hits(l) << ", scheduler-aware " << hits(s) << ", belady " << hits(o));
    CHECK(hits(o) >= hits(l));
    CHECK(hits(o) >= hits(s));
}

TEST_CASE("scheduler-aware prefetch lifts a queued session from SSD to DRAM before its turn") {
    using with_prefetch = kv_hierarchy<test::three_tiers, eviction::scheduler_aware, prefetch::scheduler_aware,
                                       truncation::drop_oldest, posenc::decoupled_rope>;
    using without = test::stack3<eviction::scheduler_aware>;
    backend::cpu_backend b(model::model_config::tiny(), 4);
    test::temp_dir dir("prefetch");
    auto run = [&](auto& h) {
        engine eng(h, b, {.record_logits = true});
        const std::vector<token_id> in(20, 7);
        for (std::uint64_t s = 1; s <= 3; ++s) eng.run_turn(session_id{s}, in, 4);  // 1 ends up on SSD
        REQUIRE(h.locate(session_id{1}) == 2u);
        eng.submit({session_id{4}, in, 4});
        eng.submit({session_id{1}, in, 4});
        auto r = eng.drain();
        return r.back().result.metrics.hit_tier;
    };
    const std::size_t block = b.geometry().block_bytes();
    with_prefetch::config cp = test::capacities<with_prefetch>(3 * block, 3 * block, 1 << 20, dir.path() / "p");
    cp.prefetch.window_jobs = 4;
    with_prefetch hp(cp, b.geometry(), b.weights_id());
    without hn(test::capacities<without>(3 * block, 3 * block, 1 << 20, dir.path() / "n"), b.geometry(), b.weights_id());
    CHECK(run(hp) == 1u);  // served from DRAM
    CHECK(run(hn) == 2u);  // served from SSD
    CHECK(hp.stats().prefetched >= 1);
}

TEST_CASE("expiry: scheduler-aware TTL drops sessions idle longer than the TTL") {
    using H = test::stack3<eviction::scheduler_aware>;
    backend::cpu_backend b(model::model_config::tiny(), 5);
    test::temp_dir dir("ttl");
    auto cfg = test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path());
    cfg.eviction.ttl_s = 100;
    H h(cfg, b.geometry(), b.weights_id());
    const std::vector<token_id> in{1, 2, 3};
    engine eng(h, b);
    eng.run_turn(session_id{1}, in, 2);
    h.set_time(50);
    CHECK(h.expire() == 0);
    h.set_time(1000);
    CHECK(h.expire() == 1);
    CHECK_FALSE(h.locate(session_id{1}).has_value());
    CHECK(h.stats().expired == 1);
}

TEST_CASE("job_order::take: removing a job from the middle keeps every distance right") {
    job_order o;
    for (std::uint64_t s : {1, 2, 3, 2, 4}) o.push(session_id{s});
    CHECK(o.take(2) == session_id{3});
    CHECK(o.size() == 4);
    CHECK(o.distance(session_id{1}) == 0u);
    CHECK(o.distance(session_id{2}) == 1u);
    CHECK_FALSE(o.distance(session_id{3}).has_value());
    CHECK(o.distance(session_id{4}) == 3u);
    CHECK(o.pop() == session_id{1});
    CHECK(o.distance(session_id{2}) == 0u);
    CHECK(o.take(1) == session_id{2});  // session 2's second job
    CHECK(o.distance(session_id{2}) == 0u);
    CHECK(o.distance(session_id{4}) == 1u);
    CHECK_THROWS_AS(o.take(5), error);
}

TEST_CASE("I/O-aware scheduling: a ready job runs before one waiting on a read, bounded, sessions in order") {
    std::set<std::uint64_t> on_ssd{1, 3};
    const auto ready = [&](session_id s) { return !on_ssd.contains(s.value); };
    const auto ids = [](const std::vector<job_queue::entry>& b) {
        std::vector<std::uint64_t> v;
        for (const auto& e : b) v.push_back(e.work.session.value);
        return v;
    };
    SUBCASE("FCFS without a window") {
        job_queue q;
        for (std::uint64_t s : {1, 2}) q.push({session_id{s}, {1}, 1});
        CHECK(ids(q.take_batch(1, {}, ready)) == std::vector<std::uint64_t>{1});
        CHECK(q.reordered() == 0);
    }
    SUBCASE("the first ready job of the window goes first; the head is passed over at most max_passes times") {
        job_queue q;
        for (std::uint64_t s : {1, 3, 2, 4, 5, 6}) q.push({session_id{s}, {1}, 1});
        const job_queue::reorder r{.window = 4, .max_passes = 2};
        CHECK(ids(q.take_batch(1, r, ready)) == std::vector<std::uint64_t>{2});  // 1 and 3 wait on reads
        CHECK(ids(q.take_batch(1, r, ready)) == std::vector<std::uint64_t>{4});  // 1 passed twice now
        CHECK(ids(q.take_batch(1, r, ready)) == std::vector<std::uint64_t>{1});  // no more: it runs
        CHECK(ids(q.take_batch(1, r, ready)) == std::vector<std::uint64_t>{3});  // passed twice too
        CHECK(ids(q.take_batch(1, r, ready)) == std::vector<std::uint64_t>{5});
        CHECK(q.reordered() == 2);
    }
    SUBCASE("a session's later job never overtakes its earlier one") {
        job_queue q;
        q.push({session_id{1}, {1}, 1});  // on SSD
        q.push({session_id{1}, {2}, 1});  // the same session's next turn
        q.push({session_id{2}, {1}, 1});
        const auto b = q.take_batch(1, {.window = 3, .max_passes = 4}, ready);
        CHECK(ids(b) == std::vector<std::uint64_t>{2});
        const auto next = q.take_batch(1, {.window = 3, .max_passes = 4}, ready);
        REQUIRE(ids(next) == std::vector<std::uint64_t>{1});
        CHECK(next[0].work.input == std::vector<token_id>{1});
    }
}

TEST_CASE("I/O-aware scheduling on the simulator: jobs are reordered, every turn is served") {
    const auto cfg = model::model_config::tiny();
    auto run = [&](std::size_t window) {
        sim::sim_backend sb(cfg, sim::gpu_profile::a100_pcie4(1), {.decode_batch = 2});
        stacks::sim::lru::config c;
        const std::size_t block = sb.geometry().block_bytes();
        c.device().capacity_bytes = 16 * block;  // a few sessions: most wait on the SSD
        c.host().capacity_bytes = 48 * block;
        c.ssd().capacity_bytes = 4096 * block;
        stacks::sim::lru h(c, sb.geometry(), sb.weights_id());
        engine eng(h, sb, {.io_aware_window = window});
        auto t = workload::synthetic_chat({.sessions = 30, .turns = 4, .vocab = cfg.vocab, .seed = 3});
        for (auto& c : t.conversations)  // all at once: a queue builds up
            for (auto& turn : c.turns) turn.at_s *= 1e-9;
        const auto r = sim::replay(t, eng);
        return std::pair{r, eng.reordered_jobs()};
    };
    const auto [fcfs, none] = run(0);
    const auto [aware, reordered] = run(8);
    CHECK(none == 0);
    CHECK(reordered > 0);
    CHECK(aware.turns == fcfs.turns);
    CHECK(aware.measured.turns() == 120);
    MESSAGE("FCFS mean TTFT " << fcfs.measured.mean_ttft() << " s, I/O-aware " << aware.measured.mean_ttft() << " s, "
                              << reordered << " jobs reordered");
}
