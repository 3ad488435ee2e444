#pragma once
/// @file
/// @brief Serves a workload trace on a real backend (cpu, cuda): every turn in arrival order
/// through the engine's job queue, keeping up to `queue_depth` jobs queued (the look-ahead the
/// scheduler-aware policies see). The simulator replays the same trace on simulated time
/// (sim::replay).
#include <cstddef>
#include <vector>

#include "cachedattn/engine/job_queue.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn {

/// Calls `on_result(const job_result&)` for every job as it finishes.
template <class Engine, class OnResult>
void run_trace(Engine& eng, const workload::trace& t, std::size_t queue_depth, OnResult&& on_result) {
    static_assert(!Engine::simulated, "run_trace runs a trace on a real backend; replay it on the simulator "
                                      "with sim::replay(trace, engine), which keeps its timing");
    const auto turns = workload::in_arrival_order(t, eng.model_backend().vocab());
    std::size_t next = 0;
    const std::size_t depth = queue_depth ? queue_depth : 1;
    while (next < turns.size() || eng.queued() > 0) {
        while (next < turns.size() && eng.queued() < depth) {
            const auto& turn = turns[next++];
            eng.submit({turn.session, turn.input, turn.max_new_tokens});
        }
        for (const auto& done : eng.step()) on_result(done);
    }
}

/// Every job's result, in the order they finished.
template <class Engine>
std::vector<job_result> run_trace(Engine& eng, const workload::trace& t, std::size_t queue_depth = 16) {
    std::vector<job_result> out;
    run_trace(eng, t, queue_depth, [&](const job_result& r) { out.push_back(r); });
    return out;
}

}  // namespace cachedattn
