// A downstream project: a size-aware policy of its own (big_and_idle.hpp), checked with the
// installed conformance suite, then run through the named stacks on the cpu reference and on the
// simulator, over one workload.
#include <cachedattn/cachedattn.hpp>
#include <cachedattn/testing/eviction_conformance.hpp>

#include <cstdio>

#include "big_and_idle.hpp"

namespace ca = cachedattn;

int main(int argc, char** argv) {
    const auto failures = ca::testing::check_eviction_policy<my::big_and_idle>();
    for (const auto& f : failures) std::printf("conformance: %s\n", f.c_str());
    if (!failures.empty()) return 1;

    const auto cfg = ca::model::model_config::tiny();
    const auto chat = ca::workload::synthetic_chat({.sessions = 6, .turns = 3, .vocab = cfg.vocab});

    // The cpu reference, through a named stack with the policy swapped in.
    ca::backend::cpu_backend model(cfg, 7);
    using cpu_stack = ca::stacks::three_tier<my::big_and_idle>;
    cpu_stack::config hc;
    hc.device().capacity_bytes = 256 << 10;
    hc.host().capacity_bytes = 512 << 10;
    hc.ssd() = {argc > 1 ? argv[1] : "consumer-cache", 1 << 22};
    cpu_stack h(hc, model.geometry(), model.weights_id());
    ca::engine eng(h, model);
    std::size_t cpu_hits = 0;
    const auto done = ca::run_trace(eng, chat, 4);
    for (const auto& r : done) cpu_hits += r.result.metrics.hit_tier.has_value();

    // The simulator, through the simulated twin of the same stack.
    ca::sim::sim_backend sim(cfg, ca::sim::gpu_profile::a100_pcie4(1));
    using sim_stack = ca::stacks::sim::three_tier<my::big_and_idle>;
    sim_stack::config sc;
    sc.device().capacity_bytes = 256 << 10;
    sc.host().capacity_bytes = 512 << 10;
    sc.ssd().capacity_bytes = 1 << 22;
    sim_stack s(sc, sim.geometry(), sim.weights_id());
    ca::engine sim_eng(s, sim);
    const auto replayed = ca::sim::replay(chat, sim_eng);

    if (done.size() != chat.turns() || replayed.turns != chat.turns() || cpu_hits == 0) return 1;
    std::printf("consumer ok: %zu turns, cpu hits %zu, sim hit rate %.2f\n", done.size(), cpu_hits,
                replayed.measured.hit_rate());
    return 0;
}
