// stacks::recompute and stacks::sim::recompute with their engines, compiled once (cachedattn/common_stacks.hpp).
#define CACHEDATTN_NO_EXTERN_STACKS
#include "cachedattn/common_stacks.hpp"

namespace cachedattn {
template class kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>;
template class engine<stacks::recompute, backend::cpu_backend>;
template class kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::discard>;
template class engine<stacks::sim::recompute, sim::sim_backend>;
}  // namespace cachedattn
