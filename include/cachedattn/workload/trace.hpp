#pragma once
/// @file
/// @brief Conversation traces for the simulator and the comparison harness: sessions made of
/// turns with token counts (no token ids) and timing. Produced by the ShareGPT-like generator
/// (sharegpt_like.hpp) and the ShareGPT JSON and BurstGPT CSV readers (trace_readers.hpp).
#include <cstdint>
#include <string>
#include <vector>

#include "cachedattn/core/session.hpp"

namespace cachedattn::workload {

/// One turn (a job): the user's new tokens and the tokens the model answers with.
struct trace_turn {
    std::int32_t input_tokens = 0;
    std::int32_t output_tokens = 0;
    /// When the turn arrives: `at_s >= 0` is an absolute time from the trace; otherwise the turn
    /// arrives `think_s` seconds after the session's previous turn finished (the first turn of a
    /// session always has an absolute time).
    double at_s = -1;
    double think_s = 0;
};

/// A conversation: a session id and its turns in order.
struct conversation {
    session_id session;
    std::vector<trace_turn> turns;
};

/// A whole workload, conversations ordered by their first turn's arrival.
struct trace {
    std::string source;  ///< what produced it (file name or generator and seed), for metadata
    std::vector<conversation> conversations;

    std::size_t turns() const noexcept {
        std::size_t n = 0;
        for (const auto& c : conversations) n += c.turns.size();
        return n;
    }
};

}  // namespace cachedattn::workload
