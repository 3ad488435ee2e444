#pragma once
/// @file
/// @brief LLaMA-architecture model shapes: `tiny` for tests, `small` for demos, and the
/// LLaMA-2-7B / 13B shapes the simulator and benchmarks use.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/rope.hpp"

namespace cachedattn::model {

struct model_config {
    std::string name = "custom";
    int vocab = 0;
    int dim = 0;
    int layers = 0;
    int heads = 0;
    int kv_heads = 0;
    int head_dim = 0;
    int ffn_dim = 0;
    float rope_theta = 10000.0f;
    float norm_eps = 1e-5f;
    int context_window = 0;
    int block_tokens = 16;
    dtype type = dtype::f32;

    model_geometry geometry() const { return {layers, heads, kv_heads, head_dim, type, block_tokens}; }
    rope_params rope() const { return {rope_theta}; }

    /// Throws config_error naming the first impossible field.
    void validate() const {
        geometry().validate();
        auto positive = [this](int v, const char* field) {
            if (v <= 0)
                throw config_error("model_config '" + name + "': " + field + " must be > 0, got " +
                                   std::to_string(v));
        };
        positive(vocab, "vocab");
        positive(dim, "dim");
        positive(ffn_dim, "ffn_dim");
        positive(context_window, "context_window");
        if (!(rope_theta > 0.0f)) throw config_error("model_config '" + name + "': rope_theta must be > 0");
        if (!(norm_eps > 0.0f)) throw config_error("model_config '" + name + "': norm_eps must be > 0");
    }

    /// Parameter count (embedding and output head counted separately, as in LLaMA).
    std::size_t parameters() const {
        const std::size_t d = static_cast<std::size_t>(dim);
        const std::size_t q = static_cast<std::size_t>(heads) * head_dim;
        const std::size_t kv = static_cast<std::size_t>(kv_heads) * head_dim;
        const std::size_t per_layer = d * q + 2 * d * kv + q * d + 3 * d * static_cast<std::size_t>(ffn_dim) + 2 * d;
        return static_cast<std::size_t>(layers) * per_layer + 2 * static_cast<std::size_t>(vocab) * d + d;
    }

    /// Test-sized: 3 layers, GQA 4:2, fast enough for hundreds of turns on one core.
    static model_config tiny() {
        model_config c;
        c.name = "tiny";
        c.vocab = 512;
        c.dim = 128;
        c.layers = 3;
        c.heads = 4;
        c.kv_heads = 2;
        c.head_dim = 32;
        c.ffn_dim = 344;
        c.context_window = 256;
        c.block_tokens = 16;
        return c;
    }
    /// Demo-sized: where recomputation costs clearly more than loading.
    static model_config small() {
        model_config c;
        c.name = "small";
        c.vocab = 4096;
        c.dim = 512;
        c.layers = 8;
        c.heads = 8;
        c.kv_heads = 4;
        c.head_dim = 64;
        c.ffn_dim = 1376;
        c.context_window = 1024;
        c.block_tokens = 16;
        return c;
    }
    /// LLaMA-2-7B shape (FP16 KV: 0.5 MB per token).
    static model_config llama2_7b() {
        model_config c;
        c.name = "llama2-7b";
        c.vocab = 32000;
        c.dim = 4096;
        c.layers = 32;
        c.heads = 32;
        c.kv_heads = 32;
        c.head_dim = 128;
        c.ffn_dim = 11008;
        c.context_window = 4096;
        c.type = dtype::f16;
        return c;
    }
    /// LLaMA-2-13B shape (FP16 KV: 0.78 MB per token, as in the paper's Table 1).
    static model_config llama2_13b() {
        model_config c;
        c.name = "llama2-13b";
        c.vocab = 32000;
        c.dim = 5120;
        c.layers = 40;
        c.heads = 40;
        c.kv_heads = 40;
        c.head_dim = 128;
        c.ffn_dim = 13824;
        c.context_window = 4096;
        c.type = dtype::f16;
        return c;
    }
    /// LLaMA-1-65B shape (2.5 MB of FP16 KV per token; 2K window).
    static model_config llama_65b() {
        model_config c;
        c.name = "llama-65b";
        c.vocab = 32000;
        c.dim = 8192;
        c.layers = 80;
        c.heads = 64;
        c.kv_heads = 64;
        c.head_dim = 128;
        c.ffn_dim = 22016;
        c.context_window = 2048;
        c.type = dtype::f16;
        return c;
    }
    /// LLaMA-2-70B shape (GQA with 8 KV heads: 0.31 MB per token).
    static model_config llama2_70b() {
        model_config c;
        c.name = "llama2-70b";
        c.vocab = 32000;
        c.dim = 8192;
        c.layers = 80;
        c.heads = 64;
        c.kv_heads = 8;
        c.head_dim = 128;
        c.ffn_dim = 28672;
        c.context_window = 4096;
        c.type = dtype::f16;
        return c;
    }
    /// Falcon-40B shape (8 KV groups of 16 query heads: 0.12 MB per token). Falcon's MLP is two
    /// 8192x32768 GELU matrices; `ffn_dim` is set so that a SwiGLU MLP (three matrices) has the
    /// same parameters and FLOPs, which is all the simulator's cost model reads.
    static model_config falcon_40b() {
        model_config c;
        c.name = "falcon-40b";
        c.vocab = 65024;
        c.dim = 8192;
        c.layers = 60;
        c.heads = 128;
        c.kv_heads = 8;
        c.head_dim = 64;
        c.ffn_dim = 21845;
        c.context_window = 2048;
        c.type = dtype::f16;
        return c;
    }
};

}  // namespace cachedattn::model
