#pragma once
/// @file
/// @brief The paper's "TT" baseline: on overflow drop the same oldest tokens as drop_oldest but
/// discard the stored KV and recompute the kept history.
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn::truncation {

class recompute {
public:
    struct config {
        double ratio = 0.5;  ///< fraction of the history dropped on overflow, in (0, 1]
    };
    static constexpr std::string_view name = "recompute";

    recompute() = default;
    explicit recompute(const config& c) : cfg_{detail::checked_ratio(c.ratio, name)} {}

    decision decide(std::int64_t history, std::int64_t needed, std::int64_t window) const {
        return {detail::drop_count(cfg_.ratio, history, needed, window), false};
    }

private:
    config cfg_{};
};
static_assert(truncation_policy<recompute>);

}  // namespace cachedattn::truncation
