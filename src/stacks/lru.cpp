// stacks::lru and stacks::sim::lru with their engines, compiled once (cachedattn/common_stacks.hpp).
#define CACHEDATTN_NO_EXTERN_STACKS
#include "cachedattn/common_stacks.hpp"

namespace cachedattn {
template class kv_hierarchy<stacks::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;
template class engine<stacks::lru, backend::cpu_backend>;
template class kv_hierarchy<stacks::sim::three_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope, saving::async_save>;
template class engine<stacks::sim::lru, sim::sim_backend>;
}  // namespace cachedattn
