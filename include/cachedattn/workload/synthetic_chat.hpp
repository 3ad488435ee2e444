#pragma once
/// @file
/// @brief A small built-in multi-turn workload: N sessions x T turns with random token ids,
/// interleaved so that sessions take turns out of order (as a serving queue sees them).
/// Seeded and reproducible. (The ShareGPT-like generator and trace readers are separate.)
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/session.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn::workload {

struct synthetic_chat_config {
    int sessions = 20;
    int turns = 6;
    int min_input = 8, max_input = 40;    ///< new tokens per turn, uniform
    int min_output = 8, max_output = 24;  ///< max_new_tokens per turn, uniform
    int vocab = 512;
    std::uint64_t seed = 42;
};

/// A trace whose turns carry token ids and arrive one per second in a random interleaving:
/// each session's turns keep their order; sessions interleave at random. Run it with
/// engine/run_trace.hpp (or `in_arrival_order`) on a real backend, or sim::replay.
inline trace synthetic_chat(const synthetic_chat_config& c) {
    if (c.sessions <= 0 || c.turns <= 0) throw config_error("synthetic_chat: sessions and turns must be > 0");
    if (c.min_input < 1 || c.max_input < c.min_input || c.min_output < 1 || c.max_output < c.min_output)
        throw config_error("synthetic_chat: need 1 <= min <= max for input and output lengths");
    if (c.vocab <= 0) throw config_error("synthetic_chat: vocab must be > 0");
    std::mt19937_64 rng(c.seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    // Interleave: a random sequence holding each session `turns` times.
    std::vector<std::uint64_t> order;
    for (int t = 0; t < c.turns; ++t)
        for (int s = 0; s < c.sessions; ++s) order.push_back(static_cast<std::uint64_t>(s));
    std::shuffle(order.begin(), order.end(), rng);
    trace out;
    out.source = "synthetic_chat(seed " + std::to_string(c.seed) + ")";
    out.conversations.resize(static_cast<std::size_t>(c.sessions));
    for (std::size_t s = 0; s < out.conversations.size(); ++s) out.conversations[s].session = session_id{s + 1};
    for (std::size_t i = 0; i < order.size(); ++i) {
        trace_turn t;
        t.input.resize(static_cast<std::size_t>(uniform(c.min_input, c.max_input)));
        for (auto& tok : t.input) tok = uniform(0, c.vocab - 1);
        t.input_tokens = static_cast<std::int32_t>(t.input.size());
        t.output_tokens = uniform(c.min_output, c.max_output);
        t.at_s = static_cast<double>(i);
        out.conversations[order[i]].turns.push_back(std::move(t));
    }
    return out;
}

}  // namespace cachedattn::workload
