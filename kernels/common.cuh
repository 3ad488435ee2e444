#pragma once
// Shared by the .cu files: error checks, element conversions, 16-byte vector loads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cachedattn/core/error.hpp"

namespace cachedattn::cuda::kernels::detail {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}
/// After a launch: a bad configuration shows up here, a fault at the next synchronisation.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

template <class T>
struct elem;
template <>
struct elem<float> {
    static __device__ __forceinline__ float to(float x) { return x; }
    static __device__ __forceinline__ float from(float x) { return x; }
};
template <>
struct elem<__half> {
    static __device__ __forceinline__ float to(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half from(float x) { return __float2half_rn(x); }
    static __device__ __forceinline__ std::uint32_t pack(float lo, float hi) {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<std::uint32_t*>(&h);
    }
};
template <>
struct elem<__nv_bfloat16> {
    static __device__ __forceinline__ float to(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ __nv_bfloat16 from(float x) { return __float2bfloat16_rn(x); }
    static __device__ __forceinline__ std::uint32_t pack(float lo, float hi) {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<std::uint32_t*>(&h);
    }
};

/// Eight 16-bit elements through one 16-byte access (p 16-byte aligned).
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&f)[8]) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const T* h = reinterpret_cast<const T*>(&u);
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = elem<T>::to(h[j]);
}
template <class T>
__device__ __forceinline__ void store8(T* p, const float (&f)[8]) {
    uint4 u;
    T* h = reinterpret_cast<T*>(&u);
#pragma unroll
    for (int j = 0; j < 8; ++j) h[j] = elem<T>::from(f[j]);
    *reinterpret_cast<uint4*>(p) = u;
}
/// RoPE ("rotate half") of the pair runs lo = x[d..d+7], hi = x[d+half..d+half+7] at a
/// position whose cos/sin rows start at c, s (f32, 32-byte aligned runs of 8).
__device__ __forceinline__ void rotate8(float (&lo)[8], float (&hi)[8], const float* c, const float* s) {
    const float4 c0 = *reinterpret_cast<const float4*>(c), c1 = *reinterpret_cast<const float4*>(c + 4);
    const float4 s0 = *reinterpret_cast<const float4*>(s), s1 = *reinterpret_cast<const float4*>(s + 4);
    const float cs[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
    const float sn[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const float a = lo[j], b = hi[j];
        lo[j] = a * cs[j] - b * sn[j];
        hi[j] = a * sn[j] + b * cs[j];
    }
}

/// Host-side dispatch on the runtime dtype to a template over the CUDA element type.
template <class F>
void dispatch16(dtype t, F&& f, const char* what) {
    switch (t) {
        case dtype::f16: f(__half{}); return;
        case dtype::bf16: f(__nv_bfloat16{}); return;
        default: throw config_error(std::string(what) + ": the CUDA kernels take f16 or bf16, not f32");
    }
}

}  // namespace cachedattn::cuda::kernels::detail
