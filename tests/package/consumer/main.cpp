// A downstream project: composes the paper's stack from the installed headers and runs a turn.
#include <cachedattn/cachedattn.hpp>

#include <cstdio>

namespace ca = cachedattn;

int main(int argc, char** argv) {
    using stack = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, ca::tier::host_tier, ca::tier::file_tier>,
                                   ca::eviction::lru, ca::prefetch::none, ca::truncation::drop_oldest,
                                   ca::posenc::decoupled_rope>;
    const auto cfg = ca::model::model_config::tiny();
    ca::backend::cpu_backend model(cfg, 7);
    stack::config hc;
    std::get<0>(hc.tiers).capacity_bytes = 1 << 20;
    std::get<1>(hc.tiers).capacity_bytes = 1 << 20;
    std::get<2>(hc.tiers) = {argc > 1 ? argv[1] : "consumer-cache", 1 << 22};
    stack h(hc, model.geometry(), model.weights_id());
    ca::engine eng(h, model);
    const ca::token_id prompt[] = {1, 2, 3, 4};
    auto first = eng.run_turn(ca::session_id{1}, prompt, 4);
    auto second = eng.run_turn(ca::session_id{1}, prompt, 4);
    if (first.generated.size() != 4 || !second.metrics.hit_tier) return 1;
    std::printf("consumer ok: reused %lld tokens\n", static_cast<long long>(second.metrics.reused_tokens));
    return 0;
}
