#pragma once
/// @file
/// @brief The simulator backend: the same engine, hierarchy and policies, with no tensors. The
/// engine charges each job's work to the simulated server's resources at the point where the
/// real engine would start it, and reads its time from here (`now()`) instead of the wall
/// clock. Pair it with accounting-only tiers (sim_device_tier,
/// sim_host_tier, sim_file_tier) so that HBM, DRAM and SSD can have the paper's capacities.
///
/// What is modelled: three resources. The SSDs (striped; two classes: reads of hits from the
/// SSD tier, which a job waits for, go first, FCFS among themselves; the prefetcher's reads and
/// the demotions' writes use the time they leave, FCFS among themselves, and a fetched session's
/// turn cannot load it before its read is done), the host link (FCFS:
/// layer-wise pre-loading beside the prefill with the engine's read buffer and any head start
/// from next-job pre-loading, the rule `layer_pipeline` enforces on real threads; whole-session
/// loads; synchronous saves; write-back demotions), and the GPU (`gpu_server`: continuous
/// batching of up to `decode_batch` jobs, prefills first, tensor-parallel all-reduces in every
/// layer). `now()` is when the engine admits the next job; a job's completion comes later, from
/// run_until(). Asynchronous saves (device to host, the link's other direction) cost no job
/// time.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"
#include "cachedattn/engine/layer_timeline.hpp"
#include "cachedattn/sim/cost_model.hpp"
#include "cachedattn/sim/gpu_server.hpp"

namespace cachedattn::sim {

/// A load the prefill overlaps with: `bytes` of history KV from tier `from_tier`, read buffer
/// `buffer_layers`, its copy over the link allowed to start at `ready_at` (after any SSD read;
/// before the job's admission when next-job pre-loading started it).
struct overlapped_load {
    double bytes = 0;
    std::size_t from_tier = 1;
    int buffer_layers = 1;
    double ready_at = 0;
    /// Grow the read buffer to what hides this load (paper §3.2): see hiding_buffer_layers.
    bool size_buffer = false;
};

/// Layers of read buffer that hide a layer-wise load whose layer copies take `copy_s` while
/// its layers compute in `compute_s` (paper §3.2: the buffer holds B (T_load L_hist - T_pref
/// L_new) bytes, the load's excess over the prefill): ceil(layers (1 - compute / copy)), 0 when
/// compute is the slower. It hides the load only when that many layers were loaded ahead.
inline int hiding_buffer_layers(int layers, double copy_s, double compute_s) {
    if (!(copy_s > compute_s) || layers <= 0) return 0;
    return std::min(layers, static_cast<int>(std::ceil(layers * (1 - compute_s / copy_s) - 1e-9)));
}

struct sim_options {
    /// Continuous batching: at most this many jobs on the GPU at once, decoding together (the
    /// paper serves with batch 24).
    int decode_batch = 24;
    std::uint64_t seed = 0;  ///< folded into weights_id: "which weights" for the fingerprint
};

class sim_backend {
public:
    static constexpr std::string_view name = "sim";
    static constexpr bool simulated = true;
    static constexpr double never = gpu_server::never;

    sim_backend(const model::model_config& m, const gpu_profile& p, sim_options o = {})
        : cost_(m, p), opt_(o), rope_(m.head_dim, m.context_window, m.rope()), gpu_(cost_, o.decode_batch) {
        if (o.decode_batch < 1) throw config_error("sim_backend: decode_batch must be >= 1");
    }
    // The GPU server points at cost_.
    sim_backend(const sim_backend&) = delete;
    sim_backend& operator=(const sim_backend&) = delete;

    // ---- model_backend
    model_geometry geometry() const { return cost_.model().geometry(); }
    std::uint64_t weights_id() const noexcept { return 0x5157'0000'0000'0000ull ^ opt_.seed; }
    /// The model's vocabulary: any token id the real backends take is valid here. Token content
    /// is not modelled: every generated token is id 0.
    int vocab() const noexcept { return cost_.model().vocab; }
    std::int64_t context_window() const noexcept { return cost_.model().context_window; }
    const rope_table& rope() const noexcept { return rope_; }
    /// A prefill alone (the concept's entry point): the clock moves to its end.
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool, std::span<float> logits) {
        const double end = prefill(kv.tokens, static_cast<std::int64_t>(tokens.size()), nullptr, now_);
        advance_to(end);
        std::fill(logits.begin(), logits.end(), 0.0f);
    }

    // ---- the server's clock
    /// When the engine admits its next job.
    double now() const noexcept { return now_; }
    /// Runs the server to `t` or to the first job completion before it, whichever comes first;
    /// the clock moves there. Returns whether a job completed (see take_completions()).
    bool run_until(double t) {
        const bool done = gpu_.run(t, true, done_);
        if (gpu_.time() > now_ && gpu_.time() != never) now_ = gpu_.time();
        return done;
    }
    /// Runs the server to `t` (every completion up to then is recorded); never backwards.
    void advance_to(double t) {
        gpu_.run(t, false, done_);
        now_ = std::max(now_, t);
    }
    /// Runs until a job may be admitted (a slot on the GPU is free).
    void wait_for_slot() {
        while (!gpu_.has_free_slot()) run_until(never);
    }
    /// Runs until every admitted job has completed.
    void run_until_idle() {
        while (gpu_.jobs() > 0) run_until(never);
    }
    bool has_free_slot() const noexcept { return gpu_.has_free_slot(); }
    /// Jobs admitted and not completed.
    std::size_t running() const noexcept { return gpu_.jobs(); }
    /// Completions since the last call, in time order.
    std::vector<completion> take_completions() { return std::exchange(done_, {}); }
    /// GPU-busy seconds so far (prefills and decode steps; idle time not counted).
    double busy_s() const noexcept { return gpu_.busy_s(); }
    /// The prefills' part of busy_s().
    double prefill_busy_s() const noexcept { return gpu_.prefill_busy_s(); }
    /// Seconds the SSDs spent reading / writing so far, and the bytes.
    double ssd_read_busy_s() const noexcept { return ssd_read_s_; }
    double ssd_write_busy_s() const noexcept { return ssd_write_s_; }
    double ssd_bytes_read() const noexcept { return ssd_read_bytes_; }
    double ssd_bytes_written() const noexcept { return ssd_write_bytes_; }
    /// When the SSDs are next free (everything charged so far is done).
    double ssd_free() const noexcept { return std::max(ssd_free_, ssd_bg_free_); }

    // ---- what the engine charges a job (absolute simulated times; each returns when it ends)
    /// A read of `bytes` from the SSD that may start at `not_before`.
    /// A job waits for it (a hit on the SSD): it goes ahead of background I/O, which yields
    /// the time it takes (I/O is issued in small chunks, so a hit waits for no background chunk).
    double ssd_read(double bytes, double not_before) {
        const double s = cost_.ssd_read_s(bytes);
        ssd_read_s_ += s;
        ssd_read_bytes_ += bytes;
        const double start = std::max(ssd_free_, not_before);
        ssd_free_ = start + s;
        if (ssd_bg_free_ > start) ssd_bg_free_ += s;
        return ssd_free_;
    }
    /// Background I/O no job waits for now: a prefetch's read (`write` false) or a demotion's
    /// write, FCFS behind earlier background I/O and any hit reads queued. Returns when it is done.
    double ssd_background(double bytes, bool write, double not_before) {
        const double s = write ? cost_.ssd_write_s(bytes) : cost_.ssd_read_s(bytes);
        (write ? ssd_write_s_ : ssd_read_s_) += s;
        (write ? ssd_write_bytes_ : ssd_read_bytes_) += bytes;
        ssd_bg_free_ = std::max({ssd_bg_free_, not_before, ssd_free_}) + s;
        return ssd_bg_free_;
    }
    /// A copy over the host link (a whole-session load, a synchronous save, a demotion).
    double transfer(double bytes, double not_before) {
        link_free_ = std::max(link_free_, not_before) + cost_.link_s(bytes);
        return link_free_;
    }
    /// Prefill of `n` new tokens after `cached` cached ones, on the GPU once it is free and no
    /// earlier than `not_before`, overlapping `load`'s layer-wise copy if given (compute starts
    /// once the load's data is in host memory). Returns when the first token is out.
    double prefill(std::int64_t cached, std::int64_t n, const overlapped_load* load, double not_before) {
        sync();
        const slot p = plan_prefill(cached, n, load, not_before);
        link_free_ = p.link_free;
        gpu_.add_prefill(p.start, p.end);
        return p.end;
    }

    // ---- what a job would cost, charging nothing (the engine's load-or-recompute choice)
    /// When `prefill(cached, n, load, not_before)` would put out its first token if called now.
    double prefill_estimate(std::int64_t cached, std::int64_t n, const overlapped_load* load, double not_before) {
        sync();  // the server would reach this time anyway before the prefill starts
        return plan_prefill(cached, n, load, not_before).end;
    }
    /// When `ssd_read(bytes, not_before)` would end if called now.
    double ssd_read_estimate(double bytes, double not_before) const {
        return std::max(ssd_free_, not_before) + cost_.ssd_read_s(bytes);
    }
    /// When `transfer(bytes, not_before)` would end if called now.
    double transfer_estimate(double bytes, double not_before) const {
        return std::max(link_free_, not_before) + cost_.link_s(bytes);
    }

    /// The job that prefilled until `first_token` decodes `steps` tokens after its `context`
    /// tokens in the batch; it completes `tail_s` after its last step. Takes a GPU slot until then.
    void decode(session_id s, double first_token, std::int64_t context, std::int64_t steps, double tail_s = 0) {
        gpu_.add_job(s, first_token, context, std::max<std::int64_t>(steps, 0), tail_s);
    }

    const cost_model& costs() const noexcept { return cost_; }
    const sim_options& options() const noexcept { return opt_; }

private:
    struct slot {
        double start = 0, end = 0, link_free = 0;
    };
    /// Where a prefill would run on the GPU (and the link, for its load), after sync().
    slot plan_prefill(std::int64_t cached, std::int64_t n, const overlapped_load* load, double not_before) const {
        const int layers = cost_.model().layers;
        const double layer = cost_.prefill_layer_s(n, cached);
        slot p;
        p.start = std::max({not_before, now_, gpu_.prefill_free()});
        p.link_free = link_free_;
        double total = 0;
        if (!load) {
            total = layers * layer;
        } else {
            p.start = std::max(p.start, load->ready_at);
            const double copy_start = std::max(load->ready_at, link_free_);
            const std::vector<double> compute(static_cast<std::size_t>(layers), layer);
            const double copy_layer = cost_.link_s(load->bytes) / layers;
            const std::vector<double> copy(static_cast<std::size_t>(layers), copy_layer);
            const int k = load->size_buffer
                              ? std::max(load->buffer_layers, hiding_buffer_layers(layers, copy_layer, layer))
                              : load->buffer_layers;
            const auto t = layer_timeline(copy, compute, k, copy_start - p.start);
            total = t.compute_done;
            p.link_free = std::max(link_free_, p.start + t.load_done);
        }
        p.end = p.start + total + cost_.seconds(cost_.head(1));
        return p;
    }
    /// Brings the GPU up to the admission time, so work queued now starts no earlier.
    void sync() {
        if (gpu_.time() < now_) gpu_.run(now_, false, done_);
    }

    cost_model cost_;
    sim_options opt_;
    rope_table rope_;
    gpu_server gpu_;
    double now_ = 0;
    double ssd_free_ = 0, ssd_bg_free_ = 0, link_free_ = 0;
    double ssd_read_s_ = 0, ssd_write_s_ = 0, ssd_read_bytes_ = 0, ssd_write_bytes_ = 0;
    std::vector<completion> done_;
};

}  // namespace cachedattn::sim
