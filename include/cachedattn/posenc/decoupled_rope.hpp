#pragma once
/// @file
/// @brief CachedAttention's positional encoding decoupling (§3.5): keys are stored *before*
/// RoPE, and RoPE is applied to them at attention time with their current positions. Dropping
/// the oldest tokens therefore leaves the stored keys valid: they carry no position at all.
#include "cachedattn/posenc/concept.hpp"

namespace cachedattn::posenc {

class decoupled_rope {
public:
    struct config {};
    static constexpr std::string_view name = "decoupled_rope";
    static constexpr bool keys_pre_rope = true;
    static constexpr std::uint8_t tag = 1;

    decoupled_rope() = default;
    explicit decoupled_rope(const config&) {}

    bool rebase(paged_kv_view<float>, std::int64_t, std::int64_t, const rope_table&) const { return true; }
};
static_assert(positional_encoding<decoupled_rope>);

}  // namespace cachedattn::posenc
