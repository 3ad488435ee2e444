#pragma once
/// @file
/// @brief The conventional layout: keys are stored *after* RoPE, at the positions they had when
/// computed. After truncation every kept key carries a stale position, so the cache is invalid
/// and must be recomputed (the paper's "without decoupling" case, §3.5, Fig. 14).
#include "cachedattn/posenc/concept.hpp"

namespace cachedattn::posenc {

class coupled_rope {
public:
    struct config {};
    static constexpr std::string_view name = "coupled_rope";
    static constexpr bool keys_pre_rope = false;
    static constexpr std::uint8_t tag = 2;

    coupled_rope() = default;
    explicit coupled_rope(const config&) {}

    bool rebase(paged_kv_view<float>, std::int64_t, std::int64_t shift, const rope_table&) const {
        return shift == 0;
    }
};
static_assert(positional_encoding<coupled_rope>);

}  // namespace cachedattn::posenc
