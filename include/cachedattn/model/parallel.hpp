#pragma once
/// @file
/// @brief `parallel_for` over the machine's cores (OpenMP when the build enables it, a plain
/// loop otherwise). Each index is handled by exactly one thread, so results do not depend on
/// the thread count.
#include <cstdint>
#include <thread>

namespace cachedattn::model {

inline int default_threads() noexcept {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

/// Calls `f(i)` for i in [0, n). `f` must not throw.
template <class F>
void parallel_for(std::int64_t n, int threads, F&& f) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n > 1)
    for (std::int64_t i = 0; i < n; ++i) f(i);
#else
    (void)threads;
    for (std::int64_t i = 0; i < n; ++i) f(i);
#endif
}

}  // namespace cachedattn::model
