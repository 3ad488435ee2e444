#pragma once
/// @file
/// @brief Named stacks: the KV cache systems the paper compares, ready to use, and the
/// templates to compose your own. A stack is a `kv_hierarchy` type; run it with
/// `engine<Stack, Backend>`. Every name has a simulated twin under `stacks::sim` for
/// sim::sim_backend (tiers that count bytes at the paper's scale and hold none).
///
///     cachedattn::stacks::paper::config c;
///     c.device().capacity_bytes = 1 << 20;  // HBM
///     c.host().capacity_bytes = 4 << 20;    // DRAM
///     c.ssd() = {"cache-dir", 64 << 20};    // SSD
///     cachedattn::stacks::paper kv(c, model.geometry(), model.weights_id());
///     cachedattn::engine engine(kv, model);
#include "cachedattn/eviction/lru.hpp"
#include "cachedattn/eviction/scheduler_aware.hpp"
#include "cachedattn/hierarchy/kv_hierarchy.hpp"
#include "cachedattn/posenc/decoupled_rope.hpp"
#include "cachedattn/prefetch/none.hpp"
#include "cachedattn/prefetch/scheduler_aware.hpp"
#include "cachedattn/saving/async_save.hpp"
#include "cachedattn/saving/discard.hpp"
#include "cachedattn/tier/accounting_tier.hpp"
#include "cachedattn/tier/device_tier.hpp"
#include "cachedattn/tier/file_tier.hpp"
#include "cachedattn/tier/host_tier.hpp"
#include "cachedattn/truncation/drop_oldest.hpp"

namespace cachedattn::stacks {

/// Device memory, host DRAM, SSD files: the paper's hierarchy (§3.1), holding real KV.
using three_tiers = tiers<tier::device_tier, tier::host_tier, tier::file_tier>;

/// @brief Any policies over the three real tiers.
/// @tparam Evict    eviction policy, one instance per tier (eviction/)
/// @tparam Prefetch what moves up before its turn (prefetch/); default none
/// @tparam Truncate what overflow drops (truncation/); default the oldest half
/// @tparam PosEnc   keys before or after RoPE (posenc/); default before (decoupled)
/// @tparam Save     when new KV is copied out (saving/); default the paper's asynchronous saving
template <class Evict, class Prefetch = prefetch::none, class Truncate = truncation::drop_oldest,
          class PosEnc = posenc::decoupled_rope, class Save = saving::async_save>
using three_tier = kv_hierarchy<three_tiers, Evict, Prefetch, Truncate, PosEnc, Save>;

/// CachedAttention as the paper builds it: scheduler-aware eviction and prefetch (§3.4), keys
/// stored before RoPE with token truncation (§3.5), asynchronous saving (§3.3).
using paper = three_tier<eviction::scheduler_aware, prefetch::scheduler_aware>;
/// The paper's main baseline policy: LRU in every tier, no prefetch, otherwise the same.
using lru = three_tier<eviction::lru>;
/// The paper's "RE" baseline: nothing kept across turns; every turn recomputes the history.
using recompute = three_tier<eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope,
                             saving::discard>;

namespace sim {
/// The same three tiers, counting bytes only (the simulator's HBM, DRAM and SSD).
using three_tiers = tiers<tier::sim_device_tier, tier::sim_host_tier, tier::sim_file_tier>;
/// @brief Any policies over the simulated tiers (parameters as stacks::three_tier).
template <class Evict, class Prefetch = prefetch::none, class Truncate = truncation::drop_oldest,
          class PosEnc = posenc::decoupled_rope, class Save = saving::async_save>
using three_tier = kv_hierarchy<three_tiers, Evict, Prefetch, Truncate, PosEnc, Save>;
using paper = three_tier<eviction::scheduler_aware, prefetch::scheduler_aware>;
using lru = three_tier<eviction::lru>;
using recompute = three_tier<eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope,
                             saving::discard>;
}  // namespace sim

}  // namespace cachedattn::stacks
