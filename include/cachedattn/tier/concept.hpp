#pragma once
/// @file
/// @brief The tier concept: a place where whole sessions' KV lives, with a byte capacity.
///
/// Contract. A tier stores `kv_entry`s keyed by session and charges each a number of bytes
/// (`charge(meta)`, known before the bytes move) against a fixed capacity it never exceeds.
/// - `put(e)`: pre `!contains(s)` and `charge(e.meta) <= free_bytes()`; post `contains(s)`.
/// - `take(s)`: pre `contains(s)`; post `!contains(s)`; returns the entry, or nullopt when the
///   stored copy turned out damaged (a miss, never wrong data).
/// - `erase(s)`: pre `contains(s)`; post `!contains(s)`.
/// - `meta(s)`: what is stored for s (tokens, offsets), without reading the KV bytes.
/// The device tier (tier 0) also models `device_tier_like`: the engine computes in place in it.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/kv_entry.hpp"

namespace cachedattn::tier {

/// @brief What every tier is built from besides its own config.
struct tier_init {
    model_geometry geometry;
    std::uint64_t fingerprint = 0;  ///< identity of the cache's meaning (see io::cache_fingerprint)
};

template <class T>
concept tier =
    requires { typename T::config; } &&
    std::constructible_from<T, const typename T::config&, const tier_init&> &&
    requires(T& t, const T& ct, session_id s, kv_entry&& e, const kv_meta& m) {
        { T::name } -> std::convertible_to<std::string_view>;
        { ct.capacity_bytes() } -> std::same_as<std::size_t>;
        { ct.used_bytes() } -> std::same_as<std::size_t>;
        { ct.free_bytes() } -> std::same_as<std::size_t>;
        { ct.contains(s) } -> std::same_as<bool>;
        { ct.sessions() } -> std::same_as<std::size_t>;
        { ct.charge(m) } -> std::same_as<std::size_t>;
        { ct.stored_bytes(s) } -> std::same_as<std::size_t>;
        { ct.meta(s) } -> std::same_as<const kv_meta&>;
        { t.put(std::move(e)) } -> std::same_as<void>;
        { t.take(s) } -> std::same_as<std::optional<kv_entry>>;
        { t.erase(s) } -> std::same_as<void>;
    };

/// @brief A tier the model computes in: sessions are block tables over a block pool, grown
/// before a turn, written in place through a paged view, truncated from the front.
template <class T>
concept device_tier_like =
    tier<T> && requires(T& t, const T& ct, session_id s, std::size_t n, std::span<const token_id> toks) {
        t.create(s);                                             // empty resident entry
        { ct.reserve_charge(s, n) } -> std::same_as<std::size_t>;  // extra bytes to hold n tokens
        t.reserve(s, n);                                         // pre: reserve_charge <= free
        { t.view(s) } -> std::same_as<paged_kv_view<float>>;
        t.commit(s, toks);      // the next toks.size() tokens' KV has been written via view()
        t.truncate_front(s, n);  // drop the oldest n tokens (whole blocks + offset)
        t.erase_tokens(s, n, n);  // drop tokens [first, first + n): attention sinks keep a prefix
        t.shrink_to_fit(s);      // release reserved blocks beyond the stored tokens
    };

/// @brief A tier that counts bytes and holds no KV (`T::accounting_only`): the simulator's
/// tiers. A simulated backend runs only on such tiers and a real backend never does.
template <class T>
concept accounting_tier = tier<T> && requires {
    requires T::accounting_only;
};

/// @brief A tier several processes share (tier::redis_tier): a session one process stored
/// can be found by another. `adopt(s)` looks `s` up in the shared store and holds it if found;
/// `held()` lists what the tier holds, so a hierarchy built over it knows those sessions.
template <class T>
concept shared_tier = tier<T> && requires(T& t, const T& ct, session_id s) {
    { t.adopt(s) } -> std::same_as<bool>;
    { ct.held() } -> std::same_as<std::vector<session_id>>;
};

}  // namespace cachedattn::tier
