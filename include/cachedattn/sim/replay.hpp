#pragma once
/// @file
/// @brief Discrete-event replay of a conversation trace through an engine on simulated time:
/// first turns arrive at their trace times, each later turn `think_s` after the session's
/// previous turn finished (or at its own trace time); arrived turns queue FCFS in the engine,
/// which sees them as its look-ahead; when nothing is queued the clock jumps to the next
/// arrival. Works with any engine whose backend is `sim::sim_backend`.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "cachedattn/metrics/summary.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn::sim {

struct replay_options {
    /// Turns finished before measuring starts (they warm the store, as the paper's first 10K).
    std::size_t warmup_turns = 0;
    /// Called after each finished turn with (turns done, turns in all): progress reporting.
    std::function<void(std::size_t, std::size_t)> progress = nullptr;
};

struct replay_result {
    metrics::summary measured{3};
    std::size_t turns = 0;           ///< all turns run, warm-up included
    std::size_t clipped_turns = 0;   ///< turns shortened to fit the context window
    double simulated_s = 0;          ///< simulated time at the end
    double busy_s = 0;               ///< simulated time the GPUs spent on measured turns
};

template <class Engine>
replay_result replay(const workload::trace& t, Engine& eng, const replay_options& opt = {}) {
    auto& b = eng.model_backend();
    const std::int64_t window = b.context_window();
    replay_result r;
    r.measured = metrics::summary(Engine::hierarchy_type::tier_count);
    struct arrival {
        double at;
        std::size_t conv, turn;
        bool operator>(const arrival& o) const { return at != o.at ? at > o.at : conv > o.conv; }
    };
    std::priority_queue<arrival, std::vector<arrival>, std::greater<>> arrivals;
    for (std::size_t c = 0; c < t.conversations.size(); ++c)
        if (!t.conversations[c].turns.empty()) arrivals.push({t.conversations[c].turns[0].at_s, c, 0});
    const std::size_t total = t.turns();
    std::vector<std::size_t> conv_of_job;  // engine job id -> conversation
    std::vector<std::size_t> turn_of_job;
    while (!arrivals.empty() || eng.queued() > 0) {
        if (eng.queued() == 0) b.advance_to(arrivals.top().at);
        while (!arrivals.empty() && arrivals.top().at <= b.now()) {
            const arrival a = arrivals.top();
            arrivals.pop();
            const auto& conv = t.conversations[a.conv];
            const auto& turn = conv.turns[a.turn];
            // A turn longer than the window is clipped (the engine rejects it otherwise).
            std::int64_t in = turn.input_tokens, out = turn.output_tokens;
            if (in + out > window) {
                ++r.clipped_turns;
                in = std::min<std::int64_t>(in, window / 2);
                out = std::max<std::int64_t>(1, std::min<std::int64_t>(out, window - in));
            }
            const std::uint64_t id = eng.submit(
                {conv.session, std::vector<token_id>(static_cast<std::size_t>(std::max<std::int64_t>(in, 1)), 0),
                 static_cast<int>(out)});
            if (conv_of_job.size() <= id) {
                conv_of_job.resize(id + 1);
                turn_of_job.resize(id + 1);
            }
            conv_of_job[id] = a.conv;
            turn_of_job[id] = a.turn;
        }
        for (const auto& done : eng.step()) {
            const std::size_t c = conv_of_job[done.id], k = turn_of_job[done.id];
            const auto& conv = t.conversations[c];
            if (r.turns >= opt.warmup_turns) {
                r.measured.add(done.result.metrics);
                r.busy_s += done.result.metrics.ttft_s + done.result.metrics.decode_s + done.result.metrics.save_s;
            }
            ++r.turns;
            if (k + 1 < conv.turns.size()) {
                const auto& next = conv.turns[k + 1];
                arrivals.push({next.at_s >= 0 ? std::max(next.at_s, b.now()) : b.now() + next.think_s, c, k + 1});
            } else {
                eng.end_session(conv.session);
            }
            if (opt.progress) opt.progress(r.turns, total);
        }
    }
    r.simulated_s = b.now();
    return r;
}

}  // namespace cachedattn::sim
