#pragma once
/// @file
/// @brief fp32 weights of a LLaMA-architecture model, generated deterministically from a seed.
/// Matrices are row-major `[out][in]`, so every output is one contiguous dot product.
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cachedattn/model/config.hpp"

namespace cachedattn::model {

struct layer_weights {
    std::vector<float> attn_norm;  // [dim]
    std::vector<float> wq;         // [heads*head_dim][dim]
    std::vector<float> wk;         // [kv_heads*head_dim][dim]
    std::vector<float> wv;         // [kv_heads*head_dim][dim]
    std::vector<float> wo;         // [dim][heads*head_dim]
    std::vector<float> ffn_norm;   // [dim]
    std::vector<float> w_gate;     // [ffn][dim]
    std::vector<float> w_up;       // [ffn][dim]
    std::vector<float> w_down;     // [dim][ffn]
    // Optional q/k/v projection biases (Qwen2 has them; LLaMA and Mistral do not). Empty means
    // no bias: nothing is added, so bias-free models compute exactly as before.
    std::vector<float> bq;  // [heads*head_dim] or empty
    std::vector<float> bk;  // [kv_heads*head_dim] or empty
    std::vector<float> bv;  // [kv_heads*head_dim] or empty
};

struct weights {
    std::uint64_t seed = 0;
    std::vector<float> embedding;   // [vocab][dim]
    std::vector<layer_weights> layers;
    std::vector<float> final_norm;  // [dim]
    std::vector<float> output;      // [vocab][dim]

    /// Throws config_error naming the first tensor whose size does not fit `c` (biases may be
    /// empty; if one of a layer's q/k/v biases is present, all three must be).
    void check_shapes(const model_config& c) const {
        const std::size_t d = static_cast<std::size_t>(c.dim);
        const std::size_t q = static_cast<std::size_t>(c.heads) * c.head_dim;
        const std::size_t kv = static_cast<std::size_t>(c.kv_heads) * c.head_dim;
        const std::size_t f = static_cast<std::size_t>(c.ffn_dim);
        const std::size_t v = static_cast<std::size_t>(c.vocab);
        auto need = [&c](const std::vector<float>& t, std::size_t n, const std::string& what) {
            if (t.size() != n)
                throw config_error("weights for model_config '" + c.name + "': " + what + " has " +
                                   std::to_string(t.size()) + " values, expected " + std::to_string(n));
        };
        need(embedding, v * d, "embedding");
        need(final_norm, d, "final_norm");
        need(output, v * d, "output");
        if (layers.size() != static_cast<std::size_t>(c.layers))
            throw config_error("weights for model_config '" + c.name + "': " + std::to_string(layers.size()) +
                               " layers, expected " + std::to_string(c.layers));
        for (std::size_t i = 0; i < layers.size(); ++i) {
            const layer_weights& l = layers[i];
            const std::string at = "layer " + std::to_string(i) + " ";
            need(l.attn_norm, d, at + "attn_norm");
            need(l.wq, q * d, at + "wq");
            need(l.wk, kv * d, at + "wk");
            need(l.wv, kv * d, at + "wv");
            need(l.wo, d * q, at + "wo");
            need(l.ffn_norm, d, at + "ffn_norm");
            need(l.w_gate, f * d, at + "w_gate");
            need(l.w_up, f * d, at + "w_up");
            need(l.w_down, d * f, at + "w_down");
            if (l.bq.empty() && l.bk.empty() && l.bv.empty()) continue;
            need(l.bq, q, at + "bq");
            need(l.bk, kv, at + "bk");
            need(l.bv, kv, at + "bv");
        }
    }

    /// Uniform weights scaled by 1/sqrt(fan_in) (activations keep unit scale through depth),
    /// norms near 1. Each tensor has its own stream, so the result depends only on the seed.
    static weights random(const model_config& c, std::uint64_t seed) {
        c.validate();
        weights w;
        w.seed = seed;
        std::uint64_t stream = 0;
        auto fill = [&](std::size_t n, float scale, float offset = 0.0f) {
            std::uint64_t state = seed * 0x9e3779b97f4a7c15ULL + (++stream) * 0xd1b54a32d192ed03ULL;
            std::vector<float> v(n);
            for (auto& x : v) {
                // splitmix64
                std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                z ^= z >> 31;
                const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0,1)
                x = offset + scale * (2.0f * u - 1.0f);
            }
            return v;
        };
        const std::size_t d = static_cast<std::size_t>(c.dim);
        const std::size_t q = static_cast<std::size_t>(c.heads) * c.head_dim;
        const std::size_t kv = static_cast<std::size_t>(c.kv_heads) * c.head_dim;
        const std::size_t f = static_cast<std::size_t>(c.ffn_dim);
        const float sd = std::sqrt(3.0f / static_cast<float>(d));  // uniform(-a,a) has var a^2/3
        w.embedding = fill(static_cast<std::size_t>(c.vocab) * d, 1.0f);
        w.layers.resize(static_cast<std::size_t>(c.layers));
        for (auto& l : w.layers) {
            l.attn_norm = fill(d, 0.1f, 1.0f);
            l.wq = fill(q * d, sd);
            l.wk = fill(kv * d, sd);
            l.wv = fill(kv * d, sd);
            l.wo = fill(d * q, std::sqrt(3.0f / static_cast<float>(q)));
            l.ffn_norm = fill(d, 0.1f, 1.0f);
            l.w_gate = fill(f * d, sd);
            l.w_up = fill(f * d, sd);
            l.w_down = fill(d * f, std::sqrt(3.0f / static_cast<float>(f)));
        }
        w.final_norm = fill(d, 0.1f, 1.0f);
        w.output = fill(static_cast<std::size_t>(c.vocab) * d, sd);
        return w;
    }
};

/// Identity of a model's weights for the cache fingerprint: the seed and every shape field the
/// geometry does not carry (so two models that differ only in dim or theta never share KV).
/// Backends that generate the same weights from the same seed (cpu, cuda) agree on it.
inline std::uint64_t weights_identity(const model_config& c, std::uint64_t seed) noexcept {
    std::uint64_t h = seed;
    auto mix = [&h](std::uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
    mix(static_cast<std::uint64_t>(c.vocab));
    mix(static_cast<std::uint64_t>(c.dim));
    mix(static_cast<std::uint64_t>(c.ffn_dim));
    mix(static_cast<std::uint64_t>(c.context_window));
    mix(std::bit_cast<std::uint32_t>(c.rope_theta));
    mix(std::bit_cast<std::uint32_t>(c.norm_eps));
    return h;
}

}  // namespace cachedattn::model
