#pragma once
/// @file
/// @brief The positional encoding policy concept: what is stored for K, and whether a cache
/// whose tokens moved to new positions (after truncation) is still valid.
///
/// Contract.
/// - `P::keys_pre_rope`: true when K is stored before RoPE and rotated at attention time with
///   the current positions (the model reads this to decide where RoPE is applied to K).
/// - `P::tag`: a small number folded into the cache fingerprint, so a cache written under one
///   encoding is foreign under another.
/// - `rebase(kv, first, shift, rope)`: `shift` tokens were removed before view position
///   `first` (0 for oldest-first truncation; the sink length for attention sinks), so tokens
///   from `first` on now sit `shift` positions earlier. Make the stored keys valid for their
///   new positions and return true, or return false when that is impossible (the engine then
///   recomputes the kept history). Post (true): reading `kv` at positions 0..kv.tokens-1 is
///   correct.
#include <concepts>
#include <cstdint>
#include <string_view>

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"

namespace cachedattn::posenc {

template <class P>
concept positional_encoding =
    requires { typename P::config; } && std::constructible_from<P, const typename P::config&> &&
    requires(const P& cp, paged_kv_view<float> kv, std::int64_t first, std::int64_t shift, const rope_table& rope) {
        { P::name } -> std::convertible_to<std::string_view>;
        { P::keys_pre_rope } -> std::convertible_to<bool>;
        { P::tag } -> std::convertible_to<std::uint8_t>;
        { cp.rebase(kv, first, shift, rope) } -> std::same_as<bool>;
    };

}  // namespace cachedattn::posenc
