// The transformer's small kernels: KV append (with RoPE for the coupled mode), RoPE in place,
// embedding, RMSNorm, SwiGLU, and the generators of weights and test data.
#include <cmath>

#include "cachedattn/cuda/kernels.hpp"
#include "common.cuh"

namespace cachedattn::cuda::kernels {
namespace {

using detail::elem;

template <class T>
__global__ void append_kv_kernel(append_args a) {
    const int half = a.head_dim / 2;
    const int chunks = half / 8;
    const std::int64_t total = static_cast<std::int64_t>(a.n) * a.kv_heads * chunks;
    for (std::int64_t it = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; it < total;
         it += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const int c = static_cast<int>(it % chunks), h = static_cast<int>((it / chunks) % a.kv_heads);
        const int i = static_cast<int>(it / (chunks * a.kv_heads));
        const std::int64_t pos = a.base + i, slot = a.first_offset + pos;
        const std::size_t in = (static_cast<std::size_t>(i) * a.kv_heads + h) * a.head_dim + c * 8;
        T* blk = static_cast<T*>(a.pool) + static_cast<std::size_t>(a.table[slot / a.block_tokens]) * a.block_elems;
        const std::size_t head_stride = static_cast<std::size_t>(a.block_tokens) * a.head_dim;
        const std::size_t row = static_cast<std::size_t>(slot % a.block_tokens) * a.head_dim + c * 8;
        T* kd = blk + (static_cast<std::size_t>(a.layer * 2) * a.kv_heads + h) * head_stride + row;
        T* vd = blk + (static_cast<std::size_t>(a.layer * 2 + 1) * a.kv_heads + h) * head_stride + row;
        float lo[8], hi[8];
        detail::load8(static_cast<const T*>(a.k) + in, lo);
        detail::load8(static_cast<const T*>(a.k) + in + half, hi);
        if (!a.keys_pre_rope) {
            const std::size_t r = static_cast<std::size_t>(pos) * half + c * 8;
            detail::rotate8(lo, hi, a.rope_cos + r, a.rope_sin + r);
        }
        detail::store8(kd, lo);
        detail::store8(kd + half, hi);
        detail::load8(static_cast<const T*>(a.v) + in, lo);
        detail::load8(static_cast<const T*>(a.v) + in + half, hi);
        detail::store8(vd, lo);
        detail::store8(vd + half, hi);
    }
}

template <class T>
__global__ void rope_kernel(T* x, std::int64_t n, int heads, int head_dim, std::int64_t base, const float* cs,
                            const float* sn) {
    const int half = head_dim / 2, chunks = half / 8;
    const std::int64_t total = n * heads * chunks;
    for (std::int64_t it = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; it < total;
         it += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const int c = static_cast<int>(it % chunks);
        const std::int64_t row = it / chunks, i = row / heads;
        T* p = x + static_cast<std::size_t>(row) * head_dim + c * 8;
        float lo[8], hi[8];
        detail::load8(p, lo);
        detail::load8(p + half, hi);
        const std::size_t r = static_cast<std::size_t>(base + i) * half + c * 8;
        detail::rotate8(lo, hi, cs + r, sn + r);
        detail::store8(p, lo);
        detail::store8(p + half, hi);
    }
}

template <class T>
__global__ void embedding_kernel(const std::int32_t* tokens, std::int64_t n, const T* table, int dim, float* out) {
    const std::int64_t i = blockIdx.x;
    const T* row = table + static_cast<std::size_t>(tokens[i]) * dim;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) out[i * dim + d] = elem<T>::to(row[d]);
}

template <class T>
__global__ void rmsnorm_kernel(const float* x, const float* w, T* out, int dim, float eps) {
    const std::int64_t i = blockIdx.x;
    const float* xi = x + i * dim;
    float ss = 0.f;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) ss += xi[d] * xi[d];
    __shared__ float part[32];
    for (int off = 16; off > 0; off /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f;
        for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float r = rsqrtf(part[0] / static_cast<float>(dim) + eps);
    for (int d = threadIdx.x; d < dim; d += blockDim.x) out[i * dim + d] = elem<T>::from(xi[d] * r * w[d]);
}

template <class T>
__global__ void swiglu_kernel(const T* gate, const T* up, T* out, std::int64_t n) {
    for (std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; j < n;
         j += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const float gv = elem<T>::to(gate[j]);
        out[j] = elem<T>::from(gv / (1.f + __expf(-gv)) * elem<T>::to(up[j]));
    }
}

__device__ __forceinline__ std::uint64_t splitmix_mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

template <class T>
__global__ void fill_uniform_kernel(T* out, std::size_t n, std::uint64_t state, float scale, float offset) {
    for (std::size_t j = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; j < n;
         j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
        // model::weights::random draws element j as the (j+1)-th step of a splitmix64 stream.
        const std::uint64_t z = splitmix_mix(state + (j + 1) * 0x9e3779b97f4a7c15ULL);
        const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
        out[j] = elem<T>::from(__fadd_rn(offset, __fmul_rn(scale, __fsub_rn(__fmul_rn(2.0f, u), 1.0f))));
    }
}

template <class T>
__global__ void fill_nan_kernel(T* out, std::size_t n) {
    for (std::size_t j = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; j < n;
         j += static_cast<std::size_t>(gridDim.x) * blockDim.x)
        out[j] = elem<T>::from(NAN);
}

int grid_for(std::int64_t work, int threads) {
    const std::int64_t g = (work + threads - 1) / threads;
    return static_cast<int>(g < 1 ? 1 : (g > 65536 ? 65536 : g));
}

template <class F>
void dispatch_all(dtype t, F&& f) {
    if (t == dtype::f32) f(float{});
    else detail::dispatch16(t, f, "cuda kernels");
}

}  // namespace

void append_kv(const append_args& a, cudaStream_t stream) {
    if (a.head_dim % 16 != 0) throw config_error("cuda append_kv: head_dim must be a multiple of 16");
    if (a.n <= 0) return;
    detail::dispatch16(a.type, [&](auto t) {
        using T = decltype(t);
        const std::int64_t work = static_cast<std::int64_t>(a.n) * a.kv_heads * (a.head_dim / 16);
        append_kv_kernel<T><<<grid_for(work, 256), 256, 0, stream>>>(a);
        detail::check_launch("append_kv_kernel");
    }, "cuda append_kv");
}

void rope_inplace(dtype type, void* x, std::int64_t n, int heads, int head_dim, std::int64_t base, const float* cos,
                  const float* sin, cudaStream_t stream) {
    if (head_dim % 16 != 0) throw config_error("cuda rope: head_dim must be a multiple of 16");
    if (n <= 0) return;
    detail::dispatch16(type, [&](auto t) {
        using T = decltype(t);
        rope_kernel<T><<<grid_for(n * heads * (head_dim / 16), 256), 256, 0, stream>>>(static_cast<T*>(x), n, heads,
                                                                                       head_dim, base, cos, sin);
        detail::check_launch("rope_kernel");
    }, "cuda rope");
}

void embedding(dtype type, const std::int32_t* tokens, std::int64_t n, const void* table, int dim, float* out,
               cudaStream_t stream) {
    if (n <= 0) return;
    dispatch_all(type, [&](auto t) {
        using T = decltype(t);
        embedding_kernel<T><<<static_cast<unsigned>(n), 256, 0, stream>>>(tokens, n, static_cast<const T*>(table),
                                                                           dim, out);
        detail::check_launch("embedding_kernel");
    });
}

void rmsnorm(dtype type, const float* x, const float* w, void* out, std::int64_t n, int dim, float eps,
             cudaStream_t stream) {
    if (n <= 0) return;
    dispatch_all(type, [&](auto t) {
        using T = decltype(t);
        rmsnorm_kernel<T><<<static_cast<unsigned>(n), 256, 0, stream>>>(x, w, static_cast<T*>(out), dim, eps);
        detail::check_launch("rmsnorm_kernel");
    });
}

void swiglu(dtype type, const void* gate, const void* up, void* out, std::int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    dispatch_all(type, [&](auto t) {
        using T = decltype(t);
        swiglu_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const T*>(gate), static_cast<const T*>(up),
                                                                static_cast<T*>(out), n);
        detail::check_launch("swiglu_kernel");
    });
}

void fill_uniform(dtype type, void* out, std::size_t n, std::uint64_t seed, std::uint64_t stream, float scale,
                  float offset, cudaStream_t s) {
    if (n == 0) return;
    const std::uint64_t state = seed * 0x9e3779b97f4a7c15ULL + stream * 0xd1b54a32d192ed03ULL;
    dispatch_all(type, [&](auto t) {
        using T = decltype(t);
        fill_uniform_kernel<T><<<grid_for(static_cast<std::int64_t>(n), 256), 256, 0, s>>>(static_cast<T*>(out), n,
                                                                                            state, scale, offset);
        detail::check_launch("fill_uniform_kernel");
    });
}

void fill_random(dtype type, void* out, std::size_t n, std::uint64_t seed, cudaStream_t s) {
    fill_uniform(type, out, n, seed, 0x5eedULL, 1.0f, 0.0f, s);
}

void fill_nan(dtype type, void* out, std::size_t n, cudaStream_t s) {
    if (n == 0) return;
    dispatch_all(type, [&](auto t) {
        using T = decltype(t);
        fill_nan_kernel<T><<<grid_for(static_cast<std::int64_t>(n), 256), 256, 0, s>>>(static_cast<T*>(out), n);
        detail::check_launch("fill_nan_kernel");
    });
}

}  // namespace cachedattn::cuda::kernels
