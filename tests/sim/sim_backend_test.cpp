// The simulator runs the real engine, hierarchy and policies: on the same workload, byte
// capacities and policies it makes the cpu backend's hit/miss and placement decisions, turn by
// turn. And a ShareGPT-like trace replays on the paper's shapes.
#include <cachedattn/sim/replay.hpp>
#include <cachedattn/sim/sim_backend.hpp>
#include <cachedattn/tier/accounting_tier.hpp>
#include <cachedattn/workload/sharegpt_like.hpp>

#include "../support.hpp"

using namespace cachedattn;

namespace {
struct job_spec {
    std::uint64_t session;
    int input, output;
};

std::vector<job_spec> workload(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<job_spec> jobs;
    // 8 sessions x 4 turns of 20-100 new tokens: later turns overflow the 256-token window.
    for (int r = 0; r < 4; ++r)
        for (std::uint64_t s = 1; s <= 8; ++s) jobs.push_back({s, 20 + static_cast<int>(rng() % 81), 2 + static_cast<int>(rng() % 7)});
    // Interleave rounds a little: swap neighbours from different sessions at random.
    for (std::size_t i = 1; i < jobs.size(); ++i)
        if (rng() % 3 == 0 && jobs[i].session != jobs[i - 1].session) std::swap(jobs[i], jobs[i - 1]);
    return jobs;
}

struct decision {
    std::optional<std::size_t> hit_tier;
    bool truncated, invalidated, preloaded;
    std::int64_t reused, recomputed;
    bool operator==(const decision&) const = default;
};

template <class Engine>
std::vector<decision> run(Engine& eng, const std::vector<job_spec>& jobs, bool real_tokens) {
    std::mt19937_64 rng(5);
    for (const auto& j : jobs) {
        std::vector<token_id> in = real_tokens ? test::random_tokens(rng, static_cast<std::size_t>(j.input), 512)
                                               : std::vector<token_id>(static_cast<std::size_t>(j.input), 0);
        eng.submit({session_id{j.session}, in, j.output});
    }
    std::vector<decision> out;
    for (const auto& r : eng.drain()) {
        const auto& m = r.result.metrics;
        out.push_back({m.hit_tier, m.truncated, m.invalidated, m.preloaded_ahead, m.reused_tokens, m.recomputed_tokens});
    }
    return out;
}

template <class Evict, class Prefetch, class PosEnc, class Save>
void same_decisions() {
    using real = stacks::three_tier<Evict, Prefetch, truncation::drop_oldest, PosEnc, Save>;
    using simulated = stacks::sim::three_tier<Evict, Prefetch, truncation::drop_oldest, PosEnc, Save>;
    const auto cfg = model::model_config::tiny();
    backend::cpu_backend cpu(cfg, 1);
    sim::sim_backend sb(cfg, sim::gpu_profile::a100_pcie4(1));
    const std::size_t block = cpu.geometry().block_bytes();
    const std::size_t dev = 20 * block, host = 30 * block, file = 60 * block + 8192;
    test::temp_dir dir("sim-equal");
    real r(test::capacities<real>(dev, host, file, dir.path()), cpu.geometry(), cpu.weights_id());
    typename simulated::config sc;
    sc.device() = {dev};
    sc.host().capacity_bytes = host;
    sc.ssd().capacity_bytes = file;
    simulated s(sc, sb.geometry(), sb.weights_id());
    engine e_real(r, cpu);
    engine e_sim(s, sb);
    const auto jobs = workload(7);
    const auto a = run(e_real, jobs, true);
    const auto b = run(e_sim, jobs, false);
    REQUIRE(a.size() == b.size());
    std::size_t hits = 0, truncated = 0, moves = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("job " << i << " (session " << jobs[i].session << ")");
        CHECK(a[i] == b[i]);
        hits += a[i].hit_tier.has_value();
        truncated += a[i].truncated;
    }
    for (std::uint64_t id = 1; id <= 8; ++id) CHECK(r.locate(session_id{id}) == s.locate(session_id{id}));
    for (std::size_t t = 0; t < 3; ++t) {
        CHECK(r.stats().demotions[t] == s.stats().demotions[t]);
        CHECK(r.stats().drops[t] == s.stats().drops[t]);
        moves += r.stats().demotions[t] + r.stats().drops[t];
    }
    CHECK(r.stats().prefetched == s.stats().prefetched);
    CHECK(hits > 10);
    CHECK(moves > 10);
    CHECK(sb.now() > 0);
    MESSAGE(Evict::name << "/" << Prefetch::name << "/" << PosEnc::name << "/" << Save::name << ": " << hits
                        << " hits, " << truncated << " truncated turns, " << moves
                        << " demotions+drops, identical on cpu and sim; simulated " << sb.now() * 1e3 << " ms");
}
}  // namespace

TEST_CASE("sim backend: the cpu backend's decisions, turn by turn") {
    same_decisions<eviction::scheduler_aware, prefetch::scheduler_aware, posenc::decoupled_rope, saving::async_save>();
    same_decisions<eviction::arc, prefetch::none, posenc::rerotate_rope, saving::write_back>();
    if (test::quick()) return;  // sanitizer presets: two stacks are enough
    same_decisions<eviction::lru, prefetch::none, posenc::decoupled_rope, saving::async_save>();
    same_decisions<eviction::fifo, prefetch::on_demand, posenc::coupled_rope, saving::sync_save>();
}

TEST_CASE("sim backend: a ShareGPT-like trace on LLaMA-2-13B shapes, with and without caching") {
    using H = kv_hierarchy<tiers<tier::sim_device_tier, tier::sim_host_tier, tier::sim_file_tier>, eviction::scheduler_aware,
                           prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope>;
    workload::sharegpt_like_config wc;
    wc.conversations = 200;
    wc.mean_think_s = 10;
    const auto trace = workload::sharegpt_like(wc);
    const auto m = model::model_config::llama2_13b();
    auto run = [&](bool retain, int buffer) {
        sim::sim_backend sb(m, sim::gpu_profile::a100_pcie4(2));
        typename H::config c;
        c.device() = {std::size_t{20} << 30};
        std::get<1>(c.tiers).capacity_bytes = std::size_t{128} << 30;
        std::get<2>(c.tiers).capacity_bytes = std::size_t{10} << 40;
        H h(c, sb.geometry(), sb.weights_id());
        engine<H, sim::sim_backend> eng(h, sb, {.retain_across_turns = retain, .preload_buffer_layers = buffer});
        return sim::replay(trace, eng, {.warmup_turns = 100});
    };
    const auto cached = run(true, 1), loaded_first = run(true, -1), recompute = run(false, 1);
    CHECK(cached.turns == trace.turns());
    CHECK(cached.measured.turns() == trace.turns() - 100);
    MESSAGE("hit rate " << cached.measured.hit_rate() << ", mean TTFT cached " << cached.measured.mean_ttft() * 1e3
                        << " ms, load-then-prefill " << loaded_first.measured.mean_ttft() * 1e3 << " ms, recompute "
                        << recompute.measured.mean_ttft() * 1e3 << " ms; simulated " << cached.simulated_s << " s");
    CHECK(cached.measured.hit_rate() > 0.5);  // every later turn of a conversation can hit
    CHECK(recompute.measured.hit_rate() == 0);
    CHECK(cached.measured.mean_ttft() < recompute.measured.mean_ttft());
    CHECK(cached.measured.mean_ttft() <= loaded_first.measured.mean_ttft());  // layer-wise overlap never hurts
    CHECK(cached.simulated_s >= trace.conversations.back().turns[0].at_s);
}

namespace {
template <class Evict, class Prefetch>
sim::replay_result replay_13b(const workload::trace& trace, int slots, double ssd_bytes) {
    using H = kv_hierarchy<tiers<tier::sim_device_tier, tier::sim_host_tier, tier::sim_file_tier>, Evict, Prefetch,
                           truncation::drop_oldest, posenc::decoupled_rope>;
    sim::sim_backend sb(model::model_config::llama2_13b(), sim::gpu_profile::a100_pcie4(2), {.decode_batch = slots});
    next_use_table future;
    typename H::config c;
    c.device() = {std::size_t{8} << 30};
    std::get<1>(c.tiers).capacity_bytes = std::size_t{16} << 30;
    std::get<2>(c.tiers).capacity_bytes = static_cast<std::size_t>(ssd_bytes);
    if constexpr (std::is_same_v<Evict, eviction::belady>) c.eviction.oracle = &future;
    H h(c, sb.geometry(), sb.weights_id());
    engine<H, sim::sim_backend> eng(h, sb, {.retain_across_turns = true});
    auto r = sim::replay(trace, eng, {.warmup_turns = 50, .oracle = &future});
    h.check_invariants();
    CHECK(sb.running() == 0);
    return r;
}
}  // namespace

TEST_CASE("sim replay: a batch of jobs shares the GPU, a light load never queues") {
    workload::sharegpt_like_config wc;
    wc.conversations = 150;
    wc.mean_think_s = 10;
    wc.arrival_rate = 2.0;  // about 11 turns/s: more than two A100s serve
    const auto busy = workload::sharegpt_like(wc);
    const auto one = replay_13b<eviction::lru, prefetch::none>(busy, 1, 1e12);
    const auto many = replay_13b<eviction::lru, prefetch::none>(busy, 24, 1e12);
    CHECK(one.turns == busy.turns());
    CHECK(many.turns == busy.turns());
    MESSAGE("overloaded: 1 slot ends at " << one.simulated_s << " s (queue wait " << one.mean_queue_s() << " s), 24 slots at "
                                          << many.simulated_s << " s (" << many.mean_queue_s() << " s)");
    CHECK(many.simulated_s < 0.5 * one.simulated_s);  // decode steps shared by the batch
    CHECK(many.mean_queue_s() < one.mean_queue_s());
    CHECK(many.max_queued > 10);
    CHECK(many.gpu_utilization() > 0.5);
    CHECK(many.gpu_utilization() <= 1.0 + 1e-9);
    // A job's turn lasts at least its TTFT and decode.
    CHECK(many.mean_turn_s() >= many.measured.mean_ttft());

    wc.arrival_rate = 0.02;  // a session every 50 s
    const auto light = replay_13b<eviction::lru, prefetch::none>(workload::sharegpt_like(wc), 24, 1e12);
    CHECK(light.mean_queue_s() < 1e-3);
    CHECK(light.max_queued <= 2);
}

TEST_CASE("sim replay: Belady with the replay's next-use oracle keeps more sessions than LRU when the SSD binds") {
    workload::sharegpt_like_config wc;
    wc.conversations = 300;
    wc.mean_think_s = 30;
    const auto trace = workload::sharegpt_like(wc);
    const double ssd = 60e9;  // a few dozen 13B sessions below DRAM
    const auto lru = replay_13b<eviction::lru, prefetch::none>(trace, 24, ssd);
    const auto opt = replay_13b<eviction::belady, prefetch::none>(trace, 24, ssd);
    MESSAGE("hit rate with a 60 GB SSD: LRU " << lru.measured.hit_rate() << ", Belady (oracle) " << opt.measured.hit_rate());
    CHECK(opt.measured.hit_rate() > lru.measured.hit_rate() + 0.05);
}
