#pragma once
/// @file
/// @brief The cpu backend: the fp32 reference transformer with real bytes in every tier. The
/// ground truth every other backend and kernel is tested against.
#include <bit>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/model/transformer.hpp"

namespace cachedattn::backend {

template <class Ops = model::simd_ops>
class basic_cpu_backend {
public:
    static constexpr std::string_view name = "cpu";

    /// Random weights from `seed` (the seed is the weights' identity in the cache fingerprint).
    explicit basic_cpu_backend(const model::model_config& c, std::uint64_t seed = 1, model::exec_config e = {})
        : model_(c, model::weights::random(c, seed), e) {}

    model_geometry geometry() const { return model_.geometry(); }
    /// Identity of the weights for the cache fingerprint: the seed and every shape field the
    /// geometry does not carry (so two models that differ only in dim or theta never share KV).
    std::uint64_t weights_id() const noexcept { return model::weights_identity(model_.config(), model_.weights_id()); }
    int vocab() const noexcept { return model_.config().vocab; }
    std::int64_t context_window() const noexcept { return model_.config().context_window; }
    const rope_table& rope() const noexcept { return model_.rope(); }
    const model::transformer<Ops>& model() const noexcept { return model_; }

    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits) {
        model_.forward(kv, tokens, keys_pre_rope, logits);
    }
    /// The same with a hook run before each layer touches the KV (layer-wise pre-loading).
    template <class BeforeLayer>
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits, BeforeLayer&& before_layer) {
        model_.forward(kv, tokens, keys_pre_rope, logits, std::forward<BeforeLayer>(before_layer));
    }

private:
    model::transformer<Ops> model_;
};

using cpu_backend = basic_cpu_backend<>;
static_assert(model_backend<cpu_backend>);

}  // namespace cachedattn::backend
