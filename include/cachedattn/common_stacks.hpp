#pragma once
/// @file
/// @brief The common stacks (the paper, LRU and recompute, real and simulated) and what runs
/// them (engine, cpu reference, simulator) in one include. They are compiled once, in the
/// library (cachedattn::stacks, src/stacks/): the extern declarations below stop every
/// translation unit that uses them from compiling the engine, the hierarchy and the cpu model
/// again, so a program using only these pays the parse, not the instantiation (docs/results.md,
/// compile times). Define CACHEDATTN_NO_EXTERN_STACKS to instantiate everything in place.
#include "cachedattn/backend/cpu_backend.hpp"
#include "cachedattn/engine/engine.hpp"
#include "cachedattn/sim/sim_backend.hpp"
#include "cachedattn/stacks.hpp"
#include "cachedattn/engine/run_trace.hpp"

#include <type_traits>

// Each stack's spelled-out type must stay equal to its alias in stacks.hpp (checked below).
#ifndef CACHEDATTN_NO_EXTERN_STACKS
namespace cachedattn {
extern template class model::transformer<model::simd_ops>;
extern template class backend::basic_cpu_backend<model::simd_ops>;
extern template class kv_hierarchy<stacks::three_tiers, eviction::scheduler_aware, prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;  // stacks::paper
extern template class engine<stacks::paper, backend::cpu_backend>;
extern template class kv_hierarchy<stacks::sim::three_tiers, eviction::scheduler_aware, prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;  // stacks::sim::paper
extern template class engine<stacks::sim::paper, sim::sim_backend>;
extern template class kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;  // stacks::lru
extern template class engine<stacks::lru, backend::cpu_backend>;
extern template class kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;  // stacks::sim::lru
extern template class engine<stacks::sim::lru, sim::sim_backend>;
extern template class kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>;  // stacks::recompute
extern template class engine<stacks::recompute, backend::cpu_backend>;
extern template class kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>;  // stacks::sim::recompute
extern template class engine<stacks::sim::recompute, sim::sim_backend>;
}  // namespace cachedattn
#endif

namespace cachedattn {
static_assert(std::is_same_v<stacks::paper, kv_hierarchy<stacks::three_tiers, eviction::scheduler_aware, prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>>);
static_assert(std::is_same_v<stacks::sim::paper, kv_hierarchy<stacks::sim::three_tiers, eviction::scheduler_aware, prefetch::scheduler_aware, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>>);
static_assert(std::is_same_v<stacks::lru, kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>>);
static_assert(std::is_same_v<stacks::sim::lru, kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>>);
static_assert(std::is_same_v<stacks::recompute, kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>>);
static_assert(std::is_same_v<stacks::sim::recompute, kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>>);
}  // namespace cachedattn
