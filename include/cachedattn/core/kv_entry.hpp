#pragma once
/// @file
/// @brief A session's stored KV in its tier-independent form, and the paged view kernels read.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <vector>

#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/session.hpp"

namespace cachedattn {

/// @brief What a stored KV cache is of: which session, which tokens, and how keys were encoded.
struct kv_meta {
    session_id session{};
    /// Tokens whose KV is stored, in order; the engine reuses the cache only if they are an exact
    /// prefix of the session's history (a second guard against foreign or stale data).
    std::vector<token_id> tokens;
    /// Slot of `tokens[0]` inside the first block (truncation drops whole blocks plus an offset).
    std::uint32_t first_offset = 0;
    /// Position at which `tokens[0]`'s key was rotated when keys are stored after RoPE. A cache
    /// is reusable as is only when this is 0 (positions of a context always start at 0).
    std::int64_t rope_base = 0;

    std::size_t size() const noexcept { return tokens.size(); }
    std::size_t blocks(const model_geometry& g) const noexcept {
        return g.blocks_for(tokens.size(), first_offset);
    }
};

/// @brief An owned copy of a session's KV: `meta` plus `blocks(g)` blocks back to back, each
/// laid out `[layer][k|v][kv_head][token][head_dim]`. This is what moves between tiers.
struct kv_entry {
    kv_meta meta;
    /// [blocks][block_bytes]. Polymorphic so that entries copied out of GPU memory can live in
    /// pinned host memory (tier::pool_memory::host_resource) and load back at full link speed.
    std::pmr::vector<std::byte> data;
};

/// @brief Drops the oldest `n` tokens of an entry in host memory: the whole blocks they
/// leave empty go, and the first kept token's slot becomes `first_offset` (the layout
/// `device_tier::truncate_front` keeps). An entry that carries no bytes (accounting-only
/// tiers) changes only its tokens. Pre: n <= tokens.
inline void trim_front(kv_entry& e, std::size_t n, const model_geometry& g) {
    assert(n <= e.meta.tokens.size());
    const std::size_t slot = e.meta.first_offset + n;
    const auto bt = static_cast<std::size_t>(g.block_tokens);
    const std::size_t gone = slot / bt;
    if (!e.data.empty()) {
        const std::size_t bytes = std::min(gone * g.block_bytes(), e.data.size());
        e.data.erase(e.data.begin(), e.data.begin() + static_cast<std::ptrdiff_t>(bytes));
    }
    e.meta.tokens.erase(e.meta.tokens.begin(), e.meta.tokens.begin() + static_cast<std::ptrdiff_t>(n));
    e.meta.first_offset = e.meta.tokens.empty() ? 0 : static_cast<std::uint32_t>(slot % bt);
    if (e.meta.tokens.empty()) e.data.clear();
}

/// @brief Keeps only the oldest `keep` tokens of an entry in host memory (a load that leaves
/// the newest tokens to be recomputed): the blocks past the last kept token go. Bytes after it
/// in its block stay and are overwritten when those positions are computed. Pre: keep <= tokens.
inline void trim_back(kv_entry& e, std::size_t keep, const model_geometry& g) {
    assert(keep <= e.meta.tokens.size());
    e.meta.tokens.resize(keep);
    if (keep == 0) {
        e.meta.first_offset = 0;
        e.data.clear();
    } else if (!e.data.empty()) {
        e.data.resize(std::min(e.data.size(), g.blocks_for(keep, e.meta.first_offset) * g.block_bytes()));
    }
}

/// @brief A trivially copyable view of one session's KV in a block pool (paged KV). Token `t`
/// of the view lives in block `table[(first_offset + t) / block_tokens]`.
template <class T>
struct paged_kv_view {
    std::byte* pool = nullptr;
    const std::int32_t* table = nullptr;
    std::size_t table_size = 0;  // blocks reserved: capacity = table_size*block_tokens - first_offset
    std::size_t block_bytes = 0;
    int layers = 0, kv_heads = 0, head_dim = 0, block_tokens = 0;
    int first_offset = 0;
    std::int64_t tokens = 0;  // tokens currently valid
    /// The pool is GPU memory: kernels read it, the host must not (tier::pool_memory).
    bool device_memory = false;

    /// The view of `table.size()` blocks of `pool` laid out as geometry `g` says.
    static paged_kv_view over(std::byte* pool, const std::vector<std::int32_t>& table, const model_geometry& g,
                              int first_offset, std::int64_t tokens, bool device_memory = false) noexcept {
        paged_kv_view v;
        v.pool = pool;
        v.table = table.data();
        v.table_size = table.size();
        v.block_bytes = g.block_bytes();
        v.layers = g.layers;
        v.kv_heads = g.kv_heads;
        v.head_dim = g.head_dim;
        v.block_tokens = g.block_tokens;
        v.first_offset = first_offset;
        v.tokens = tokens;
        v.device_memory = device_memory;
        return v;
    }
    std::int64_t capacity() const noexcept {
        return static_cast<std::int64_t>(table_size) * block_tokens - first_offset;
    }
    /// Pointer to `head_dim` elements: K (`kv == 0`) or V (`kv == 1`) of token `t`.
    T* at(int layer, int kv, int head, std::int64_t t) const noexcept {
        assert(t >= 0 && t < capacity());
        const std::int64_t slot = first_offset + t;
        const std::int32_t block = table[slot / block_tokens];
        const std::int64_t in_block = slot % block_tokens;
        auto* base = reinterpret_cast<T*>(pool + static_cast<std::size_t>(block) * block_bytes);
        const std::size_t off =
            ((static_cast<std::size_t>(layer) * 2 + static_cast<std::size_t>(kv)) * kv_heads +
             static_cast<std::size_t>(head)) *
                static_cast<std::size_t>(block_tokens) * head_dim +
            static_cast<std::size_t>(in_block) * head_dim;
        return base + off;
    }
    T* k(int layer, int head, std::int64_t t) const noexcept { return at(layer, 0, head, t); }
    T* v(int layer, int head, std::int64_t t) const noexcept { return at(layer, 1, head, t); }
};

}  // namespace cachedattn
