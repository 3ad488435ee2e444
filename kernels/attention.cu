// Fused paged attention with RoPE applied as operands are read (FlashAttention-2 style online
// softmax, register-resident output, mma.sync m16n8k16 with f32 accumulation).
//
// One CTA = 4 or 8 warps of 16 or 32 query rows each (or 4 warps sharing 16 rows and splitting
// the keys) of one (sequence, kv head, key split). A row is a (new token, query head of this kv
// head's group) pair, so GQA groups share every K/V tile and
// decode (one token, `group` heads) still feeds the tensor cores. Per 64-key tile: K is read
// and V are copied from their pool blocks into shared memory with cp.async (the next tile is in
// flight while this one is computed); keys stored pre-RoPE are rotated in shared memory at their
// positions once they land; fragments come from ldmatrix (.trans for V, so no transposed copy
// exists). Shared rows are padded by 8 elements so ldmatrix hits 32 different banks.
#include <cfloat>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

#include "cachedattn/cuda/kernels.hpp"
#include "common.cuh"

namespace cachedattn::cuda::kernels {
namespace {

using detail::elem;

constexpr int kBN = 64;  // keys per tile
constexpr int kPad = 8;

template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                         std::uint32_t b1) {
    if constexpr (std::is_same_v<T, __half>) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

/// Double-buffered K and V tiles, both row-major [key][head_dim] (V is transposed on the way
/// into the PV product by ldmatrix.trans, not in memory).
template <class T, int HD>
struct alignas(16) kv_smem {
    T k[2][kBN][HD + kPad];
    T v[2][kBN][HD + kPad];
};
/// cos/sin rows of the tile's key positions, prefetched while the previous tile computes: only
/// in kernels that rotate stored keys (32 KB at head_dim 128 that would otherwise cost a CTA).
template <int HD>
struct alignas(16) rope_smem {
    float cs[kBN][HD / 2];
    float sn[kBN][HD / 2];
};
/// The CTA's rotated query rows, read by ldmatrix (kernels whose warps take two row tiles:
/// their Q fragments would not fit in registers beside twice the accumulators).
template <class T, int HD, int R>
struct alignas(16) q_smem {
    T q[R][HD + kPad];
};
template <int>
struct no_smem {};
template <class T, int HD, bool RopeK, int QRows>
struct smem_layout : kv_smem<T, HD>,
                     std::conditional_t<RopeK, rope_smem<HD>, no_smem<0>>,
                     std::conditional_t<(QRows > 0), q_smem<T, HD, QRows>, no_smem<1>> {};

/// Keys each split of a sequence's `keys` covers: an equal share rounded up to whole tiles
/// (split s takes [s * share, (s + 1) * share)). The attention, decode and merge kernels agree
/// on it.
__device__ __forceinline__ std::int64_t keys_per_split(std::int64_t keys, int splits) {
    return ((keys + splits - 1) / splits + kBN - 1) / kBN * kBN;
}

__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/// 16 bytes global -> shared without registers; `bytes` 0 writes zeros (keys past the end).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int bytes) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* smem) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/// kWarps warps of 16 * MT query rows each. MT = 1: Q fragments live in registers; 8 warps for
/// prefill (each K/V tile serves 128 rows), 4 when the rows fit in 64 (decode, short
/// prefills). MT = 2 (FlashAttention-2's shape: 4 warps x 32 rows): Q stays in shared memory
/// and every K/V fragment read from shared memory feeds two row tiles, halving shared-memory
/// traffic per MMA. RopeK: stored keys are rotated as they land. KeySplit (decode with up to
/// 16 query rows per KV head, i.e. GQA): the warps share one row tile and split each K/V tile's
/// keys four ways, so a tile's MMAs run on every warp instead of one; the warps' softmax
/// states are merged in shared memory at the end.
template <class T, int HD, int kWarps, int MT, bool RopeK, bool KeySplit = false>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(attention_args a) {
    static_assert(!KeySplit || MT == 1);
    constexpr int kWR = 16 * MT;                          // query rows per warp
    constexpr int kBM = KeySplit ? 16 : kWR * kWarps;     // query rows per CTA
    constexpr int kKW = KeySplit ? kBN / kWarps : kBN;    // keys of each tile a warp takes
    static_assert(kKW % 16 == 0);
    constexpr bool kQSmem = MT > 1;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    auto& sm = *reinterpret_cast<smem_layout<T, HD, RopeK, kQSmem ? kBM : 0>*>(smem_raw);
    constexpr int half = HD / 2;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = blockIdx.y;
    const int b = blockIdx.z / a.splits, split = blockIdx.z % a.splits;
    const attn_seq seq = a.seqs[b];
    const int group = a.heads / a.kv_heads;
    const int rows = seq.n * group;
    const int m0 = blockIdx.x * kBM;
    if (m0 >= rows) return;

    const std::int64_t keys = seq.base + seq.n;
    // This split's key range, in whole tiles.
    const std::int64_t per_split = keys_per_split(keys, a.splits);
    const std::int64_t kbeg = split * per_split;
    const std::int64_t kend = min(keys, kbeg + per_split);
    // The last row of the tile sees the most keys.
    const int last_row = min(rows, m0 + kBM) - 1;
    const std::int64_t kstop = min(kend, seq.base + last_row / group + 1);

    const T* pool = static_cast<const T*>(a.pool);
    const std::size_t head_stride = static_cast<std::size_t>(a.block_tokens) * HD;
    const std::size_t v_offset = static_cast<std::size_t>(a.kv_heads) * head_stride;  // V follows K in a layer
    const std::size_t layer_head = (static_cast<std::size_t>(a.layer) * 2 * a.kv_heads + g) * head_stride;

    // Issues the copies of tile `kt` into buffer `buf` (K and V, zeros past kstop).
    auto load_tile = [&](std::int64_t kt, int buf) {
        for (int it = tid; it < kBN * (HD / 8); it += kWarps * 32) {
            const int j = it / (HD / 8), d0 = (it % (HD / 8)) * 8;
            const std::int64_t t = kt + j;
            const T* src = pool;
            int bytes = 0;
            if (t < kstop) {
                const std::int64_t slot = seq.first_offset + t;
                src = pool + static_cast<std::size_t>(seq.table[slot / a.block_tokens]) * a.block_elems + layer_head +
                      static_cast<std::size_t>(slot % a.block_tokens) * HD + d0;
                bytes = 16;
            }
            cp_async16(&sm.k[buf][j][d0], src, bytes);
            cp_async16(&sm.v[buf][j][d0], bytes ? src + v_offset : src, bytes);
        }
    };
    // Issues the copies of the cos/sin rows of tile `kt`'s key positions.
    [[maybe_unused]] auto load_rope = [&](std::int64_t kt) {
        if constexpr (RopeK) {
            for (int it = tid; it < kBN * (half / 4); it += kWarps * 32) {
                const int j = it / (half / 4), d0 = (it % (half / 4)) * 4;
                const bool ok = kt + j < kstop;
                const std::size_t row = ok ? static_cast<std::size_t>(kt + j) * half + d0 : 0;
                cp_async16(&sm.cs[j][d0], a.rope_cos + row, ok ? 16 : 0);
                cp_async16(&sm.sn[j][d0], a.rope_sin + row, ok ? 16 : 0);
            }
        }
    };
    if (kbeg < kstop) {
        load_tile(kbeg, 0);
        load_rope(kbeg);
        cp_async_commit();
    }

    // ---- Q tile -> shared (rotated to its position), then registers (MT = 1; staged in
    // buffer 1) or read in place by ldmatrix (MT = 2; its own region)
    static_assert(kQSmem || kBM <= 2 * kBN, "Q is staged in buffer 1's K and V");
    auto q_row = [&](int r) -> T* {
        if constexpr (kQSmem) return &sm.q[r][0];
        else return r < kBN ? &sm.k[1][r][0] : &sm.v[1][r - kBN][0];
    };
    const T* q = static_cast<const T*>(a.q);
    for (int it = tid; it < kBM * (half / 8); it += kWarps * 32) {
        const int r = it / (half / 8), d0 = (it % (half / 8)) * 8;
        float lo[8] = {}, hi[8] = {};
        if (m0 + r < rows) {
            const int i = (m0 + r) / group, hq = g * group + (m0 + r) % group;
            const T* src = q + (static_cast<std::size_t>(seq.q_row + i) * a.heads + hq) * HD;
            detail::load8(src + d0, lo);
            detail::load8(src + d0 + half, hi);
            if (a.rope_q) {
                const std::size_t row = static_cast<std::size_t>(seq.base + i) * half + d0;
                detail::rotate8(lo, hi, a.rope_cos + row, a.rope_sin + row);
            }
        }
        T* dst = q_row(r);
        detail::store8(dst + d0, lo);
        detail::store8(dst + d0 + half, hi);
    }
    __syncthreads();
    // This thread's two rows in row tile mt of its warp: ra(mt) and ra(mt) + 8.
    const int r0 = (KeySplit ? 0 : warp * kWR) + lane / 4;
    const int key0 = KeySplit ? warp * kKW : 0;  // this warp's first key within each tile
    const int cq = (lane % 4) * 2;
    // ldmatrix addresses: lane l feeds row (l % 8) of 8x8 matrix (l / 8).
    const int lm = lane / 8, lr = lane % 8;
    std::uint32_t qa[kQSmem ? 1 : HD / 16][4];
    if constexpr (!kQSmem) {
        const T* qra = q_row(r0);
        const T* qrb = q_row(r0 + 8);
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
            qa[kk][0] = *reinterpret_cast<const std::uint32_t*>(qra + kk * 16 + cq);
            qa[kk][1] = *reinterpret_cast<const std::uint32_t*>(qrb + kk * 16 + cq);
            qa[kk][2] = *reinterpret_cast<const std::uint32_t*>(qra + kk * 16 + cq + 8);
            qa[kk][3] = *reinterpret_cast<const std::uint32_t*>(qrb + kk * 16 + cq + 8);
        }
        __syncthreads();  // buffer 1 is free for tile 1
    }
    const bool warp_live = KeySplit || m0 + warp * kWR < rows;
    // Exclusive key limits of each row (0 for padding rows: they see nothing).
    std::int64_t lim_a[MT], lim_b[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const int ra = r0 + mt * 16, rb = ra + 8;
        lim_a[mt] = m0 + ra < rows ? seq.base + (m0 + ra) / group + 1 : 0;
        lim_b[mt] = m0 + rb < rows ? seq.base + (m0 + rb) / group + 1 : 0;
    }
    const float scale = (a.scale > 0 ? a.scale : rsqrtf(static_cast<float>(HD))) * 1.4426950408889634f;

    float o[MT][HD / 8][4];
    float m_a[MT], m_b[MT], l_a[MT], l_b[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < HD / 8; ++nt) o[mt][nt][0] = o[mt][nt][1] = o[mt][nt][2] = o[mt][nt][3] = 0.f;
        m_a[mt] = m_b[mt] = -INFINITY;
        l_a[mt] = l_b[mt] = 0.f;
    }

    int buf = 0;
    for (std::int64_t kt = kbeg; kt < kstop; kt += kBN, buf ^= 1) {
        const bool more = kt + kBN < kstop;
        if (more) {
            load_tile(kt + kBN, buf ^ 1);  // in flight while this tile is computed
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if constexpr (RopeK) {  // rotate the landed keys in place, each at its own position
            static_assert(kBN * (HD / 16) % (kWarps * 32) == 0);
#pragma unroll
            for (int u = 0; u < kBN * (HD / 16) / (kWarps * 32); ++u) {
                const int it = tid + u * kWarps * 32;
                const int j = it / (half / 8), d0 = (it % (half / 8)) * 8;
                float lo[8], hi[8];
                detail::load8(&sm.k[buf][j][d0], lo);
                detail::load8(&sm.k[buf][j][d0 + half], hi);
                detail::rotate8(lo, hi, &sm.cs[j][d0], &sm.sn[j][d0]);  // zeros past the end stay zeros
                detail::store8(&sm.k[buf][j][d0], lo);
                detail::store8(&sm.k[buf][j][d0 + half], hi);
            }
            __syncthreads();
            if (more) {
                load_rope(kt + kBN);  // lands while this tile computes
                cp_async_commit();
            }
        }
        if (warp_live) {
            float s[MT][kKW / 8][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int nt = 0; nt < kKW / 8; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < HD / 16; ++kk) {
                std::uint32_t qf[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    if constexpr (kQSmem) {
                        // Rows +8 for matrices 1, 3; dims +8 for matrices 2, 3: an A fragment.
                        ldmatrix_x4(qf[mt], q_row(r0 - lane / 4 + mt * 16 + (lm % 2) * 8 + lr) + kk * 16 + (lm / 2) * 8);
                    } else {
#pragma unroll
                        for (int e = 0; e < 4; ++e) qf[mt][e] = qa[kk][e];
                    }
                }
#pragma unroll
                for (int nt = 0; nt < kKW / 8; nt += 2) {
                    // Keys nt*8.. (+8 for matrices 2, 3), dims kk*16 (+8 for matrices 1, 3).
                    std::uint32_t kb[4];
                    ldmatrix_x4(kb, &sm.k[buf][key0 + nt * 8 + (lm / 2) * 8 + lr][kk * 16 + (lm % 2) * 8]);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<T>(s[mt][nt], qf[mt], kb[0], kb[1]);
                        mma16816<T>(s[mt][nt + 1], qf[mt], kb[2], kb[3]);
                    }
                }
            }
            std::uint32_t pa[MT][kKW / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                const int t0 = m0 + r0 - lane / 4 + mt * 16;  // first row of this row tile
                // Tiles wholly inside every row's causal window (and the split) need no mask.
                const bool unmasked = kt + kBN <= kend && kt + kBN <= seq.base + t0 / group + 1 && t0 + 15 < rows;
                if (unmasked) {
#pragma unroll
                    for (int nt = 0; nt < kKW / 8; ++nt)
#pragma unroll
                        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= scale;
                } else {
#pragma unroll
                    for (int nt = 0; nt < kKW / 8; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const std::int64_t key = kt + key0 + nt * 8 + cq + e;
                            s[mt][nt][e] = key < lim_a[mt] && key < kend ? s[mt][nt][e] * scale : -INFINITY;
                            s[mt][nt][2 + e] = key < lim_b[mt] && key < kend ? s[mt][nt][2 + e] * scale : -INFINITY;
                        }
                }
                float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < kKW / 8; ++nt) {
                    mx_a = fmaxf(mx_a, fmaxf(s[mt][nt][0], s[mt][nt][1]));
                    mx_b = fmaxf(mx_b, fmaxf(s[mt][nt][2], s[mt][nt][3]));
                }
                const float mn_a = fmaxf(m_a[mt], quad_max(mx_a)), mn_b = fmaxf(m_b[mt], quad_max(mx_b));
                const float al_a = m_a[mt] == -INFINITY ? 0.f : exp2f(m_a[mt] - mn_a);
                const float al_b = m_b[mt] == -INFINITY ? 0.f : exp2f(m_b[mt] - mn_b);
                m_a[mt] = mn_a;
                m_b[mt] = mn_b;
                float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
                for (int nt = 0; nt < kKW / 8; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        s[mt][nt][e] = s[mt][nt][e] == -INFINITY ? 0.f : exp2f(s[mt][nt][e] - mn_a);
                        s[mt][nt][2 + e] = s[mt][nt][2 + e] == -INFINITY ? 0.f : exp2f(s[mt][nt][2 + e] - mn_b);
                        sum_a += s[mt][nt][e];
                        sum_b += s[mt][nt][2 + e];
                    }
                l_a[mt] = l_a[mt] * al_a + sum_a;  // per-thread partial sums; the quad is reduced at the end
                l_b[mt] = l_b[mt] * al_b + sum_b;
#pragma unroll
                for (int nt = 0; nt < HD / 8; ++nt) {
                    o[mt][nt][0] *= al_a;
                    o[mt][nt][1] *= al_a;
                    o[mt][nt][2] *= al_b;
                    o[mt][nt][3] *= al_b;
                }
                // P (the S accumulators of two adjacent key octets) is exactly an A fragment.
#pragma unroll
                for (int j = 0; j < kKW / 16; ++j) {
                    pa[mt][j][0] = elem<T>::pack(s[mt][2 * j][0], s[mt][2 * j][1]);
                    pa[mt][j][1] = elem<T>::pack(s[mt][2 * j][2], s[mt][2 * j][3]);
                    pa[mt][j][2] = elem<T>::pack(s[mt][2 * j + 1][0], s[mt][2 * j + 1][1]);
                    pa[mt][j][3] = elem<T>::pack(s[mt][2 * j + 1][2], s[mt][2 * j + 1][3]);
                }
            }
#pragma unroll
            for (int j = 0; j < kKW / 16; ++j)
#pragma unroll
                for (int nt = 0; nt < HD / 8; nt += 2) {
                    // Keys j*16 (+8 for matrices 1, 3), dims nt*8 (+8 for matrices 2, 3), transposed.
                    std::uint32_t vb[4];
                    ldmatrix_x4_trans(vb, &sm.v[buf][key0 + j * 16 + (lm % 2) * 8 + lr][nt * 8 + (lm / 2) * 8]);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<T>(o[mt][nt], pa[mt][j], vb[0], vb[1]);
                        mma16816<T>(o[mt][nt + 1], pa[mt][j], vb[2], vb[3]);
                    }
                }
        }
        __syncthreads();  // every warp is done with `buf` before the next iteration refills it
    }
    const std::int64_t rows_total = a.tokens * a.heads;
    if constexpr (KeySplit) {
        // Each warp holds its key slices' softmax state of the same 16 rows: merge them through
        // the (now idle) K/V buffers, [warp][row][dim] partial outputs then [warp][row] (m, l).
        static_assert(sizeof(float) * kWarps * 16 * (HD + 2) <= sizeof(kv_smem<T, HD>));
        __syncthreads();  // reached by every thread: no warp returned early
        float* po = reinterpret_cast<float*>(&sm.k[0][0][0]);
        float* pml = po + kWarps * 16 * HD;
        const int ra = lane / 4, rb = ra + 8;
        const float sl_a = quad_sum(l_a[0]), sl_b = quad_sum(l_b[0]);
#pragma unroll
        for (int nt = 0; nt < HD / 8; ++nt) {
            *reinterpret_cast<float2*>(po + (warp * 16 + ra) * HD + nt * 8 + cq) = make_float2(o[0][nt][0], o[0][nt][1]);
            *reinterpret_cast<float2*>(po + (warp * 16 + rb) * HD + nt * 8 + cq) = make_float2(o[0][nt][2], o[0][nt][3]);
        }
        if (lane % 4 == 0) {
            pml[(warp * 16 + ra) * 2] = m_a[0];
            pml[(warp * 16 + ra) * 2 + 1] = sl_a;
            pml[(warp * 16 + rb) * 2] = m_b[0];
            pml[(warp * 16 + rb) * 2 + 1] = sl_b;
        }
        __syncthreads();
        const int live = min(16, rows - m0);
        for (int it = tid; it < live * HD; it += kWarps * 32) {
            const int r = it / HD, d = it % HD;
            float mx = -INFINITY;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, pml[(w * 16 + r) * 2]);
            float num = 0.f, den = 0.f;
#pragma unroll
            for (int w = 0; w < kWarps; ++w) {
                const float mw = pml[(w * 16 + r) * 2];
                if (mw == -INFINITY) continue;  // a slice with no visible key
                const float f = exp2f(mw - mx);
                num += f * po[(w * 16 + r) * HD + d];
                den += f * pml[(w * 16 + r) * 2 + 1];
            }
            const int i = (m0 + r) / group, hq = g * group + (m0 + r) % group;
            const std::int64_t grow = (seq.q_row + i) * a.heads + hq;
            if (a.splits == 1) {
                static_cast<T*>(a.o)[static_cast<std::size_t>(grow) * HD + d] = elem<T>::from(den > 0.f ? num / den : 0.f);
            } else {
                a.workspace[(static_cast<std::size_t>(split) * rows_total + grow) * HD + d] = den > 0.f ? num / den : 0.f;
                if (d == 0) {
                    float* ml = a.workspace + static_cast<std::size_t>(a.splits) * rows_total * HD +
                                (static_cast<std::size_t>(split) * rows_total + grow) * 2;
                    ml[0] = mx;
                    ml[1] = den;
                }
            }
        }
        return;
    }
    if (!warp_live) return;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const float sl_a = quad_sum(l_a[mt]), sl_b = quad_sum(l_b[mt]);
        const float inv_a = sl_a > 0.f ? 1.f / sl_a : 0.f, inv_b = sl_b > 0.f ? 1.f / sl_b : 0.f;
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
            const int r = r0 + mt * 16 + hr * 8;
            if (m0 + r >= rows) continue;
            const int i = (m0 + r) / group, hq = g * group + (m0 + r) % group;
            const std::int64_t grow = (seq.q_row + i) * a.heads + hq;
            const float inv = hr == 0 ? inv_a : inv_b;
            if (a.splits == 1) {
                T* dst = static_cast<T*>(a.o) + static_cast<std::size_t>(grow) * HD;
#pragma unroll
                for (int nt = 0; nt < HD / 8; ++nt)
                    *reinterpret_cast<std::uint32_t*>(dst + nt * 8 + cq) =
                        elem<T>::pack(o[mt][nt][2 * hr] * inv, o[mt][nt][2 * hr + 1] * inv);
            } else {
                float* po = a.workspace + (static_cast<std::size_t>(split) * rows_total + grow) * HD;
#pragma unroll
                for (int nt = 0; nt < HD / 8; ++nt)
                    *reinterpret_cast<float2*>(po + nt * 8 + cq) =
                        make_float2(o[mt][nt][2 * hr] * inv, o[mt][nt][2 * hr + 1] * inv);
                if (lane % 4 == 0) {
                    float* ml = a.workspace + static_cast<std::size_t>(a.splits) * rows_total * HD +
                                (static_cast<std::size_t>(split) * rows_total + grow) * 2;
                    ml[0] = hr == 0 ? m_a[mt] : m_b[mt];
                    ml[1] = hr == 0 ? sl_a : sl_b;
                }
            }
        }
    }
}

// ---- Decode: one new token per sequence, on CUDA cores.
//
// Decode reads every cached key and value once and does two FMAs per element per query row, so
// it is a streaming problem: what matters is bytes in flight. One CTA (4 warps) per (sequence,
// kv head, split); each warp takes 8 (4 for GQA-8) key-instructions per step, a key spread
// over HD/8 lanes that each own 4 dims of each RoPE half (so the rotation needs no shuffles),
// and issues all of its K/V loads before using any. Keys stored pre-RoPE are rotated by the
// angles of the same cos/sin table every other kernel reads, never by angles of its own: each
// warp step loads the row of its first key with the K/V, and steps to the next keys with the
// table's row KPI (16 registers in place of 8 per key in flight). That holds for any table of
// unit rotations whose angles are proportional to position (theta, linear position scaling,
// NTK); a table with magnitudes other than 1 (YaRN's mscale) would need a row per key.
// The warps' softmax states are merged in shared memory.
template <class T, int HD, int G, bool RopeK>
__global__ void __launch_bounds__(128) decode_kernel(attention_args a) {
    constexpr int kW = 4;
    constexpr int LPK = HD / 8;    // lanes per key
    constexpr int KPI = 32 / LPK;  // keys per warp instruction
    constexpr int U = G >= 8 ? 4 : 8;
    constexpr int half = HD / 2;
    __shared__ float sm_o[kW][G][HD];
    __shared__ float sm_ml[kW][G][2];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int sub = lane / LPK, j = lane % LPK;
    const int g = blockIdx.x;
    const int b = blockIdx.y / a.splits, split = blockIdx.y % a.splits;
    const attn_seq seq = a.seqs[b];
    // Only sequences with exactly one new token are decoded here; one with none (a batch slot
    // left empty) has no query row of its own: q_row may be another sequence's.
    if (seq.n != 1) return;
    const std::int64_t keys = seq.base + 1;
    const std::int64_t per_split = keys_per_split(keys, a.splits);
    const std::int64_t kbeg = split * per_split;
    const std::int64_t kend = min(keys, kbeg + per_split);

    const float scale = (a.scale > 0 ? a.scale : rsqrtf(static_cast<float>(HD))) * 1.4426950408889634f;
    float q[G][8];
#pragma unroll
    for (int r = 0; r < G; ++r) {
        const T* src = static_cast<const T*>(a.q) + (static_cast<std::size_t>(seq.q_row) * a.heads + g * G + r) * HD;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float lo = elem<T>::to(src[4 * j + i]), hi = elem<T>::to(src[half + 4 * j + i]);
            if (a.rope_q) {
                const std::size_t at = static_cast<std::size_t>(seq.base) * half + 4 * j + i;
                const float c = a.rope_cos[at], s = a.rope_sin[at];
                const float x = lo;
                lo = x * c - hi * s;
                hi = x * s + hi * c;
            }
            q[r][i] = lo * scale;
            q[r][4 + i] = hi * scale;
        }
    }
    // The table's rotation by KPI positions (row KPI: the angles of one step), when it has the row.
    float4 step_c = make_float4(1.f, 1.f, 1.f, 1.f), step_s = make_float4(0.f, 0.f, 0.f, 0.f);
    if constexpr (RopeK) {
        if (KPI < keys) {
            step_c = __ldg(reinterpret_cast<const float4*>(a.rope_cos + static_cast<std::size_t>(KPI) * half + 4 * j));
            step_s = __ldg(reinterpret_cast<const float4*>(a.rope_sin + static_cast<std::size_t>(KPI) * half + 4 * j));
        }
    }
    float m[G], l[G], o[G][8];
#pragma unroll
    for (int r = 0; r < G; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) o[r][i] = 0.f;
    }
    const T* pool = static_cast<const T*>(a.pool);
    const std::size_t head_stride = static_cast<std::size_t>(a.block_tokens) * HD;
    const std::size_t v_offset = static_cast<std::size_t>(a.kv_heads) * head_stride;
    const std::size_t layer_head = (static_cast<std::size_t>(a.layer) * 2 * a.kv_heads + g) * head_stride;

    for (std::int64_t k0 = kbeg + static_cast<std::int64_t>(warp) * U * KPI; k0 < kend;
         k0 += static_cast<std::int64_t>(kW) * U * KPI) {
        uint2 kl[U], kh[U], vl[U], vh[U];
        float4 rc = make_float4(0.f, 0.f, 0.f, 0.f), rs = rc;  // the table row of key k0 + sub
        if constexpr (RopeK) {
            if (k0 + sub < kend) {
                const std::size_t row = static_cast<std::size_t>(k0 + sub) * half + 4 * j;
                rc = __ldg(reinterpret_cast<const float4*>(a.rope_cos + row));
                rs = __ldg(reinterpret_cast<const float4*>(a.rope_sin + row));
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const std::int64_t t = k0 + u * KPI + sub;
            if (t < kend) {
                const std::int64_t slot = seq.first_offset + t;
                const T* p = pool + static_cast<std::size_t>(seq.table[slot / a.block_tokens]) * a.block_elems +
                             layer_head + static_cast<std::size_t>(slot % a.block_tokens) * HD + 4 * j;
                kl[u] = *reinterpret_cast<const uint2*>(p);
                kh[u] = *reinterpret_cast<const uint2*>(p + half);
                vl[u] = *reinterpret_cast<const uint2*>(p + v_offset);
                vh[u] = *reinterpret_cast<const uint2*>(p + v_offset + half);
            } else {
                kl[u] = kh[u] = vl[u] = vh[u] = make_uint2(0, 0);
            }
        }
        float s[U][G];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const std::int64_t t = k0 + u * KPI + sub;
            const T* klo = reinterpret_cast<const T*>(&kl[u]);
            const T* khi = reinterpret_cast<const T*>(&kh[u]);
            float kv[8];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                kv[i] = elem<T>::to(klo[i]);
                kv[4 + i] = elem<T>::to(khi[i]);
            }
            if constexpr (RopeK) {
                if (u > 0) {  // advance by KPI positions
                    const float4 c = rc;
                    rc = make_float4(c.x * step_c.x - rs.x * step_s.x, c.y * step_c.y - rs.y * step_s.y,
                                     c.z * step_c.z - rs.z * step_s.z, c.w * step_c.w - rs.w * step_s.w);
                    rs = make_float4(rs.x * step_c.x + c.x * step_s.x, rs.y * step_c.y + c.y * step_s.y,
                                     rs.z * step_c.z + c.z * step_s.z, rs.w * step_c.w + c.w * step_s.w);
                }
                const float c[4] = {rc.x, rc.y, rc.z, rc.w};
                const float sn[4] = {rs.x, rs.y, rs.z, rs.w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {  // as detail::rotate8
                    const float lo = kv[i], hi = kv[4 + i];
                    kv[i] = lo * c[i] - hi * sn[i];
                    kv[4 + i] = lo * sn[i] + hi * c[i];
                }
            }
#pragma unroll
            for (int r = 0; r < G; ++r) {
                float part = 0.f;
#pragma unroll
                for (int i = 0; i < 8; ++i) part = fmaf(q[r][i], kv[i], part);
#pragma unroll
                for (int off = LPK / 2; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffffu, part, off);
                s[u][r] = t < kend ? part : -INFINITY;
            }
        }
#pragma unroll
        for (int r = 0; r < G; ++r) {
            float mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][r]);
#pragma unroll
            for (int off = LPK; off < 32; off *= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float mn = fmaxf(m[r], mx);  // finite: key k0 exists
            const float alpha = m[r] == -INFINITY ? 0.f : exp2f(m[r] - mn);
            m[r] = mn;
            l[r] *= alpha;
#pragma unroll
            for (int i = 0; i < 8; ++i) o[r][i] *= alpha;
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const float p = s[u][r] == -INFINITY ? 0.f : exp2f(s[u][r] - mn);
                l[r] += p;
                const T* vlo = reinterpret_cast<const T*>(&vl[u]);
                const T* vhi = reinterpret_cast<const T*>(&vh[u]);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    o[r][i] = fmaf(p, elem<T>::to(vlo[i]), o[r][i]);
                    o[r][4 + i] = fmaf(p, elem<T>::to(vhi[i]), o[r][4 + i]);
                }
            }
        }
    }
    // Lanes of different keys hold partial sums under the same (warp-uniform) max.
#pragma unroll
    for (int r = 0; r < G; ++r) {
#pragma unroll
        for (int off = LPK; off < 32; off *= 2) {
            l[r] += __shfl_xor_sync(0xffffffffu, l[r], off);
#pragma unroll
            for (int i = 0; i < 8; ++i) o[r][i] += __shfl_xor_sync(0xffffffffu, o[r][i], off);
        }
        if (sub == 0) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                sm_o[warp][r][4 * j + i] = o[r][i];
                sm_o[warp][r][half + 4 * j + i] = o[r][4 + i];
            }
        }
        if (lane == 0) {
            sm_ml[warp][r][0] = m[r];
            sm_ml[warp][r][1] = l[r];
        }
    }
    __syncthreads();
    const std::int64_t rows_total = a.tokens * a.heads;
    for (int it = tid; it < G * HD; it += kW * 32) {
        const int r = it / HD, d = it % HD;
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < kW; ++w) mx = fmaxf(mx, sm_ml[w][r][0]);
        float num = 0.f, den = 0.f;
#pragma unroll
        for (int w = 0; w < kW; ++w) {
            const float mw = sm_ml[w][r][0];
            if (mw == -INFINITY) continue;
            const float f = exp2f(mw - mx);
            num += f * sm_o[w][r][d];
            den += f * sm_ml[w][r][1];
        }
        const float out = den > 0.f ? num / den : 0.f;
        const std::int64_t grow = seq.q_row * a.heads + g * G + r;
        if (a.splits == 1) {
            static_cast<T*>(a.o)[static_cast<std::size_t>(grow) * HD + d] = elem<T>::from(out);
        } else {
            a.workspace[(static_cast<std::size_t>(split) * rows_total + grow) * HD + d] = out;
            if (d == 0) {
                float* ml = a.workspace + static_cast<std::size_t>(a.splits) * rows_total * HD +
                            (static_cast<std::size_t>(split) * rows_total + grow) * 2;
                ml[0] = mx;
                ml[1] = den;
            }
        }
    }
}

/// A split whose CTA returned early (no rows, or no keys in range) leaves its partial
/// unwritten; every split that covers a row's keys writes it, so merging reads only splits
/// with keys: split s covers keys from s * per_split, visible to the row if below its limit.
template <class T, int HD>
__global__ void merge_splits_kernel(attention_args a) {
    const std::int64_t rows_total = a.tokens * a.heads;
    const int b = blockIdx.y;
    const attn_seq seq = a.seqs[b];
    const std::int64_t local = blockIdx.x;  // row within this sequence: token * heads + head
    if (local >= static_cast<std::int64_t>(seq.n) * a.heads) return;
    const int i = static_cast<int>(local / a.heads);
    const std::int64_t grow = seq.q_row * a.heads + local;
    const std::int64_t keys = seq.base + seq.n;
    const std::int64_t per_split = keys_per_split(keys, a.splits);
    const std::int64_t lim = seq.base + i + 1;
    const float* ml = a.workspace + static_cast<std::size_t>(a.splits) * rows_total * HD;
    float mx = -INFINITY;
    for (int s = 0; s < a.splits && s * per_split < lim; ++s)
        mx = fmaxf(mx, ml[(static_cast<std::size_t>(s) * rows_total + grow) * 2]);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float num = 0.f, den = 0.f;
        for (int s = 0; s < a.splits && s * per_split < lim; ++s) {
            const std::size_t at = static_cast<std::size_t>(s) * rows_total + grow;
            const float m = ml[at * 2], l = ml[at * 2 + 1];
            if (m == -INFINITY) continue;
            const float w = l * exp2f(m - mx);
            num += w * a.workspace[at * HD + d];
            den += w;
        }
        static_cast<T*>(a.o)[static_cast<std::size_t>(grow) * HD + d] = elem<T>::from(den > 0.f ? num / den : 0.f);
    }
}

/// Raises a kernel's dynamic shared memory limit on the current device, once per (kernel,
/// device): the attribute is per device, so a process that uses a second GPU opts in there too.
void opt_in_smem(const void* kernel, int bytes, const char* what) {
    int device = 0;
    detail::check(cudaGetDevice(&device), "cudaGetDevice");
    static std::mutex m;
    static std::set<std::pair<const void*, int>> done;
    std::lock_guard lock(m);
    if (done.contains({kernel, device})) return;
    detail::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), what);
    done.insert({kernel, device});
}

template <class T, int HD, int W, int MT, bool KeySplit, bool RopeK>
void launch_tiled(const attention_args& a, cudaStream_t stream) {
    constexpr int rows = KeySplit ? 16 : 16 * MT * W;
    const int group = a.heads / a.kv_heads;
    const dim3 grid((a.max_new * group + rows - 1) / rows, a.kv_heads, a.batch * a.splits);
    constexpr int smem = sizeof(smem_layout<T, HD, RopeK, (MT > 1 ? rows : 0)>);
    const auto kernel = attention_kernel<T, HD, W, MT, RopeK, KeySplit>;
    opt_in_smem(reinterpret_cast<const void*>(kernel), smem, "cudaFuncSetAttribute(attention_kernel)");
    kernel<<<grid, W * 32, smem, stream>>>(a);
    detail::check_launch("attention_kernel");
}
template <class T, int HD, int W, int MT, bool KeySplit = false>
void launch_tiled(const attention_args& a, cudaStream_t stream) {
    if (a.rope_k) launch_tiled<T, HD, W, MT, KeySplit, true>(a, stream);
    else launch_tiled<T, HD, W, MT, KeySplit, false>(a, stream);
}

template <class T, int HD, int G>
void launch_decode(const attention_args& a, cudaStream_t stream) {
    const dim3 grid(a.kv_heads, a.batch * a.splits);
    if (a.rope_k) decode_kernel<T, HD, G, true><<<grid, 128, 0, stream>>>(a);
    else decode_kernel<T, HD, G, false><<<grid, 128, 0, stream>>>(a);
    detail::check_launch("decode_kernel");
}

template <class T, int HD>
void launch(const attention_args& a, cudaStream_t stream) {
    using path = attention_args::path;
    const int group = a.heads / a.kv_heads;
    // Measured on an H200 (docs/results.md): the CUDA-core decode kernel streams MHA decode at
    // ~0.6 of copy bandwidth against ~0.4 for the tiled kernel, but with 8 query heads per KV
    // head its registers cap residency and the tiled kernel is faster; forcing either path
    // works for every group in {1, 2, 4, 8}.
    const bool decode_ok = a.max_new == 1 && (group == 1 || group == 2 || group == 4 || group == 8);
    const bool decode = decode_ok && (a.kernel == path::decode || (a.kernel == path::automatic && group <= 2));
    if (decode) {
        switch (group) {
            case 1: launch_decode<T, HD, 1>(a, stream); break;
            case 2: launch_decode<T, HD, 2>(a, stream); break;
            case 4: launch_decode<T, HD, 4>(a, stream); break;
            default: launch_decode<T, HD, 8>(a, stream); break;
        }
    } else if (a.kernel == path::wide) {
        launch_tiled<T, HD, 4, 2>(a, stream);
    } else if (a.kernel == path::split_keys) {
        launch_tiled<T, HD, 4, 1, true>(a, stream);
    } else if (a.max_new * group > 64) {
        launch_tiled<T, HD, 8, 1>(a, stream);
    } else {
        launch_tiled<T, HD, 4, 1>(a, stream);
    }
    if (a.splits > 1) {
        merge_splits_kernel<T, HD><<<dim3(a.max_new * a.heads, a.batch), HD, 0, stream>>>(a);
        detail::check_launch("merge_splits_kernel");
    }
}

}  // namespace

std::size_t attention_workspace_floats(int splits, std::int64_t tokens, int heads, int head_dim) noexcept {
    if (splits <= 1) return 0;
    return static_cast<std::size_t>(splits) * static_cast<std::size_t>(tokens) * heads * (head_dim + 2);
}

void attention(const attention_args& a, cudaStream_t stream) {
    if (a.head_dim != 64 && a.head_dim != 128)
        throw config_error("cuda attention: head_dim must be 64 or 128, got " + std::to_string(a.head_dim));
    if (a.kv_heads <= 0 || a.heads % a.kv_heads != 0)
        throw config_error("cuda attention: heads must be a multiple of kv_heads");
    if (a.splits < 1 || (a.splits > 1 && a.workspace == nullptr))
        throw config_error("cuda attention: splits > 1 needs a workspace");
    if (a.batch <= 0 || a.max_new <= 0) return;
    if ((a.rope_q || a.rope_k) && (a.rope_cos == nullptr || a.rope_sin == nullptr))
        throw config_error("cuda attention: RoPE asked for without a cos/sin table");
    detail::dispatch16(a.type, [&](auto t) {
        using T = decltype(t);
        if (a.head_dim == 64) launch<T, 64>(a, stream);
        else launch<T, 128>(a, stream);
    }, "cuda attention");
}

}  // namespace cachedattn::cuda::kernels
