#pragma once
/// @file
/// @brief The engine's run-time settings, and the compile-time check that a stack and a backend
/// belong together (simulated tiers with the simulator, real tiers with a real model).
#include <cstddef>

#include "cachedattn/engine/load_or_recompute.hpp"
#include "cachedattn/hierarchy/tiers.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn {

struct engine_config {
    /// false: drop every session's KV when its turn ends (the paper's "RE" baseline: recompute
    /// the whole history every turn). A stack whose saving policy is saving::discard never retains.
    bool retain_across_turns = true;
    /// Copy the logits that chose each turn's first token into the result (tests).
    bool record_logits = false;
    /// Jobs taken from the queue per scheduling iteration.
    std::size_t batch_size = 1;
    /// Layer-wise pre-loading of a hit from DRAM or below: < 0 loads the whole session before
    /// the prefill; k >= 0 copies layer by layer on the load stream while the prefill runs, at
    /// most 1 + k layers ahead of compute (k = the read buffer in layers, paper §3.2).
    int preload_buffer_layers = 1;
    /// On simulated time, grow each load's read buffer to the layers that hide it (paper §3.2:
    /// B (T_load L_hist - T_pref L_new) bytes), never below preload_buffer_layers. The real
    /// backends allocate a session's device blocks before loading it, so there a larger
    /// preload_buffer_layers costs no memory: set it to the layer count to let the loader run free.
    bool size_preload_buffer = true;
    /// With pre-loading on, also start loading the next queued job's KV (its first 1 + k
    /// layers) while the current job runs, so that its first layers do not wait either.
    bool preload_next_job = true;
    /// I/O-aware scheduling (beyond the paper; 0 = FCFS, the paper's): when the job at the head
    /// of the queue must read its KV from below DRAM, run the first job among the next
    /// `io_aware_window` whose KV is in device memory or DRAM (or who has none stored) first.
    /// A job is passed over at most `io_aware_max_passes` times; a session's jobs keep their order.
    std::size_t io_aware_window = 0;
    std::size_t io_aware_max_passes = 4;
    /// Load or recompute, per turn (beyond the paper; the default always loads, as the paper
    /// does): see load_or_recompute.hpp.
    load_or_recompute load_choice{};
};

namespace detail {
template <class Stack>
struct stack_tiers_are_accounting;
template <template <class...> class H, class... T, class... P>
struct stack_tiers_are_accounting<H<tiers<T...>, P...>> {
    static constexpr bool all = (tier::accounting_tier<T> && ...);
    static constexpr bool none = (!tier::accounting_tier<T> && ...);
};
}  // namespace detail

}  // namespace cachedattn
