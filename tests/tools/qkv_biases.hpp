#pragma once
// Deterministic q/k/v biases (Qwen2-style) for the checkpoint tests, the GPU test and the
// write_checkpoint tool: uniform in [-scale, scale], large enough at scale ~1 to move the logits.
#include <cachedattn/model/weights.hpp>
#include <random>

namespace checkpoint_content {

inline void add_qkv_biases(cachedattn::model::weights& w, const cachedattn::model::model_config& c, std::uint64_t seed,
                           float scale = 1.0f) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-scale, scale);
    auto make = [&](int heads) {
        std::vector<float> v(static_cast<std::size_t>(heads) * static_cast<std::size_t>(c.head_dim));
        for (float& x : v) x = u(rng);
        return v;
    };
    for (auto& l : w.layers) {
        l.bq = make(c.heads);
        l.bk = make(c.kv_heads);
        l.bv = make(c.kv_heads);
    }
}

}  // namespace checkpoint_content
