#pragma once
/// @file
/// @brief The backend concept: what the engine needs from a model runtime (cpu, cuda, sim).
///
/// Contract. `forward(kv, tokens, keys_pre_rope, logits)` runs `tokens` after the `kv.tokens`
/// tokens already in the paged view, writes their K/V into it (keys before RoPE when
/// `keys_pre_rope`) and puts the last token's logits in `logits` (size `vocab()`). The engine
/// reserves room and commits tokens; a backend never allocates KV. `geometry()` and
/// `weights_id()` define the cache fingerprint; `rope()` is the table posenc policies use.
#include <concepts>
#include <cstdint>
#include <span>
#include <string_view>

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"

namespace cachedattn::backend {

template <class B>
concept model_backend = requires(B& b, const B& cb, const paged_kv_view<float>& kv,
                                 std::span<const token_id> toks, std::span<float> logits, bool pre) {
    { B::name } -> std::convertible_to<std::string_view>;
    { cb.geometry() } -> std::same_as<model_geometry>;
    { cb.weights_id() } -> std::same_as<std::uint64_t>;
    { cb.vocab() } -> std::same_as<int>;
    { cb.context_window() } -> std::same_as<std::int64_t>;
    { cb.rope() } -> std::same_as<const rope_table&>;
    b.forward(kv, toks, pre, logits);
};

}  // namespace cachedattn::backend
