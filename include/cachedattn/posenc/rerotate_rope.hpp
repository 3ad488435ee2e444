#pragma once
/// @file
/// @brief Re-rotation ("context shift" in llama.cpp; LMCache's K re-rotation kernel): keys are
/// stored *after* RoPE, and when truncation moves tokens `shift` positions earlier their stored
/// keys are rotated by -shift, since RoPE(p) then RoPE(-d) is RoPE(p-d). The cache stays valid
/// at the cost of one pass over the kept keys; compare decoupled_rope, which needs none.
#include "cachedattn/posenc/concept.hpp"

namespace cachedattn::posenc {

class rerotate_rope {
public:
    struct config {};
    static constexpr std::string_view name = "rerotate_rope";
    static constexpr bool keys_pre_rope = false;
    static constexpr std::uint8_t tag = 3;

    rerotate_rope() = default;
    explicit rerotate_rope(const config&) {}

    bool rebase(paged_kv_view<float> kv, std::int64_t first, std::int64_t shift, const rope_table& rope) const {
        if (shift == 0) return true;
        if (shift >= rope.positions()) return false;  // beyond the table: cannot rotate exactly
        if (!kv.pool) return true;                    // an accounting-only view (the simulator)
        if (kv.device_memory) return false;           // no host pass over HBM: recompute instead
        for (std::int64_t t = first; t < kv.tokens; ++t)
            for (int l = 0; l < kv.layers; ++l)
                for (int h = 0; h < kv.kv_heads; ++h) rope.rotate(kv.k(l, h, t), -shift);
        return true;
    }
};
static_assert(positional_encoding<rerotate_rope>);

}  // namespace cachedattn::posenc
