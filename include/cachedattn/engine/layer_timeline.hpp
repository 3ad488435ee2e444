#pragma once
/// @file
/// @brief `layer_pipeline`'s rule replayed on durations instead of threads: the simulator's
/// (and any cost model's) answer to "when does a prefill with layer-wise pre-loading finish".
///
/// The same two rules as layer_pipeline.hpp: layer l computes once layer l-1 has computed and
/// layer l's history is loaded; the loader copies layers in order and may start layer l only
/// once compute has asked for layer l-1-k (k = read buffer in layers). Compute asks for layer 0
/// at time 0; the loader may start at `loader_start` (0: with the job; negative: during the
/// previous job, as next-job pre-loading does, which still fills at most 1 + k layers before
/// the job starts; positive: after the job, when the link is still busy with other copies).
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "cachedattn/core/error.hpp"

namespace cachedattn {

struct layer_timeline_result {
    double compute_done = 0;  ///< when the last layer finishes computing (time 0 = job start)
    double load_done = 0;     ///< when the last layer's history is resident
    double stall = 0;         ///< total time compute waited for loads
};

inline layer_timeline_result layer_timeline(std::span<const double> load, std::span<const double> compute, int k,
                                            double loader_start = 0) {
    if (load.size() != compute.size()) throw config_error("layer_timeline: load and compute need one entry per layer");
    const std::size_t n = load.size();
    const auto buffer = static_cast<std::size_t>(std::max(k, 0));
    std::vector<double> ask(n), done(n);  // compute asks for layer l at ask[l]; finishes it at done[l]
    layer_timeline_result r;
    double loaded = loader_start;  // when the previous layer's load finished
    for (std::size_t l = 0; l < n; ++l) {
        ask[l] = l == 0 ? 0 : done[l - 1];
        // Layer l's load may start once compute has asked for layer l - 1 - k.
        double start = loaded;
        if (l >= buffer + 1) start = std::max(start, ask[l - 1 - buffer]);
        loaded = start + load[l];
        const double begin = std::max(ask[l], loaded);
        r.stall += begin - ask[l];
        done[l] = begin + compute[l];
    }
    r.compute_done = n ? done[n - 1] : 0;
    r.load_done = n ? loaded : 0;
    return r;
}

}  // namespace cachedattn
