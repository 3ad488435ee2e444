#pragma once
/// @file
/// @brief Discrete-event replay of a conversation trace through an engine on simulated time:
/// first turns arrive at their trace times, each later turn `think_s` after the session's
/// previous turn completed (or at its own trace time); arrived turns queue FCFS in the engine,
/// which sees them as its look-ahead, and are admitted whenever the simulated GPU has a free
/// slot; between events the clock jumps to the next arrival or completion. Works with any
/// engine whose backend is `sim::sim_backend`.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <functional>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/next_use.hpp"
#include "cachedattn/metrics/summary.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn::sim {

struct replay_options {
    /// Turns completed before measuring starts (they warm the store, as the paper's first 10K).
    std::size_t warmup_turns = 0;
    /// Called after each completed turn with (turns done, turns in all): progress reporting.
    std::function<void(std::size_t, std::size_t)> progress = nullptr;
    /// Kept up to date with every session's next use, for eviction::belady's oracle.
    next_use_table* oracle = nullptr;
};

struct replay_result {
    metrics::summary measured{3};
    std::size_t turns = 0;           ///< all turns run, warm-up included
    std::size_t reordered_jobs = 0;  ///< jobs the I/O-aware scheduler ran ahead of an earlier one
    std::size_t clipped_turns = 0;   ///< turns shortened to fit the context window
    double simulated_s = 0;          ///< simulated time at the end
    double measured_from_s = 0;      ///< simulated time when the warm-up turns had completed
    double busy_s = 0;               ///< GPU-busy simulated time while measuring (prefills, decode steps)
    double prefill_busy_s = 0;       ///< the prefills' part of busy_s
    double ssd_read_s = 0, ssd_write_s = 0;  ///< SSD-busy time reading / writing while measuring
    double ssd_bytes_read = 0, ssd_bytes_written = 0;  ///< SSD traffic while measuring
    double queue_s = 0;              ///< measured turns' total wait from arrival to admission
    double turn_s = 0;               ///< measured turns' total time from arrival to completion
    std::size_t max_queued = 0;      ///< longest the job queue got

    double mean_queue_s() const { return measured.turns() ? queue_s / static_cast<double>(measured.turns()) : 0; }
    double mean_turn_s() const { return measured.turns() ? turn_s / static_cast<double>(measured.turns()) : 0; }
    /// Simulated seconds measured (after the warm-up).
    double measured_s() const { return simulated_s - measured_from_s; }
    /// Share of the measured time the GPU was busy.
    double gpu_utilization() const { return measured_s() > 0 ? busy_s / measured_s() : 0; }
    /// Share of the GPU-busy time spent decoding (the part caching cannot remove).
    double decode_share() const { return busy_s > 0 ? 1 - prefill_busy_s / busy_s : 0; }
    /// Share of the measured time the SSDs were busy (reads and writes).
    double ssd_utilization() const { return measured_s() > 0 ? (ssd_read_s + ssd_write_s) / measured_s() : 0; }
};

/// Latest time a trace may name (about 31,700 years): simulated clocks are doubles, and past
/// this a step of a few milliseconds no longer moves them, so a replay could never end.
inline constexpr double max_trace_time_s = 1e12;

/// Throws input_error unless every turn's times are finite and within max_trace_time_s, and the
/// trace has a turn to replay.
inline void validate_times(const workload::trace& t) {
    if (t.turns() == 0) throw input_error("replay: the trace '" + t.source + "' has no turns");
    for (const auto& c : t.conversations)
        for (std::size_t k = 0; k < c.turns.size(); ++k) {
            const auto& turn = c.turns[k];
            const bool at_ok = turn.at_s < 0 ? k > 0 : turn.at_s <= max_trace_time_s;
            if (!at_ok || !std::isfinite(turn.at_s) || !(turn.think_s >= 0) || !(turn.think_s <= max_trace_time_s))
                throw input_error("replay: session " + std::to_string(c.session.value) + " turn " + std::to_string(k) +
                                  " of '" + t.source + "' has an arrival or think time that is negative, not finite "
                                  "or beyond 1e12 s");
            if (turn.input_tokens < 0 || turn.output_tokens < 0)
                throw input_error("replay: session " + std::to_string(c.session.value) + " turn " + std::to_string(k) +
                                  " has a negative token count");
        }
}

template <class Engine>
replay_result replay(const workload::trace& t, Engine& eng, const replay_options& opt = {}) {
    validate_times(t);
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
    // Turns queued or running, by session: a session has one turn in flight at most. Only
    // these are held, so memory follows the load, not the trace's length.
    struct in_flight {
        std::size_t conv = 0, turn = 0;
        double arrived = 0, admitted = 0;
        turn_metrics metrics{};
    };
    std::unordered_map<session_id, in_flight> flight;
    const std::size_t total = t.turns();
    double busy_mark = b.busy_s(), prefill_mark = b.prefill_busy_s();
    double ssd_r_mark = b.ssd_read_busy_s(), ssd_w_mark = b.ssd_write_busy_s();
    double ssd_rb_mark = b.ssd_bytes_read(), ssd_wb_mark = b.ssd_bytes_written();
    // When turn `k + 1` of conversation `c` arrives if turn k completes at `done` (nullopt: no such turn).
    auto next_arrival = [&](std::size_t c, std::size_t k, double done) -> std::optional<double> {
        const auto& turns = t.conversations[c].turns;
        if (k + 1 >= turns.size()) return std::nullopt;
        const auto& next = turns[k + 1];
        return next.at_s >= 0 ? std::max(next.at_s, done) : done + next.think_s;
    };
    auto submit_arrived = [&] {
        while (!arrivals.empty() && arrivals.top().at <= b.now()) {
            const arrival a = arrivals.top();
            arrivals.pop();
            const auto& conv = t.conversations[a.conv];
            const auto& turn = conv.turns[a.turn];
            // A turn longer than the window is clipped (the engine rejects it otherwise).
            std::vector<token_id> ids = workload::input_ids(conv, a.turn, b.vocab());
            std::int64_t in = static_cast<std::int64_t>(ids.size()), out = turn.output_tokens;
            if (in + out > window) {
                ++r.clipped_turns;
                in = std::min<std::int64_t>(in, window / 2);
                out = std::max<std::int64_t>(1, std::min<std::int64_t>(out, window - in));
                ids.resize(static_cast<std::size_t>(in));
            }
            if (ids.empty()) ids.push_back(0);  // a turn needs one input token
            eng.submit({conv.session, std::move(ids), static_cast<int>(out)});
            flight[conv.session] = {a.conv, a.turn, a.at, 0, {}};
            if (opt.oracle) opt.oracle->set(conv.session, a.at);
        }
        r.max_queued = std::max(r.max_queued, eng.queued());
    };
    for (;;) {
        while (eng.queued() > 0 && b.has_free_slot())
            for (auto& done : eng.step()) {
                auto& f = flight.at(done.session);
                f.admitted = b.now();
                f.metrics = done.result.metrics;
                if (opt.oracle) {  // the next turn comes after this one completes: no earlier than if it completed now
                    if (const auto at = next_arrival(f.conv, f.turn, b.now())) opt.oracle->set(done.session, *at);
                    else opt.oracle->forget(done.session);
                }
            }
        if (arrivals.empty() && eng.queued() == 0 && b.running() == 0) break;
        b.run_until(arrivals.empty() ? b.never : arrivals.top().at);
        for (const auto& c : b.take_completions()) {
            const auto it = flight.find(c.session);
            in_flight f = std::move(it->second);
            flight.erase(it);
            const std::size_t ci = f.conv;
            const auto& conv = t.conversations[ci];
            if (r.turns >= opt.warmup_turns) {
                f.metrics.decode_s = c.decode_end_s - c.first_token_s;
                r.measured.add(f.metrics);
                r.queue_s += f.admitted - f.arrived;
                r.turn_s += c.finished_s - f.arrived;
            }
            if (++r.turns == opt.warmup_turns) {
                busy_mark = b.busy_s();
                prefill_mark = b.prefill_busy_s();
                ssd_r_mark = b.ssd_read_busy_s();
                ssd_w_mark = b.ssd_write_busy_s();
                ssd_rb_mark = b.ssd_bytes_read();
                ssd_wb_mark = b.ssd_bytes_written();
                r.measured_from_s = b.now();
            }
            if (const auto at = next_arrival(ci, f.turn, c.finished_s)) {
                arrivals.push({*at, ci, f.turn + 1});
                if (opt.oracle) opt.oracle->set(conv.session, *at);
            } else {
                eng.end_session(conv.session);
            }
            if (opt.progress) opt.progress(r.turns, total);
        }
        submit_arrived();
    }
    r.simulated_s = b.now();
    r.reordered_jobs = eng.reordered_jobs();
    r.busy_s = b.busy_s() - busy_mark;
    r.prefill_busy_s = b.prefill_busy_s() - prefill_mark;
    r.ssd_read_s = b.ssd_read_busy_s() - ssd_r_mark;
    r.ssd_write_s = b.ssd_write_busy_s() - ssd_w_mark;
    r.ssd_bytes_read = b.ssd_bytes_read() - ssd_rb_mark;
    r.ssd_bytes_written = b.ssd_bytes_written() - ssd_wb_mark;
    return r;
}

}  // namespace cachedattn::sim
