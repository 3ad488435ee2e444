#pragma once
/// @file
/// @brief Saving policies: when a turn's new KV is copied from the device tier to host memory.
///
/// The paper saves asynchronously (§3.3): each layer's new KV is copied out as soon as it
/// exists (prefill: per layer; decode: per step), only the new tokens, on an I/O stream, and
/// unfinished copies drain while the next job runs. Its baseline saves synchronously at the
/// end of the job. The paper's RE baseline keeps nothing (`discard`). A fourth choice keeps the KV only in the device tier (write-back): a session
/// is copied out when eviction demotes it, on the critical path of whoever needs the room.
///
/// A policy is part of the stack type (kv_hierarchy's last parameter) and owns its behaviour:
/// `P::writer<Device>` is built by the engine from a `save_context` and told about each turn
/// (`begin`, each prefilled layer, each decoded token, `end`); what it copies and when is the
/// policy's business. `P::mode` names the behaviour for the simulator, which charges its cost
/// instead of running it.
#include <concepts>
#include <cstddef>
#include <memory>
#include <string_view>

#include "cachedattn/core/fence.hpp"
#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/hierarchy/saved_copies.hpp"
#include "cachedattn/engine/turn.hpp"

namespace cachedattn::saving {

/// What a saving policy's writer is built from: the device tier it copies from and the table
/// of host copies it fills.
template <class Device>
struct save_context {
    Device& device;
    saved_copies& copies;
    const model_geometry& geometry;
};

enum class save_mode {
    write_back,   ///< no copy until eviction demotes the session
    at_turn_end,  ///< copy the turn's new KV when the turn ends, blocking the next job
    layer_wise,   ///< copy each layer's / step's new KV as it is produced, on an I/O stream
    discard,      ///< keep nothing across turns: the KV is dropped when the turn ends (recompute)
};

/// The calls a writer takes, in order, for one retained turn: `begin` once the session's device
/// blocks are reserved (kv_len cached tokens; `loaded`: the host entry being loaded, if any),
/// `layer_done` for each prefilled layer (`end` = tokens in the entry after the prefill; a
/// writer may also take a fourth argument, the `fence` that completes when the backend has
/// written the layer, and wait on it off the engine's thread; otherwise the engine waits),
/// `token_done` for each decoded token fed back, `end` when the turn's tokens are all on the
/// device. `cancel` forgets a failed turn; `synchronize` waits for every copy queued.
template <class W>
concept turn_writer = requires(W& w, session_id s, std::size_t n, std::shared_ptr<kv_entry> loaded, int layer,
                               turn_metrics& m) {
    w.begin(s, n, loaded, m);
    w.layer_done(layer, n, m);
    w.token_done(n, m);
    w.end(m);
    w.cancel();
    w.synchronize();
};

/// A saving policy names its mode and brings its writer.
template <class S>
concept saving_policy = requires {
    { S::name } -> std::convertible_to<std::string_view>;
    { S::mode } -> std::convertible_to<save_mode>;
    typename S::template writer<struct any_device>;
};

}  // namespace cachedattn::saving
