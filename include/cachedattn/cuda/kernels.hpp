#pragma once
/// @file
/// @brief Launchers of the CUDA kernels (kernels/*.cu). Plain structs and functions: no fmt,
/// no templates, so .cu files stay kernels plus thin launchers and host logic lives in .cpp.
///
/// Element types are the model's KV dtype (f16 or bf16; f32 only where named). Layouts:
/// activations are row-major `[token][head][head_dim]`; the KV pool is the device tier's
/// blocks, `[layer][k|v][kv_head][token][head_dim]` inside each block (core/geometry.hpp).
/// Every launcher enqueues on `stream` and checks the launch; errors throw cuda::error.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cachedattn/core/geometry.hpp"

namespace cachedattn::cuda::kernels {

/// One sequence of a (batched) attention call.
struct attn_seq {
    const std::int32_t* table = nullptr;  ///< device block table of the session
    std::int64_t base = 0;                ///< tokens already in the cache before the new ones
    std::int32_t n = 0;                   ///< new tokens (queries); their K/V are already appended
    std::int32_t first_offset = 0;        ///< slot of token 0 inside the first block
    std::int64_t q_row = 0;               ///< row of this sequence's first query in q / o
};

/// Fused attention over a paged KV cache: for each sequence, queries are its `n` new tokens at
/// positions `base..base+n-1`; keys/values are the cache's tokens `[0, base+n)` (the new ones
/// appended first), causal aligned bottom-right (query i sees keys `<= base+i`). RoPE is
/// applied as operands are read: to Q at its position (`rope_q`) and to keys stored before
/// RoPE at theirs (`rope_k`), so no rotated copy exists anywhere. Grouped-query attention packs
/// the query heads of one KV head into the rows of a tile (decode uses the tensor cores too).
/// head_dim 64 or 128; f16/bf16 with f32 accumulation on tensor cores (mma.sync m16n8k16).
struct attention_args {
    dtype type = dtype::f16;
    const void* q = nullptr;  ///< [tokens][heads][head_dim]
    void* o = nullptr;        ///< [tokens][heads][head_dim]
    std::int64_t tokens = 0;  ///< rows of q / o
    const void* pool = nullptr;
    std::size_t block_elems = 0;  ///< elements of one whole block
    int layer = 0, heads = 0, kv_heads = 0, head_dim = 0, block_tokens = 0;
    const attn_seq* seqs = nullptr;  ///< device array of `batch`
    int batch = 0;
    int max_new = 0;  ///< max n over the batch (sizes the grid; rows past it are not computed)
    const float* rope_cos = nullptr;  ///< device [positions][head_dim/2]
    const float* rope_sin = nullptr;
    bool rope_q = true, rope_k = true;
    float scale = 0;  ///< softmax scale (1/sqrt(head_dim) when 0)
    /// Split-KV: each (sequence, kv head, query tile) is split over `splits` key ranges whose
    /// partial results a second kernel merges (decode of few long sequences fills the GPU).
    int splits = 1;
    float* workspace = nullptr;  ///< attention_workspace_floats(...) floats when splits > 1
    /// Which kernel runs. Decode (every sequence has n <= 1, the group is 1, 2, 4 or 8):
    /// `automatic` picks the CUDA-core decode kernel for groups of 1 or 2 query heads per KV
    /// head and the tiled tensor-core kernel otherwise (measured: docs/results.md); `decode`
    /// and `tensor_core` force one (tests run both). Otherwise the tiled kernel with 16 query
    /// rows per warp; `wide` forces the tiled kernel with 32 rows per warp and Q in shared
    /// memory (FlashAttention-2's shape); `split_keys` forces the tiled kernel whose four warps
    /// share one 16-row tile and split each K/V tile's keys (GQA decode: a group's rows fill
    /// one tile, and every warp does MMAs). Neither is an automatic choice yet: they wait for
    /// a device run (bench/cuda/run_device_checks.sh) to show them faster.
    enum class path : std::uint8_t { automatic, tensor_core, decode, wide, split_keys } kernel = path::automatic;
};
std::size_t attention_workspace_floats(int splits, std::int64_t tokens, int heads, int head_dim) noexcept;
void attention(const attention_args& a, cudaStream_t stream);

/// Writes new tokens' K and V (`[n][kv_heads][head_dim]`) into the pool at positions
/// `base..base+n-1` of the sequence; K is rotated at its position unless `keys_pre_rope`.
struct append_args {
    dtype type = dtype::f16;
    const void* k = nullptr;
    const void* v = nullptr;
    void* pool = nullptr;
    std::size_t block_elems = 0;
    const std::int32_t* table = nullptr;  ///< device
    int first_offset = 0;
    std::int64_t base = 0;
    int n = 0, layer = 0, kv_heads = 0, head_dim = 0, block_tokens = 0;
    const float* rope_cos = nullptr;
    const float* rope_sin = nullptr;
    bool keys_pre_rope = true;
};
void append_kv(const append_args& a, cudaStream_t stream);

/// In-place RoPE of `x[n][heads][head_dim]` at positions `base..base+n-1` (coupled mode, and
/// the separate rotation pass the fused kernel is compared against).
void rope_inplace(dtype type, void* x, std::int64_t n, int heads, int head_dim, std::int64_t base,
                  const float* cos, const float* sin, cudaStream_t stream);

/// out[i] = table[tokens[i]] as f32 (the residual stream is f32).
void embedding(dtype type, const std::int32_t* tokens, std::int64_t n, const void* table, int dim, float* out,
               cudaStream_t stream);
/// out[i] = x[i] / rms(x[i]) * w, x f32, w f32, out in `type`.
void rmsnorm(dtype type, const float* x, const float* w, void* out, std::int64_t n, int dim, float eps,
             cudaStream_t stream);
/// out = silu(gate) * up, elementwise over `n` elements.
void swiglu(dtype type, const void* gate, const void* up, void* out, std::int64_t n, cudaStream_t stream);
/// The uniform weights of model::weights::random, element for element: value j of stream
/// `stream` is offset + scale * (2u - 1) with u from splitmix64 of seed and stream. Rounded
/// to `type` (f32 stays exact).
void fill_uniform(dtype type, void* out, std::size_t n, std::uint64_t seed, std::uint64_t stream, float scale,
                  float offset, cudaStream_t s);
/// Uniform(-1, 1) test data from a counter-based hash (fresh inputs for every check).
void fill_random(dtype type, void* out, std::size_t n, std::uint64_t seed, cudaStream_t s);
/// Every element set to NaN (poisoning outputs before a kernel under test writes them).
void fill_nan(dtype type, void* out, std::size_t n, cudaStream_t s);

}  // namespace cachedattn::cuda::kernels
