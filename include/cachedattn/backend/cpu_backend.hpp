#pragma once
/// @file
/// @brief The cpu backend: the fp32 reference transformer with real bytes in every tier. The
/// ground truth every other backend and kernel is tested against.
#include <bit>
#include <filesystem>
#include <type_traits>
#include <utility>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/core/fence.hpp"
#include "cachedattn/model/hf_checkpoint.hpp"
#include "cachedattn/model/transformer.hpp"

namespace cachedattn::backend {

template <class Ops = model::simd_ops>
class basic_cpu_backend {
public:
    static constexpr std::string_view name = "cpu";

    /// Random weights from `seed` (the seed is the weights' identity in the cache fingerprint).
    explicit basic_cpu_backend(const model::model_config& c, std::uint64_t seed = 1, model::exec_config e = {})
        : model_(c, model::weights::random(c, seed), e), identity_(model::weights_identity(c, seed)) {}

    /// Given weights (e.g. a loaded checkpoint: model/hf_checkpoint.hpp) with their `identity`
    /// for the cache fingerprint, which must differ whenever the weights do
    /// (model::checkpoint::identity does).
    basic_cpu_backend(const model::model_config& c, model::weights w, std::uint64_t identity, model::exec_config e = {})
        : model_(c, std::move(w), e), identity_(identity) {}

    /// The model of a Hugging Face checkpoint directory (model::load_hf_checkpoint: LLaMA,
    /// Mistral or Qwen2 safetensors, held as f32).
    static basic_cpu_backend from_checkpoint(const std::filesystem::path& dir, const model::hf_options& o = {},
                                             model::exec_config e = {}) {
        model::checkpoint ck = model::load_hf_checkpoint(dir, o);
        return basic_cpu_backend(ck.config.model, std::move(ck.weights), ck.identity, e);
    }

    model_geometry geometry() const { return model_.geometry(); }
    /// Identity of the weights for the cache fingerprint: for random weights, the seed and every
    /// shape field the geometry does not carry (so two models that differ only in dim or theta
    /// never share KV); for given weights, the identity they came with.
    std::uint64_t weights_id() const noexcept { return identity_; }
    int vocab() const noexcept { return model_.config().vocab; }
    std::int64_t context_window() const noexcept { return model_.config().context_window; }
    const rope_table& rope() const noexcept { return model_.rope(); }
    const model::transformer<Ops>& model() const noexcept { return model_; }

    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits) {
        model_.forward(kv, tokens, keys_pre_rope, logits);
    }
    /// The same with a hook run before each layer touches the KV (layer-wise pre-loading). A
    /// hook may return a fence for the layer's history (a pool that copies asynchronously):
    /// this thread waits on it, since here the host is the compute. The model writes each
    /// layer's KV before it returns, so the hook gets no fence for it.
    template <class BeforeLayer>
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits, BeforeLayer&& before_layer) {
        model_.forward(kv, tokens, keys_pre_rope, logits, [&](int l) {
            if constexpr (std::is_void_v<std::invoke_result_t<BeforeLayer&, int>>) before_layer(l);
            else wait(before_layer(l));
        });
    }

private:
    model::transformer<Ops> model_;
    std::uint64_t identity_;
};

using cpu_backend = basic_cpu_backend<>;
static_assert(model_backend<cpu_backend>);

}  // namespace cachedattn::backend
