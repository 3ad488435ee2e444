#pragma once
/// @file
/// @brief The CUDA transformer: the CPU reference's model (LLaMA architecture) on the GPU with
/// f16/bf16 weights and KV, an f32 residual stream, cuBLAS GEMMs (f32 accumulation) and the
/// fused paged attention kernel that applies RoPE to stored pre-RoPE keys as it reads them.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "cachedattn/core/fence.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"
#include "cachedattn/model/config.hpp"
#include "cachedattn/model/weights.hpp"

namespace cachedattn::cuda {

struct transformer_options {
    /// Key splits of the attention kernel for decode (0: chosen from the grid and SM count).
    int decode_splits = 0;
};

class transformer {
public:
    /// Random weights from `seed`, generated on the GPU element for element as
    /// model::weights::random does on the host (then rounded to the model's dtype), so the CPU
    /// reference with the same seed is the same model. `c.type` must be f16 or bf16.
    transformer(model::model_config c, std::uint64_t seed, transformer_options o = {});
    /// Given host weights (e.g. a loaded checkpoint), rounded to `c.type` on upload; norms stay
    /// f32 as in the random path. q/k/v biases (Qwen2), when present, are added after their
    /// projections as on the CPU.
    transformer(model::model_config c, const model::weights& w, transformer_options o = {});
    ~transformer();
    transformer(const transformer&) = delete;
    transformer& operator=(const transformer&) = delete;

    const model::model_config& config() const noexcept;
    const rope_table& rope() const noexcept;
    /// The compute stream (non-blocking). Hooks may make it wait on copy events.
    cudaStream_t stream() const noexcept;
    /// Device copies of the RoPE table, `[position][head_dim/2]`.
    const float* rope_cos() const noexcept;
    const float* rope_sin() const noexcept;

    /// Layer-wise loading and saving hook in here: `hook(l, written)` runs on the host once
    /// layer l's work is queued up to its projections, before layer l's K/V is appended or
    /// read. `written` completes when layer l-1's new K/V is in the pool (empty for l = 0).
    /// The fence it returns, when layer l's history is resident: the compute stream waits
    /// on it (an event: the host does not wait).
    using layer_hook = std::function<fence(int layer, const fence& written)>;
    /// As model::transformer::forward, with `kv.pool` in GPU memory holding the model's dtype.
    /// Returns when the logits are on the host.
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits, const layer_hook& before_layer = {});

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

}  // namespace cachedattn::cuda
