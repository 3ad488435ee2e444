#pragma once
/// @file
/// @brief The inner loops of the CPU reference, in two flavours with one interface:
/// `simd_ops` (16 independent accumulators, which compilers turn into vector code without
/// -ffast-math) and `scalar_ops` (the plain loop, kept as the baseline the benchmark compares
/// against and as a second opinion in tests).
#include <cstddef>

namespace cachedattn::model {

struct scalar_ops {
    static constexpr const char* name = "scalar";
    static float dot(const float* a, const float* b, std::size_t n) noexcept {
        float acc = 0.0f;
        for (std::size_t i = 0; i < n; ++i) acc += a[i] * b[i];
        return acc;
    }
    /// y += a * x
    static void axpy(float a, const float* x, float* y, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i) y[i] += a * x[i];
    }
};

struct simd_ops {
    static constexpr const char* name = "simd";
    static float dot(const float* a, const float* b, std::size_t n) noexcept {
        constexpr std::size_t lanes = 16;
        float acc[lanes] = {};
        std::size_t i = 0;
        for (; i + lanes <= n; i += lanes)
            for (std::size_t j = 0; j < lanes; ++j) acc[j] += a[i + j] * b[i + j];
        float tail = 0.0f;
        for (; i < n; ++i) tail += a[i] * b[i];
        // Pairwise tree: fixed order, so results are reproducible across runs and threads.
        for (std::size_t w = lanes / 2; w > 0; w /= 2)
            for (std::size_t j = 0; j < w; ++j) acc[j] += acc[j + w];
        return acc[0] + tail;
    }
    static void axpy(float a, const float* x, float* y, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i) y[i] += a * x[i];  // vectorises as is
    }
};

}  // namespace cachedattn::model
