#pragma once
// Helpers of the GPU tests: transfers, 16-bit conversions, paged pools with scrambled block
// tables, and f64 references.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cachedattn/cachedattn.hpp>
#include <cachedattn/cuda/kernels.hpp>
#include <cachedattn/cuda/runtime.hpp>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace cudatest {
namespace ca = cachedattn;
namespace cu = cachedattn::cuda;
namespace k = cachedattn::cuda::kernels;

inline float to_float(ca::dtype t, std::uint16_t bits) {
    if (t == ca::dtype::f16) {
        __half_raw r;
        r.x = bits;
        return __half2float(__half(r));
    }
    __nv_bfloat16_raw r;
    r.x = bits;
    return __bfloat162float(__nv_bfloat16(r));
}

/// A device buffer of `n` elements of `t` read back as floats.
inline std::vector<float> download(ca::dtype t, const void* d, std::size_t n) {
    std::vector<float> out(n);
    if (t == ca::dtype::f32) {
        cu::check(cudaMemcpy(out.data(), d, n * 4, cudaMemcpyDeviceToHost), "download");
        return out;
    }
    std::vector<std::uint16_t> raw(n);
    cu::check(cudaMemcpy(raw.data(), d, n * 2, cudaMemcpyDeviceToHost), "download");
    for (std::size_t i = 0; i < n; ++i) out[i] = to_float(t, raw[i]);
    return out;
}

template <class T>
cu::device_buffer upload(const std::vector<T>& v) {
    cu::device_buffer b(v.size() * sizeof(T));
    cu::check(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
    return b;
}

/// Random device data of `n` elements (never zeros), fresh per seed.
inline cu::device_buffer random_buffer(ca::dtype t, std::size_t n, std::uint64_t seed) {
    cu::device_buffer b(n * ca::size_of(t));
    k::fill_random(t, b.get(), n, seed, nullptr);
    cu::check(cudaDeviceSynchronize(), "fill_random");
    return b;
}

/// ||a - ref|| / ||ref|| over all elements; NaN anywhere fails (returns +inf).
inline double rel_l2(const std::vector<float>& a, const std::vector<double>& ref) {
    REQUIRE(a.size() == ref.size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

/// Rotates `x[0, hd)` (f64) to `pos` with the table's cos/sin.
inline void rotate(std::vector<double>& x, std::size_t off, int hd, const ca::rope_table& rope, std::int64_t pos) {
    const int half = hd / 2;
    for (int i = 0; i < half; ++i) {
        const double c = rope.cos_table()[static_cast<std::size_t>(pos) * half + i];
        const double s = rope.sin_table()[static_cast<std::size_t>(pos) * half + i];
        const double a = x[off + i], b = x[off + i + half];
        x[off + i] = a * c - b * s;
        x[off + i + half] = a * s + b * c;
    }
}

/// A scrambled block table of `blocks` distinct ids below `pool_blocks`.
inline std::vector<std::int32_t> scrambled_table(std::size_t blocks, std::size_t pool_blocks, std::mt19937_64& rng) {
    std::vector<std::int32_t> ids(pool_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    ids.resize(blocks);
    return ids;
}

}  // namespace cudatest
