#pragma once
/// @file
/// @brief The one workload type, for every backend: conversations made of turns, each with its
/// input (token ids, or only a count), its output length and its timing. Produced by the
/// built-in chat generator (synthetic_chat.hpp, with token ids), the ShareGPT-like generator
/// (sharegpt_like.hpp) and the ShareGPT JSON and BurstGPT CSV readers (trace_readers.hpp), all
/// counts only. The real backends run a trace in arrival order (engine/run_trace.hpp), the
/// simulator replays it on simulated time (sim/replay.hpp); a turn given as a count gets the
/// same token ids on both (`input_ids`).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cachedattn/core/session.hpp"

namespace cachedattn::workload {

/// One turn (a job): the user's new tokens and the tokens the model answers with.
struct trace_turn {
    std::int32_t input_tokens = 0;  ///< input length (input.size() when ids are given)
    std::int32_t output_tokens = 0;
    /// When the turn arrives: `at_s >= 0` is an absolute time from the trace; otherwise the turn
    /// arrives `think_s` seconds after the session's previous turn finished (the first turn of a
    /// session always has an absolute time).
    double at_s = -1;
    double think_s = 0;
    /// The input's token ids; empty: `input_tokens` ids drawn by `input_ids` from the session
    /// and turn number (the traces carry lengths, not text).
    std::vector<token_id> input;
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

/// Turn `k` of conversation `c`'s input ids in [0, vocab): its own ids when it has them, else
/// `input_tokens` ids drawn from a generator seeded by the session and turn (the same ids on
/// every backend and every run).
inline std::vector<token_id> input_ids(const conversation& c, std::size_t k, int vocab) {
    const trace_turn& t = c.turns.at(k);
    if (!t.input.empty()) return t.input;
    std::vector<token_id> ids(static_cast<std::size_t>(std::max(t.input_tokens, 0)));
    std::uint64_t x = (c.session.value + 1) * 0x9E3779B97F4A7C15ull ^ (k + 1) * 0xBF58476D1CE4E5B9ull;
    for (auto& id : ids) {  // splitmix64
        x += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        id = static_cast<token_id>((z ^ (z >> 31)) % static_cast<std::uint64_t>(vocab > 0 ? vocab : 1));
    }
    return ids;
}

/// A turn as a real backend runs it: whose it is, which of its turns, the ids, the output length.
struct chat_turn {
    session_id session;
    int turn = 0;                 ///< 0-based turn number within the session
    std::vector<token_id> input;  ///< the user's new tokens
    int max_new_tokens = 0;
};

/// Every turn of `t` in arrival order, as a backend that does not simulate time runs them: a turn
/// given an absolute time arrives then; one given a think time arrives that long after its
/// session's previous turn arrived (service takes no time here). Ties keep trace order.
inline std::vector<chat_turn> in_arrival_order(const trace& t, int vocab) {
    struct key {
        double at;
        std::size_t conv, turn;
    };
    std::vector<key> order;
    order.reserve(t.turns());
    for (std::size_t c = 0; c < t.conversations.size(); ++c) {
        double at = 0;
        for (std::size_t k = 0; k < t.conversations[c].turns.size(); ++k) {
            const auto& turn = t.conversations[c].turns[k];
            at = turn.at_s >= 0 ? std::max(turn.at_s, at) : at + turn.think_s;
            order.push_back({at, c, k});
        }
    }
    std::stable_sort(order.begin(), order.end(), [](const key& a, const key& b) { return a.at < b.at; });
    std::vector<chat_turn> out;
    out.reserve(order.size());
    for (const auto& o : order) {
        const auto& conv = t.conversations[o.conv];
        out.push_back({conv.session, static_cast<int>(o.turn), input_ids(conv, o.turn, vocab),
                       std::max(conv.turns[o.turn].output_tokens, 1)});
    }
    return out;
}

}  // namespace cachedattn::workload
