// The cpu reference model, compiled once (see cachedattn/common_stacks.hpp).
#define CACHEDATTN_NO_EXTERN_STACKS
#include "cachedattn/backend/cpu_backend.hpp"

template class cachedattn::model::transformer<cachedattn::model::simd_ops>;
template class cachedattn::backend::basic_cpu_backend<cachedattn::model::simd_ops>;
