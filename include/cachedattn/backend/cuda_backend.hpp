#pragma once
/// @file
/// @brief The cuda backend: the same model as the cpu backend (same seed, same weights, rounded
/// to f16/bf16) on the GPU, over a device tier whose pool is HBM. Needs the cachedattn::cuda
/// target (built when CMake finds nvcc); the engine, hierarchy and policies are unchanged.
///
///     backend::cuda_backend b(cfg_f16, seed);
///     H h({.tiers = {device_tier::config{.capacity_bytes = hbm, .memory = cuda::device_memory()},
///                    host, file}}, b.geometry(), b.weights_id());
///     engine eng(h, b);
#include <functional>
#include <type_traits>
#include <utility>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/cuda/runtime.hpp"
#include "cachedattn/cuda/transformer.hpp"
#include "cachedattn/model/weights.hpp"

namespace cachedattn::backend {

class cuda_backend {
public:
    static constexpr std::string_view name = "cuda";

    explicit cuda_backend(const model::model_config& c, std::uint64_t seed = 1, cuda::transformer_options o = {})
        : identity_(model::weights_identity(c, seed)), model_(c, seed, o) {}
    /// Given host weights (e.g. model::load_hf_checkpoint's, with `c.type` set to f16 or bf16),
    /// rounded to `c.type` on upload. `identity` as for backend::cpu_backend; the fingerprint
    /// also holds the geometry's dtype, so f32 KV of the same checkpoint is never mixed in.
    cuda_backend(const model::model_config& c, const model::weights& w, std::uint64_t identity,
                 cuda::transformer_options o = {})
        : identity_(identity), model_(c, w, o) {}

    model_geometry geometry() const { return model_.config().geometry(); }
    std::uint64_t weights_id() const noexcept { return identity_; }
    int vocab() const noexcept { return model_.config().vocab; }
    std::int64_t context_window() const noexcept { return model_.config().context_window; }
    const rope_table& rope() const noexcept { return model_.rope(); }
    cuda::transformer& model() noexcept { return model_; }

    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits) {
        model_.forward(kv, tokens, keys_pre_rope, logits);
    }
    /// With the engine's per-layer hook (layer-wise pre-loading and saving): `before_layer(l,
    /// written)` gets the event of layer l-1's new K/V (for the saver to wait on off this
    /// thread) and may return the fence of layer l's load, which the compute stream waits on.
    template <class BeforeLayer>
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits, BeforeLayer&& before_layer) {
        model_.forward(kv, tokens, keys_pre_rope, logits, [&](int l, const fence& written) -> fence {
            if constexpr (std::is_invocable_r_v<fence, BeforeLayer&, int, const fence&>) {
                return before_layer(l, written);
            } else {  // a hook that knows nothing of fences: the layer must be written for it
                wait(written);
                if constexpr (std::is_void_v<std::invoke_result_t<BeforeLayer&, int>>) {
                    before_layer(l);
                    return {};
                } else {
                    return before_layer(l);
                }
            }
        });
    }

private:
    std::uint64_t identity_;
    cuda::transformer model_;
};
static_assert(model_backend<cuda_backend>);

}  // namespace cachedattn::backend
