// The smallest complete program: compose the paper's stack, run three turns of one chat, and
// watch the second and third turns reuse the first turn's KV instead of recomputing it.
#include <cachedattn/common_stacks.hpp>  // the common stacks, compiled once in the library
#include <fmt/format.h>

namespace ca = cachedattn;

// One type names the whole KV cache system. Swap a policy by changing one word.
using paper_stack = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, ca::tier::host_tier, ca::tier::file_tier>,
                                     ca::eviction::lru,             // what leaves a tier first
                                     ca::prefetch::none,            // nothing moves up ahead of time
                                     ca::truncation::drop_oldest,   // on overflow keep the newest half
                                     ca::posenc::decoupled_rope,    // keys stored before RoPE
                                     ca::saving::async_save>;       // new KV copied out while computing
// (cachedattn/stacks.hpp names the paper's stacks: ca::stacks::paper, ::lru, ::recompute.)

int main(int argc, char** argv) try {
    const auto model_cfg = ca::model::model_config::tiny();
    ca::backend::cpu_backend model(model_cfg, /*seed=*/1);

    paper_stack::config cfg;
    cfg.device().capacity_bytes = 1 << 20;                                     // "HBM"
    cfg.host().capacity_bytes = 4 << 20;                                       // DRAM
    cfg.ssd() = {argc > 1 ? argv[1] : "cachedattn-minimal-cache", 64 << 20};  // SSD
    paper_stack kv(cfg, model.geometry(), model.weights_id());
    ca::engine engine(kv, model);

    const ca::session_id chat{1};
    const std::vector<std::vector<ca::token_id>> turns{{5, 17, 42, 7, 99}, {3, 3, 8}, {250, 11}};
    for (const auto& input : turns) {
        const auto r = engine.run_turn(chat, input, 8);
        fmt::print("turn: {} new tokens, reused {:3} cached, recomputed {:3}, TTFT {:.2f} ms -> [{}]\n",
                   input.size(), r.metrics.reused_tokens, r.metrics.recomputed_tokens, r.metrics.ttft_s * 1e3,
                   fmt::join(r.generated, " "));
    }
} catch (const std::exception& e) {  // e.g. a cache directory that cannot be created
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
}
