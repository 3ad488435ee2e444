#pragma once
/// @file
/// @brief The simulator backend: the same engine, hierarchy and policies, with no tensors. Each
/// call advances a simulated clock by what the cost model says the work takes on the GPU
/// profile; the engine reads its time from here (`now()`) instead of the wall clock. Pair it
/// with accounting-only tiers (device_tier{.accounting_only = true}, sim_host_tier,
/// sim_file_tier) so that HBM, DRAM and SSD can have the paper's capacities.
///
/// What is modelled: prefill per layer (roofline), layer-wise pre-loading over the host link
/// with the engine's read buffer and any head start from next-job pre-loading
/// (`layer_timeline`, the rule `layer_pipeline` enforces on real threads), SSD reads before a
/// hit from the SSD tier is loaded, decode steps as a share of a batch of `decode_batch`
/// sequences, synchronous saves and write-back demotions over the link. Asynchronous saves and
/// SSD writes and prefetches run off the critical path and cost no job time.
#include <cstdint>
#include <span>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"
#include "cachedattn/engine/layer_timeline.hpp"
#include "cachedattn/sim/cost_model.hpp"

namespace cachedattn::sim {

/// A load the prefill overlaps with: `bytes` of history KV from tier `from_tier` (>= 2: read
/// from the SSD first), read buffer `buffer_layers`, started `head_start_s` before the job.
struct overlapped_load {
    double bytes = 0;
    std::size_t from_tier = 1;
    int buffer_layers = 1;
    double head_start_s = 0;
};

struct sim_options {
    /// Decode runs in batches of this many sequences: a job pays 1/decode_batch of a batch step
    /// over a batch of sequences as long as its own (the paper serves with batch 24).
    int decode_batch = 24;
    std::uint64_t seed = 0;  ///< folded into weights_id: "which weights" for the fingerprint
};

class sim_backend {
public:
    static constexpr std::string_view name = "sim";
    static constexpr bool simulated = true;

    sim_backend(const model::model_config& m, const gpu_profile& p, sim_options o = {})
        : cost_(m, p), opt_(o), rope_(m.head_dim, m.context_window, m.rope()) {
        if (o.decode_batch < 1) throw config_error("sim_backend: decode_batch must be >= 1");
    }

    // ---- model_backend
    model_geometry geometry() const { return cost_.model().geometry(); }
    std::uint64_t weights_id() const noexcept { return 0x5157'0000'0000'0000ull ^ opt_.seed; }
    /// No token content: every token is id 0, so every generated token is too.
    int vocab() const noexcept { return 1; }
    std::int64_t context_window() const noexcept { return cost_.model().context_window; }
    const rope_table& rope() const noexcept { return rope_; }
    /// A prefill with nothing to overlap (the concept's entry point).
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool, std::span<float> logits) {
        prefill(kv.tokens, static_cast<std::int64_t>(tokens.size()), nullptr);
        std::fill(logits.begin(), logits.end(), 0.0f);
    }

    // ---- what the engine calls when it runs on simulated time
    double now() const noexcept { return now_; }
    void advance(double seconds) { now_ += seconds; }
    /// Moves the clock forward to `t` (an arrival while idle); never backwards.
    void advance_to(double t) { now_ = std::max(now_, t); }
    /// Prefill of `n` new tokens after `cached` cached ones, overlapping `load` if given.
    void prefill(std::int64_t cached, std::int64_t n, const overlapped_load* load) {
        const int layers = cost_.model().layers;
        const double layer = cost_.prefill_layer_s(n, cached);
        double total = 0;
        if (!load) {
            total = layers * layer;
        } else {
            const std::vector<double> compute(static_cast<std::size_t>(layers), layer);
            const std::vector<double> copy(static_cast<std::size_t>(layers), cost_.link_s(load->bytes) / layers);
            total = layer_timeline(copy, compute, load->buffer_layers, -load->head_start_s).compute_done;
        }
        now_ += total + cost_.seconds(cost_.head(1));
    }
    /// `steps` decode steps at contexts first, first+1, ... (closed form, see cost_model).
    void decode_steps(std::int64_t first, std::int64_t steps) {
        const auto b = static_cast<std::int64_t>(opt_.decode_batch);
        now_ += cost_.decode_steps_s(b, first, steps) / static_cast<double>(b);
    }
    /// A copy over the host link on the critical path (a load, a synchronous save, a demotion).
    void transfer(double bytes) { now_ += cost_.link_s(bytes); }
    /// A read from the SSD on the critical path.
    void ssd_read(double bytes) { now_ += cost_.ssd_read_s(bytes); }

    const cost_model& costs() const noexcept { return cost_; }
    const sim_options& options() const noexcept { return opt_; }

private:
    cost_model cost_;
    sim_options opt_;
    rope_table rope_;
    double now_ = 0;
};

}  // namespace cachedattn::sim
