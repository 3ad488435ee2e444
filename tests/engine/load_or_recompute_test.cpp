// Load or recompute per turn (engine_config::load_choice): the choice itself, the measured
// costs, and the central property under every choice: a turn that loads part of its KV and
// recomputes the rest gives the logits of recomputing everything.
#include <cachedattn/sim/replay.hpp>
#include <cachedattn/sim/sim_backend.hpp>
#include <cachedattn/tier/accounting_tier.hpp>
#include <cachedattn/workload/sharegpt_like.hpp>

#include "../support.hpp"

using namespace cachedattn;

TEST_CASE("load or recompute: the choice finds the valley, ties go to loading, whole loads take an end") {
    split_query q;
    q.stored_tokens = 100;
    // Loading 100 - r tokens against computing 20 + r: they meet at r = 40.
    auto valley = [](std::size_t r) { return std::max(100.0 - static_cast<double>(r), 20.0 + static_cast<double>(r)); };
    CHECK(choose_recompute(q, true, valley) == 40);
    CHECK(choose_recompute(q, false, valley) == 0);  // no split: load (100) beats recompute (120)
    CHECK(choose_recompute(q, true, [](std::size_t) { return 1.0; }) == 0);
    CHECK(choose_recompute(q, true, [](std::size_t r) { return 200.0 - static_cast<double>(r); }) == 100);
    q.layer_wise = false;  // a whole-session load cannot overlap the prefill: all or nothing
    CHECK(choose_recompute(q, true, valley) == 0);
    q.stored_tokens = 1;
    CHECK(choose_recompute(q, true, [](std::size_t r) { return r ? 1.0 : 2.0; }) == 1);
}

TEST_CASE("load or recompute: the cost meter recovers per-token and per-pair prefill costs and copy rates") {
    cost_meter meter;
    CHECK_FALSE(meter.estimate().has_value());
    const double a = 2e-4, b = 3e-8;
    for (std::size_t n : {8u, 40u, 100u})
        for (std::size_t cached : {0u, 50u, 300u}) {
            const double nn = static_cast<double>(n);
            meter.prefill(n, cached, nn * a + nn * (static_cast<double>(cached) + nn / 2) * b);
        }
    CHECK_FALSE(meter.estimate().has_value());  // no copy seen yet
    meter.copy(1000, 1e-3);
    meter.copy(3000, 3e-3);
    meter.read(2, 1'000'000, 0.5);
    const auto c = meter.estimate();
    REQUIRE(c.has_value());
    CHECK(c->per_token_s == doctest::Approx(a).epsilon(1e-6));
    CHECK(c->per_pair_s == doctest::Approx(b).epsilon(1e-6));
    CHECK(c->link_s_per_byte == doctest::Approx(1e-6));
    CHECK(c->read_s(2, 2e6) == doctest::Approx(1.0));
    CHECK(c->read_s(1, 2e6) == 0.0);  // never measured: DRAM hands its entry over
}

TEST_CASE("load or recompute: a real backend's estimate splits where copy and compute balance") {
    turn_costs c;
    c.per_token_s = 1e-3;
    c.link_s_per_byte = 1e-6;  // 1000-byte tokens: a token's copy costs what its compute does
    c.read_s_per_byte = {0, 0, 1e-5};
    split_query q{.from_tier = 1, .stored_tokens = 100, .read_bytes = 100'000, .bytes_per_token = 1000,
                  .prefill_tokens = 20, .layer_wise = true};
    auto est = [&](std::size_t r) { return estimate_ttft(c, q, r, 40, 40); };
    CHECK(est(100) == doctest::Approx(0.12));  // recompute: 120 tokens
    CHECK(est(0) == doctest::Approx(0.1 + 0.02 / 40));  // the copy, then the last layer's compute
    const std::size_t r = choose_recompute(q, true, est);
    CHECK(r >= 36);
    CHECK(r <= 44);
    CHECK(est(r) < std::min(est(0), est(100)));
    q.from_tier = 2;  // a 1 s read from the SSD: recompute it all
    CHECK(choose_recompute(q, true, est) == 100);
}

namespace {
struct choice_counts {
    std::array<std::size_t, 4> hits{};  // device, DRAM, SSD, miss
    std::size_t split = 0, recomputed_instead = 0;
};

/// Random conversations on the cpu backend, each turn checked against recomputing from
/// scratch; the turns' load choices counted. 40 turns (16 in the sanitizer presets).
template <class H>
choice_counts run_choices(H& h, backend::cpu_backend& b, const load_or_recompute& choice, std::uint64_t seed) {
    engine eng(h, b, {.record_logits = true, .load_choice = choice});
    std::mt19937_64 rng(seed);
    choice_counts out;
    const int sessions = 8, turns = test::quick() ? 16 : 40;
    for (int turn = 0; turn < turns; ++turn) {
        const session_id s{1 + rng() % sessions};
        const auto input = test::random_tokens(rng, 4 + rng() % 17, b.vocab());
        std::vector<token_id> full = eng.history(s);
        full.insert(full.end(), input.begin(), input.end());
        if (full.size() + 8 > 150) {  // long enough: the conversation ends, the session's KV goes
            eng.end_session(s);
            continue;
        }
        const auto r = eng.run_turn(s, input, 2 + static_cast<int>(rng() % 6));
        CAPTURE(turn);
        CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full, H::posenc_type::keys_pre_rope)) < 1e-4);
        const auto& m = r.metrics;
        CHECK(m.reused_tokens + m.recomputed_tokens + m.new_tokens == static_cast<std::int64_t>(full.size()));
        if (m.hit_tier && *m.hit_tier > 0)  // only the kept blocks crossed the link
            CHECK(m.bytes_loaded == h.geometry().blocks_for(static_cast<std::size_t>(m.reused_tokens)) *
                                        h.geometry().block_bytes());
        ++out.hits[m.hit_tier ? *m.hit_tier : 3];
        if (m.recomputed_instead > 0) ++(m.hit_tier ? out.split : out.recomputed_instead);
        h.check_invariants();
    }
    return out;
}

template <class PosEnc>
choice_counts run_fixed_costs(std::uint64_t seed) {
    using H = test::stack3<eviction::lru, PosEnc>;
    backend::cpu_backend b(model::model_config::tiny(), seed);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("lor");
    H h(test::capacities<H>(160 * pt, 160 * pt, 4000 * pt, dir.path()), b.geometry(), b.weights_id());
    // A token's copy costs what its compute does, so DRAM hits split; the SSD is slow enough
    // that its hits are recomputed.
    turn_costs c;
    c.per_token_s = 1e-3;
    c.link_s_per_byte = 1e-3 / static_cast<double>(pt);
    c.read_s_per_byte = {0, 0, 1.0};
    return run_choices(h, b, {.how = load_or_recompute::mode::fastest, .costs = c}, seed);
}
}  // namespace

TEST_CASE("load or recompute: split and recomputed turns equal recomputation (decoupled RoPE)") {
    const auto n = run_fixed_costs<posenc::decoupled_rope>(11);
    MESSAGE("hits " << n.hits[0] << " " << n.hits[1] << " " << n.hits[2] << ", misses " << n.hits[3] << ", split "
                    << n.split << ", recomputed " << n.recomputed_instead);
    if (test::quick()) return;  // the counts are pinned for the full run
    // Pinned for seed 11 (39 turns): 10 SSD hits, all recomputed (misses by choice); 7 of the 8
    // DRAM hits split (the other had more input to compute than history to copy: it loads all).
    CHECK(n.hits == std::array<std::size_t, 4>{12, 8, 0, 19});
    CHECK(n.split == 7);
    CHECK(n.recomputed_instead == 10);
}

TEST_CASE("load or recompute: split and recomputed turns equal recomputation (keys stored after RoPE)") {
    const auto n = run_fixed_costs<posenc::coupled_rope>(12);
    if (test::quick()) return;
    CHECK(n.split > 0);
    CHECK(n.recomputed_instead > 0);
    CHECK(n.hits[2] == 0);
}

TEST_CASE("load or recompute: the recompute mode never loads from below the device, and measured choices stay exact") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 13);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("lor-re");
    {
        H h(test::capacities<H>(160 * pt, 160 * pt, 4000 * pt, dir.path() / "re"), b.geometry(), b.weights_id());
        const auto n = run_choices(h, b, {.how = load_or_recompute::mode::recompute}, 13);
        CHECK(n.hits[1] == 0);
        CHECK(n.hits[2] == 0);
        CHECK(n.recomputed_instead > 0);
        CHECK(n.split == 0);
    }
    {
        // Measured on this machine: the choices depend on its timings, the logits never do.
        H h(test::capacities<H>(160 * pt, 160 * pt, 4000 * pt, dir.path() / "fast"), b.geometry(), b.weights_id());
        const auto n = run_choices(h, b, {.how = load_or_recompute::mode::fastest}, 13);
        MESSAGE("measured: hits " << n.hits[0] << " " << n.hits[1] << " " << n.hits[2] << ", split " << n.split
                                  << ", recomputed " << n.recomputed_instead);
        CHECK(n.hits[0] + n.hits[1] + n.hits[2] + n.hits[3] <= 40);
        CHECK(n.hits[0] + n.hits[1] + n.hits[2] + n.hits[3] > 0);
    }
}

namespace {
using paper_sim = kv_hierarchy<tiers<tier::sim_device_tier, tier::sim_host_tier, tier::sim_file_tier>, eviction::scheduler_aware,
                               prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope>;

sim::replay_result replay_small(load_or_recompute::mode how, bool retain) {
    workload::sharegpt_like_config wc;
    wc.conversations = 300;
    wc.mean_think_s = 30;
    const auto trace = workload::sharegpt_like(wc);
    auto p = sim::gpu_profile::a100_pcie4(2);
    p.ssds = 1;  // reads queue: loading from the SSD often loses to recomputing
    sim::sim_backend sb(model::model_config::llama2_13b(), p);
    paper_sim::config c;
    c.device() = {std::size_t{8} << 30};
    std::get<1>(c.tiers).capacity_bytes = std::size_t{16} << 30;
    std::get<2>(c.tiers).capacity_bytes = std::size_t{200} << 30;
    paper_sim h(c, sb.geometry(), sb.weights_id());
    engine<paper_sim, sim::sim_backend> eng(h, sb, {.retain_across_turns = retain, .load_choice = {.how = how}});
    auto r = sim::replay(trace, eng, {.warmup_turns = 50});
    h.check_invariants();
    return r;
}
}  // namespace

TEST_CASE("sim: choosing per turn is never slower than always loading or always recomputing") {
    using mode = load_or_recompute::mode;
    const auto load = replay_small(mode::load, true);
    const auto fastest = replay_small(mode::fastest, true);
    const auto re = replay_small(mode::load, false);
    const auto& f = fastest.measured;
    MESSAGE("mean TTFT load " << load.measured.mean_ttft() << " s, fastest " << f.mean_ttft() << " s, RE "
                              << re.measured.mean_ttft() << " s; recomputed " << f.recomputed_instead() << ", split "
                              << f.split() << " of " << f.turns());
    CHECK(f.mean_ttft() <= std::min(load.measured.mean_ttft(), re.measured.mean_ttft()));
    CHECK(load.measured.recomputed_instead() + load.measured.split() == 0);
    // Pinned for this trace: how many turns recomputed their SSD copy or split a load.
    CHECK(f.recomputed_instead() == 1233);
    CHECK(f.split() == 113);
}
