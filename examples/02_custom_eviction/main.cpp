// Plugs the tutorial's MRU policy into the paper's stack next to LRU: a one-word change.
#include <cachedattn/cachedattn.hpp>
#include <filesystem>
#include <fmt/format.h>

#include "mru.hpp"

namespace ca = cachedattn;

template <class Eviction>
using stack = ca::stacks::three_tier<Eviction>;  // device, DRAM, SSD; the other policies at their defaults

template <class Eviction>
void run(ca::backend::cpu_backend& model, const ca::workload::trace& turns,
         const std::filesystem::path& dir) {
    typename stack<Eviction>::config cfg;
    cfg.device().capacity_bytes = 512 << 10;  // ~2 sessions of the tiny model
    cfg.host().capacity_bytes = 1 << 20;
    cfg.ssd() = {dir / std::string(Eviction::name), 1 << 20};  // SSD too small for all
    stack<Eviction> kv(cfg, model.geometry(), model.weights_id());
    ca::engine engine(kv, model);
    ca::metrics::summary sum(3);
    for (const auto& t : ca::workload::in_arrival_order(turns, model.vocab()))
        sum.add(engine.run_turn(t.session, t.input, t.max_new_tokens).metrics);
    fmt::print("{:>4}: hit rate {:5.1f}% (device {:4.1f}%, DRAM {:4.1f}%, SSD {:4.1f}%), mean TTFT {:.2f} ms\n",
               Eviction::name, 100 * sum.hit_rate(), 100 * sum.hit_rate(0), 100 * sum.hit_rate(1),
               100 * sum.hit_rate(2), 1e3 * sum.mean_ttft());
}

int main(int argc, char** argv) try {
    const auto cfg = ca::model::model_config::tiny();
    ca::backend::cpu_backend model(cfg, 1);
    const auto turns = ca::workload::synthetic_chat({.sessions = 12, .turns = 4, .vocab = cfg.vocab});
    const std::filesystem::path dir = argc > 1 ? argv[1] : "cachedattn-custom-eviction";
    run<ca::eviction::lru>(model, turns, dir);
    run<my_policies::mru>(model, turns, dir);
    std::filesystem::remove_all(dir);
} catch (const std::exception& e) {  // e.g. a cache directory that cannot be created
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
}
