#pragma once
/// @file
/// @brief StreamingLLM's attention sinks (Xiao et al., ICLR'24): on overflow keep the first
/// `sink_tokens` tokens, which absorb attention mass, and the most recent window; drop the
/// oldest `ratio` of the tokens between them. The kept KV is reused when the positional
/// encoding can re-base the tokens after the gap (decoupled or re-rotated keys).
#include <algorithm>

#include "cachedattn/truncation/concept.hpp"

namespace cachedattn::truncation {

class attention_sink {
public:
    struct config {
        std::int64_t sink_tokens = 4;  ///< tokens always kept at the start
        double ratio = 0.5;            ///< fraction of the rest dropped on overflow, in (0, 1]
    };
    static constexpr std::string_view name = "attention_sink";

    attention_sink() = default;
    explicit attention_sink(const config& c) : cfg_{c.sink_tokens, detail::checked_ratio(c.ratio, name)} {
        if (c.sink_tokens < 0) throw config_error("truncation::attention_sink: sink_tokens must be >= 0");
    }

    decision decide(std::int64_t history, std::int64_t needed, std::int64_t window) const {
        // Keep the sinks only while the rest can still make the turn fit.
        const std::int64_t sink = std::clamp<std::int64_t>(window - needed, 0, std::min(cfg_.sink_tokens, history));
        const std::int64_t rest = history - sink;
        return {detail::drop_count(cfg_.ratio, rest, needed + sink, window), true, sink};
    }

private:
    config cfg_{};
};
static_assert(truncation_policy<attention_sink>);

}  // namespace cachedattn::truncation
