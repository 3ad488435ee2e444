#pragma once
/// @file
/// @brief CachedAttention's truncation (§3.5): on overflow drop the oldest `ratio` of the history
/// (paper default one half) and keep the rest of the stored KV, which stays valid when keys are
/// stored before RoPE (posenc::decoupled_rope).
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn::truncation {

class drop_oldest {
public:
    struct config {
        double ratio = 0.5;  ///< fraction of the history dropped on overflow, in (0, 1]
    };
    static constexpr std::string_view name = "drop_oldest";

    drop_oldest() = default;
    explicit drop_oldest(const config& c) : cfg_{detail::checked_ratio(c.ratio, name)} {}

    decision decide(std::int64_t history, std::int64_t needed, std::int64_t window) const {
        return {detail::drop_count(cfg_.ratio, history, needed, window), true};
    }

private:
    config cfg_{};
};
static_assert(truncation_policy<drop_oldest>);

}  // namespace cachedattn::truncation
