#pragma once
/// @file
/// @brief Model geometry: the shape facts every tier, kernel and policy needs to size KV.
/// Deliberately free of fmt and the standard I/O headers so .cu files can include it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cachedattn/core/error.hpp"

namespace cachedattn {

/// @brief Element type of stored KV. The CPU reference computes and stores f32.
enum class dtype : std::uint8_t { f32 = 0, f16 = 1, bf16 = 2 };

constexpr std::size_t size_of(dtype t) noexcept { return t == dtype::f32 ? 4 : 2; }

constexpr const char* to_string(dtype t) noexcept {
    switch (t) {
        case dtype::f32: return "f32";
        case dtype::f16: return "f16";
        case dtype::bf16: return "bf16";
    }
    return "?";
}

/// @brief The KV-relevant shape of a model.
///
/// A session's KV is a list of blocks of `block_tokens` tokens; inside a block the layout is
/// `[layer][k|v][kv_head][token][head_dim]`, so one layer of one block is two contiguous runs
/// (what layer-wise pre-loading copies) and truncation drops whole blocks.
struct model_geometry {
    int layers = 0;
    int heads = 0;
    int kv_heads = 0;
    int head_dim = 0;
    dtype type = dtype::f32;
    int block_tokens = 16;

    /// @brief Throws config_error naming the first impossible field.
    void validate() const {
        auto need_positive = [](int v, const char* field) {
            if (v <= 0)
                throw config_error(std::string("model_geometry: ") + field + " must be > 0, got " +
                                   std::to_string(v));
        };
        need_positive(layers, "layers");
        need_positive(heads, "heads");
        need_positive(kv_heads, "kv_heads");
        need_positive(head_dim, "head_dim");
        need_positive(block_tokens, "block_tokens");
        if (heads % kv_heads != 0)
            throw config_error("model_geometry: heads (" + std::to_string(heads) +
                               ") must be divisible by kv_heads (" + std::to_string(kv_heads) +
                               ") for grouped-query attention");
        if (head_dim % 2 != 0)
            throw config_error("model_geometry: head_dim must be even for RoPE, got " +
                               std::to_string(head_dim));
    }

    /// Query heads that share one KV head.
    constexpr int group() const noexcept { return heads / kv_heads; }
    /// Elements of K (or V) of one token in one layer.
    constexpr std::size_t kv_width() const noexcept {
        return static_cast<std::size_t>(kv_heads) * static_cast<std::size_t>(head_dim);
    }
    /// Bytes of K and V of one token over all layers (the paper's "KV bytes per token").
    constexpr std::size_t kv_bytes_per_token() const noexcept {
        return 2 * static_cast<std::size_t>(layers) * kv_width() * size_of(type);
    }
    /// Elements of one layer's K (or V) inside a block: `[kv_head][token][head_dim]`.
    constexpr std::size_t block_half_layer_elems() const noexcept {
        return kv_width() * static_cast<std::size_t>(block_tokens);
    }
    /// Elements of one whole block.
    constexpr std::size_t block_elems() const noexcept {
        return 2 * static_cast<std::size_t>(layers) * block_half_layer_elems();
    }
    constexpr std::size_t block_bytes() const noexcept { return block_elems() * size_of(type); }
    /// Blocks needed for `tokens` tokens starting at slot `first_offset` of the first block.
    constexpr std::size_t blocks_for(std::size_t tokens, std::size_t first_offset = 0) const noexcept {
        const auto bt = static_cast<std::size_t>(block_tokens);
        return tokens == 0 ? 0 : (first_offset + tokens + bt - 1) / bt;
    }

    friend constexpr bool operator==(const model_geometry&, const model_geometry&) = default;
};

}  // namespace cachedattn
