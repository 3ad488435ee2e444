#pragma once
/// @file
/// @brief `engine<Hierarchy, Backend>`: runs conversation turns, keeping each session's KV
/// across turns in the hierarchy (the paper's CachedAttention flow, §3).
///
/// A turn: find the session's KV in whatever tier holds it and bring it to the device tier;
/// on context overflow let the truncation policy drop the oldest tokens and the positional
/// encoding policy decide whether the kept KV is still valid; prefill what is not cached plus
/// the new tokens; decode greedily; keep the new KV in the device tier, from where eviction
/// moves it down as other sessions need room.
///
/// Copies overlap compute on two I/O streams (Boost.Asio threads on CPU): a load stream for
/// layer-wise pre-loading (including the next queued job's first layers while the current
/// job runs) and a save stream for asynchronous saving (the `Save` policy).
#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/core/error.hpp"
#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/engine/layer_pipeline.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/io/copy_stream.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/saving/async_save.hpp"
#include "cachedattn/saving/concept.hpp"
#include "cachedattn/sim/sim_backend.hpp"
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn {

/// @brief A queued turn.
struct job {
    session_id session;
    std::vector<token_id> input;
    int max_new_tokens = 1;
};

/// @brief A finished job.
struct job_result {
    std::uint64_t id = 0;
    session_id session;
    turn_result result;
};

struct engine_config {
    /// false: drop every session's KV when its turn ends (the paper's "RE" baseline:
    /// recompute the whole history every turn).
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
};

template <class Hierarchy, backend::model_backend Backend, saving::saving_policy Save = saving::async_save>
class engine {
public:
    using clock = std::chrono::steady_clock;
    using hierarchy_type = Hierarchy;
    using save_policy = Save;
    using posenc = typename Hierarchy::posenc_type;
    /// The backend runs on simulated time (sim::sim_backend): no copies, no threads; every
    /// cost is charged to the simulated server's resources at the point where the real engine
    /// would start it, and a job completes later on that server's clock.
    static constexpr bool simulated = requires { requires Backend::simulated; };

    engine(Hierarchy& h, Backend& b, engine_config c = {}) : h_(h), b_(b), cfg_(c), start_(clock::now()) {
        if (cfg_.batch_size == 0) throw config_error("engine: batch_size must be >= 1");
        if (!(h_.geometry() == b_.geometry()))
            throw config_error("engine: the hierarchy was built for a different model geometry than the backend");
        if (h_.fingerprint() != io::cache_fingerprint(b_.geometry(), b_.weights_id(), posenc::tag))
            throw config_error("engine: the hierarchy was built for other weights than the backend's "
                               "(construct it with backend.geometry() and backend.weights_id())");
        logits_.resize(static_cast<std::size_t>(b_.vocab()));
    }
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;
    /// Lets queued pre-loads finish and drains the save stream: no copy outlives the engine.
    ~engine() { synchronize(); }

    /// Waits until every copy queued so far has run (pre-loads for jobs not run yet are let run
    /// to the end). Saved copies are complete afterwards.
    void synchronize() {
        for (auto& [s, p] : pending_) p.pipe->release();
        load_stream_.synchronize();
        save_stream_.synchronize();
    }

    /// Runs one turn of `session`: `input` new tokens, then up to `max_new_tokens` greedy tokens.
    /// On simulated time the server runs until the turn (and anything admitted before it) is done.
    turn_result run_turn(session_id session, std::span<const token_id> input, int max_new_tokens) {
        validate(input, max_new_tokens);
        h_.set_time(now());
        turn_result r = run_job(session, input, max_new_tokens, queue_view{}, {});
        if constexpr (simulated) {
            std::vector<turn_metrics*> m{&r.metrics};
            finish_simulated(std::vector<session_id>{session}, m);
        }
        return r;
    }

    // ---------------------------------------------------------------- job queue
    /// Queues a turn (a job) behind the others, FCFS. Returns its id. Input is checked now.
    std::uint64_t submit(job j) {
        validate(j.input, j.max_new_tokens);
        const std::uint64_t id = next_id_++;
        order_.push(j.session);
        jobs_.push_back({id, std::move(j)});
        return id;
    }
    /// Jobs waiting.
    std::size_t queued() const noexcept { return jobs_.size(); }
    /// What the policies see of the queue.
    queue_view queue() const noexcept { return queue_view(order_); }

    /// One scheduling iteration: retire expired sessions, take up to `batch_size` jobs from
    /// the head of the queue (a session at most once per batch: its next turn needs this one's
    /// output), prefetch for the jobs behind them, then run the batch.
    ///
    /// On simulated time a step admits the jobs onto the simulated GPU (waiting for a free
    /// slot first): their decisions and time to first token are final, but they decode in the
    /// server's batch and complete later, so `decode_s` is 0 here; the completions come from
    /// the backend (sim::replay fills them in; drain() and run_turn() wait for them).
    std::vector<job_result> step() {
        if constexpr (simulated) b_.wait_for_slot();
        h_.set_time(now());
        h_.expire(queue());
        std::vector<queued_job> batch;
        while (!jobs_.empty() && batch.size() < cfg_.batch_size) {
            const session_id s = jobs_.front().work.session;
            if (std::any_of(batch.begin(), batch.end(), [&](const queued_job& b) { return b.work.session == s; })) break;
            order_.pop();
            batch.push_back(std::move(jobs_.front()));
            jobs_.pop_front();
        }
        const queue_view view = queue();
        // The batch has left the queue but runs now: the prefetcher must not move it down.
        std::vector<session_id> running;
        running.reserve(batch.size());
        for (const auto& b : batch) running.push_back(b.work.session);
        const auto fetched = h_.prefetch(view, running);
        if constexpr (simulated) charge_prefetches(fetched);
        std::vector<job_result> out;
        out.reserve(batch.size());
        std::vector<session_id> later;  // batch members not run yet keep their KV where it is
        for (std::size_t i = 0; i < batch.size(); ++i) {
            later.clear();
            for (std::size_t j = i + 1; j < batch.size(); ++j) later.push_back(batch[j].work.session);
            auto& w = batch[i].work;
            const job* next = i + 1 < batch.size() ? &batch[i + 1].work : jobs_.empty() ? nullptr : &jobs_.front().work;
            h_.set_time(now());
            out.push_back({batch[i].id, w.session, run_job(w.session, w.input, w.max_new_tokens, view, later, next)});
        }
        return out;
    }
    /// Runs steps until the queue is empty (on simulated time: until every job has completed).
    std::vector<job_result> drain() {
        std::vector<job_result> all;
        while (!jobs_.empty()) {
            auto r = step();
            std::move(r.begin(), r.end(), std::back_inserter(all));
        }
        if constexpr (simulated) {
            std::vector<session_id> sessions;
            std::vector<turn_metrics*> metrics;
            for (auto& r : all) {
                sessions.push_back(r.session);
                metrics.push_back(&r.result.metrics);
            }
            finish_simulated(sessions, metrics);
        }
        return all;
    }
    /// Seconds since the engine started (the clock time-aware policies see); simulated time when
    /// the backend is the simulator.
    double now() const {
        if constexpr (simulated) return b_.now();
        else return seconds(clock::now() - start_);
    }

private:
    /// A layer-wise load in flight: the loader copies `src` into the session's device blocks on
    /// the load stream; `pipe` orders it against compute.
    struct layer_load {
        std::shared_ptr<layer_pipeline> pipe;
        std::shared_ptr<kv_entry> src;
        std::shared_ptr<double> seconds;  ///< load duration, written before the last layer is marked
        std::size_t from_tier = 0;
        double started_at = 0;  ///< simulated: when the copy could start (next-job pre-loading)
        std::size_t dropped_front = 0;  ///< oldest tokens cut before loading (a truncating turn)
    };
    /// Bytes of KV an entry stands for (accounting-only entries carry none).
    std::size_t kv_bytes_of(const kv_entry& e) const {
        if constexpr (simulated) return kv_bytes_of(e.meta);
        else return e.data.size();
    }
    std::size_t kv_bytes_of(const kv_meta& m) const { return m.tokens.size() * h_.geometry().kv_bytes_per_token(); }

    turn_result run_job(session_id session, std::span<const token_id> input, int max_new_tokens,
                        const queue_view& queue, std::span<const session_id> pinned, const job* next = nullptr) {
        const double t0 = now();  // input was validated by run_turn or submit
        if constexpr (simulated) ready_ = t0;

        turn_result out;
        turn_metrics& m = out.metrics;
        // The session's history changes only when the turn succeeds: a failed turn puts back
        // what it changed (no copy per turn; histories are long).
        history_restore hist_guard(history_, session);
        std::vector<token_id>& hist = hist_guard.hist;
        const std::int64_t window = b_.context_window();
        const std::int64_t needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
        const auto stats_before = h_.stats();
        device_out_mark_ = stats_before.bytes_out[0];

        // 0. A load started while the previous job ran (still in the device tier: nothing moved it).
        std::optional<layer_load> load;
        if (auto it = pending_.find(session); it != pending_.end()) {
            if (h_.locate(session) == std::optional<std::size_t>(0)) load = std::move(it->second);
            pending_.erase(it);
        }
        if (!load) {
            // This session's saves from its previous turn may still be draining.
            const double w0 = now();
            h_.copies().settle(session);
            m.save_s += now() - w0;
        }

        // 1. Overflow: decide the truncation first; a cache it will discard is not loaded, and
        // a cache it cuts from the front is loaded without the cut tokens (trim_on_load).
        truncation::decision cut{};
        bool trim_on_load = false;
        if (static_cast<std::int64_t>(hist.size()) + needed > window) {
            cut = h_.truncation().decide(static_cast<std::int64_t>(hist.size()), needed, window);
            m.truncated = true;
            trim_on_load = trims_on_load(cut);
            if (load && !(trim_on_load && load->dropped_front == static_cast<std::size_t>(cut.drop_tokens))) {
                // Pre-loaded for another cut (not expected): never compute over a half load.
                h_.copies().settle(session);
                m.hit_tier = load->from_tier;
                load.reset();
            }
            // Not worth loading: the policy discards it, or truncation drops all of it.
            if (!load && h_.locate(session) &&
                (!cut.reuse_cache || (cut.keep_front == 0 && h_.meta(session).tokens.size() <=
                                                                static_cast<std::size_t>(cut.drop_tokens)))) {
                h_.drop(session);
                m.invalidated = true;
                m.hit_tier.reset();
            }
        }

        // 2. Find the stored KV and bring it to the device tier.
        bool have = false;
        if (load) {
            have = true;
            m.hit_tier = load->from_tier;
            m.bytes_loaded = kv_bytes_of(*load->src);
            m.preloaded_ahead = true;
        } else if (const auto where = h_.locate(session)) {
            if (cfg_.preload_buffer_layers >= 0 && *where > 0 && (!m.truncated || trim_on_load)) {
                if (usable(h_.meta(session), hist)) {
                    const std::size_t drop = trim_on_load ? static_cast<std::size_t>(cut.drop_tokens) : 0;
                    if constexpr (simulated) charge_ssd_background();  // queued before this read
                    if (auto staged = h_.promote_staged(session, pinned, queue, drop)) {
                        load = layer_load{nullptr, std::make_shared<kv_entry>(std::move(*staged)), nullptr, *where,
                                          now(), drop};
                        have = true;
                        m.hit_tier = *where;
                        m.bytes_loaded = kv_bytes_of(*load->src);
                        // The link copy can start once the read is done; the file tier reads
                        // the whole file, the cut happens in host memory.
                        if constexpr (simulated) {
                            if (*where >= 2) load->started_at = charge_ssd_hit(t0);
                            else load->started_at = std::max(load->started_at, fetch_done(session));
                        }
                    } else {
                        m.damaged = true;
                    }
                }  // else: the check below drops it without loading it
            } else {
                if constexpr (simulated) charge_ssd_background();
                auto p = h_.promote_to_device(session, pinned, queue);
                m.bytes_loaded = p.bytes;
                m.damaged = p.damaged;
                have = !p.damaged;
                if (have) m.hit_tier = *where;
                if constexpr (simulated) {
                    if (have && *where > 0) {  // the whole session over the link (and off the SSD) first
                        m.bytes_loaded = kv_bytes_of(h_.device().meta(session));
                        if (*where >= 2) ready_ = charge_ssd_hit(ready_);
                        else ready_ = std::max(ready_, fetch_done(session));
                        ready_ = b_.transfer(static_cast<double>(m.bytes_loaded), ready_);
                    }
                }
            }
        }
        auto& dev = h_.device();
        const std::size_t trimmed = load ? load->dropped_front : 0;  // the device entry starts at hist[trimmed]
        if (have && !usable(dev.meta(session), hist, trimmed)) {
            if (load) abort_load(session, *load);
            load.reset();
            h_.drop(session);
            have = false;
            m.hit_tier.reset();
            m.invalidated = true;
        }

        // 3. Apply the truncation to the history and to the stored KV.
        if (m.truncated) {
            const auto d = static_cast<std::size_t>(cut.drop_tokens);
            const auto k = static_cast<std::size_t>(cut.keep_front);
            hist_guard.cut(k, d);
            if (have && trimmed == d) {
                // Cut before loading: the device entry holds exactly the kept tokens, and keys
                // stored before RoPE need no re-encoding at their new positions.
            } else if (have) {
                // The device KV is rewritten below: any saved copy no longer matches it.
                h_.copies().discard(session);
                const std::size_t cached = dev.meta(session).tokens.size();
                if (k == 0 && cached <= d) {
                    h_.drop(session);
                    have = false;
                } else if (cached > k) {
                    dev.erase_tokens(session, k, d);
                    // Only cached tokens after the dropped range move to new positions.
                    const std::int64_t shift = cached > k + d ? static_cast<std::int64_t>(d) : 0;
                    if (h_.posenc().rebase(dev.view(session), static_cast<std::int64_t>(k), shift, b_.rope())) {
                        dev.set_rope_base(session, 0);
                    } else {
                        h_.drop(session);
                        have = false;
                        m.invalidated = true;
                    }
                }
                if (!have) m.hit_tier.reset();
            }
        }
        if (!have) h_.create_on_device(session);
        const std::size_t kv_len = dev.meta(session).tokens.size();
        const double t_loaded = simulated ? ready_ : now();  // simulated: when the loads are done
        m.load_s = t_loaded - t0 - m.save_s;

        try {
            compute(session, hist, kv_len, input, max_new_tokens, out, t0, t_loaded, queue, pinned, load, next);
        } catch (...) {
            if (load && load->pipe) load->pipe->abort();
            h_.drop(session);  // the device entry may hold KV the history does not (waits for copies)
            throw;
        }
        hist_guard.commit();
        if constexpr (simulated) charge_ssd_background();  // this turn's demotions to the SSD

        const auto& stats_after = h_.stats();
        for (std::size_t t = 0; t < Hierarchy::tier_count; ++t) {
            if (t > 0) m.bytes_demoted += stats_after.bytes_in[t] - stats_before.bytes_in[t];
            m.sessions_dropped += stats_after.drops[t] - stats_before.drops[t];
        }
        return out;
    }

public:
    /// The session's full token history as the engine sees it (after any truncation).
    const std::vector<token_id>& history(session_id s) const {
        static const std::vector<token_id> empty;
        auto it = history_.find(s);
        return it == history_.end() ? empty : it->second;
    }
    /// Forgets a finished conversation and its stored KV.
    void end_session(session_id s) {
        if (auto it = pending_.find(s); it != pending_.end()) pending_.erase(it);  // drop() settles it
        fetched_at_.erase(s);
        h_.drop(s);
        history_.erase(s);
    }
    Hierarchy& hierarchy() noexcept { return h_; }
    Backend& model_backend() noexcept { return b_; }
    const engine_config& config() const noexcept { return cfg_; }

private:
    /// Queues the layer-by-layer copy of `l.src` into `session`'s device blocks on the load
    /// stream, ordered by a new pipeline with the configured read buffer.
    void start_load(session_id session, layer_load& l) {
        l.pipe = std::make_shared<layer_pipeline>(h_.geometry().layers, cfg_.preload_buffer_layers);
        l.seconds = std::make_shared<double>(0);
        h_.copies().started(session);
        h_.copies().on_settle(session, [p = l.pipe] { p->release(); });
        load_stream_.post([&dev = h_.device(), &copies = h_.copies(), session, pipe = l.pipe, src = l.src,
                           secs = l.seconds, blocks = h_.device().block_ids(session)]() mutable {
            const auto start = clock::now();
            for (int layer = 0; layer < pipe->layers(); ++layer) {
                if (!pipe->wait_for_slot(layer)) break;
                dev.copy_layer(blocks, *src, layer);
                if (layer + 1 == pipe->layers()) *secs = seconds(clock::now() - start);
                pipe->loaded(layer);
            }
            pipe.reset();
            src.reset();
            secs.reset();
            copies.finished(session);
        });
    }
    /// Stops a load that will not be used and waits until it no longer touches the blocks.
    void abort_load(session_id session, layer_load& l) {
        if (l.pipe) l.pipe->abort();
        h_.copies().settle(session);
    }

    /// Starts loading the next job's KV into the device tier while this job runs (paper §3.2:
    /// loading for the next job begins before the previous one finishes). Only a clean,
    /// reusable hit from a lower tier that fits without touching `keep` is pre-loaded.
    void preload_next(const job* next, std::span<const session_id> keep, const queue_view& queue) {
        if (!next || cfg_.preload_buffer_layers < 0 || !cfg_.preload_next_job) return;
        const session_id s = next->session;
        const auto where = h_.locate(s);
        if (!where || *where == 0 || pending_.contains(s) ||
            std::find(keep.begin(), keep.end(), s) != keep.end())
            return;
        const auto& hist = history(s);
        std::size_t drop = 0;
        const auto hist_len = static_cast<std::int64_t>(hist.size());
        const std::int64_t needed = static_cast<std::int64_t>(next->input.size()) + next->max_new_tokens;
        if (hist_len + needed > b_.context_window()) {
            // It will truncate: load only what its turn keeps (the same decision its turn makes).
            const auto cut = h_.truncation().decide(hist_len, needed, b_.context_window());
            if (!trims_on_load(cut) || h_.meta(s).tokens.size() <= static_cast<std::size_t>(cut.drop_tokens)) return;
            drop = static_cast<std::size_t>(cut.drop_tokens);
        }
        if (!usable(h_.meta(s), hist)) return;
        std::vector<session_id> pinned(keep.begin(), keep.end());
        pinned.push_back(s);
        const std::size_t need = h_.staged_charge(s, drop);
        if (need > h_.device().capacity_bytes() || !h_.plan_room(0, need, pinned, queue)) return;
        if constexpr (simulated) charge_ssd_background();
        auto staged = h_.promote_staged(s, keep, queue, drop);
        if (!staged) return;  // damaged: its turn will see a miss
        layer_load l{nullptr, std::make_shared<kv_entry>(std::move(*staged)), nullptr, *where, 0, drop};
        if constexpr (simulated) {
            l.started_at = now();  // the link copy can start once any SSD read (here, as the real engine does) is done
            if (*where >= 2) l.started_at = charge_ssd_hit(now());
            else l.started_at = std::max(l.started_at, fetch_done(s));
        } else {
            start_load(s, l);
        }
        pending_.emplace(s, std::move(l));
    }

    // ---------------------------------------------------------------- saving
    /// What the turn's saving needs: the copy being written and what is already in it.
    struct save_job {
        std::shared_ptr<kv_entry> copy;
        std::vector<std::int32_t> blocks;
        std::size_t first_offset = 0;
        std::size_t from = 0;  ///< first token the device must supply (older ones come from a host copy)
        std::shared_ptr<kv_entry> base;  ///< host copy of tokens [0, from), if any
        bool steal = false;              ///< base may be moved from (nobody else reads it)
    };
    static constexpr bool saving_on = Save::mode != saving::save_mode::write_back;

    /// Sets up this turn's saved copy. Its older tokens come from a host copy when one holds
    /// exactly the device's KV now (the entry just loaded, or the previous turn's saved copy),
    /// else the device supplies all of them.
    save_job begin_save(session_id session, std::size_t kv_len, const std::optional<layer_load>& load) {
        auto& dev = h_.device();
        save_job sj;
        sj.blocks = dev.block_ids(session);
        sj.first_offset = dev.meta(session).first_offset;
        sj.copy = std::make_shared<kv_entry>(kv_entry{{}, std::pmr::vector<std::byte>(h_.device().host_resource())});
        sj.copy->meta.session = session;
        sj.base = load ? load->src : h_.copies().release(session);
        const kv_meta& now = dev.meta(session);
        if (!(sj.base && sj.base->meta.tokens == now.tokens && sj.base->meta.first_offset == now.first_offset &&
              sj.base->meta.rope_base == now.rope_base))
            sj.base.reset();
        sj.steal = sj.base && !load;  // the previous saved copy is ours; a loading entry is shared
        sj.from = sj.base ? kv_len : 0;
        h_.copies().keep(session, sj.copy);
        return sj;
    }
    /// Fills the copy's older tokens from the host base (no device read) and sizes it.
    void copy_base(session_id session, save_job& sj) {
        const std::size_t bytes = sj.blocks.size() * h_.device().block_bytes();
        run_save([copy = sj.copy, base = std::move(sj.base), bytes, steal = sj.steal]() mutable {
            if (base) copy->data = steal ? std::move(base->data) : base->data;
            copy->data.resize(bytes);
            base.reset();
            copy.reset();
        }, session);
    }
    /// Saves tokens [first, last) of the given layers.
    void save_tokens(session_id session, const save_job& sj, int layer_begin, int layer_end, std::size_t first,
                     std::size_t last, turn_metrics& m) {
        if (first >= last) return;
        m.bytes_saved += (last - first) * h_.geometry().kv_bytes_per_token() *
                         static_cast<std::size_t>(layer_end - layer_begin) / static_cast<std::size_t>(h_.geometry().layers);
        run_save([&dev = h_.device(), copy = sj.copy, blocks = sj.blocks, off = sj.first_offset, layer_begin, layer_end,
                  first, last]() mutable {
            for (int l = layer_begin; l < layer_end; ++l) dev.save_tokens(blocks, *copy, l, off, first, last);
            copy.reset();
        }, session);
    }
    /// Marks the copy complete: from now on it equals the device entry (until the next turn).
    void seal_save(session_id session, const save_job& sj) {
        auto& dev = h_.device();
        run_save([copy = sj.copy, meta = dev.meta(session), bytes = dev.stored_bytes(session)]() mutable {
            copy->data.resize(bytes);
            copy->meta = std::move(meta);
            copy.reset();
        }, session);
    }
    /// Runs a save step on the save stream (async_save) or right here (sync_save).
    template <class F>
    void run_save(F&& f, session_id session) {
        if constexpr (Save::mode == saving::save_mode::layer_wise) {
            h_.copies().started(session);
            save_stream_.post([f = std::forward<F>(f), &copies = h_.copies(), session]() mutable {
                f();
                copies.finished(session);
            });
        } else {
            f();
        }
    }

    /// Steps 4-5 of a turn: reserve, prefill what is not cached plus the input, decode.
    void compute(session_id session, std::vector<token_id>& hist, std::size_t kv_len,
                 std::span<const token_id> input, int max_new_tokens, turn_result& out, double t0,
                 double t_loaded, const queue_view& queue, std::span<const session_id> pinned,
                 std::optional<layer_load>& load, const job* next) {
        turn_metrics& m = out.metrics;
        auto& dev = h_.device();
        hist.insert(hist.end(), input.begin(), input.end());
        // The last generated token is never fed back, so its KV needs no room.
        const std::size_t room = hist.size() + static_cast<std::size_t>(max_new_tokens) - 1;
        const auto& g = h_.geometry();
        const std::size_t offset = dev.meta(session).first_offset;
        if (kv_len > 0 && offset != 0 && g.blocks_for(room, offset) > dev.total_blocks() &&
            g.blocks_for(room) <= dev.total_blocks()) {
            // Truncation left an offset in the first block and that one extra block does not
            // fit: recompute from offset 0 instead of failing a turn that fits.
            if (load) abort_load(session, *load);
            load.reset();
            h_.create_on_device(session);
            kv_len = 0;
            m.hit_tier.reset();
            m.invalidated = true;
        }
        const std::span<const token_id> todo(hist.data() + kv_len, hist.size() - kv_len);
        m.reused_tokens = static_cast<std::int64_t>(kv_len);
        m.new_tokens = static_cast<std::int64_t>(input.size());
        m.recomputed_tokens = static_cast<std::int64_t>(todo.size() - input.size());
        std::vector<session_id> keep(pinned.begin(), pinned.end());
        keep.push_back(session);
        h_.reserve_on_device(session, room, pinned, queue);
        if constexpr (!simulated)
            if (load && !load->pipe) start_load(session, *load);
        const bool save = saving_on && cfg_.retain_across_turns && !simulated;
        std::optional<save_job> sj;
        if constexpr (saving_on && !simulated)
            if (save) sj = begin_save(session, kv_len, load);
        if constexpr (Save::mode == saving::save_mode::layer_wise && !simulated)
            if (sj) copy_base(session, *sj);
        preload_next(next, keep, queue);
        if constexpr (simulated && Save::mode == saving::save_mode::write_back) {
            // Without saved copies, every session demoted from the device to make room crossed
            // the link first, on this job's critical path.
            ready_ = b_.transfer(static_cast<double>(h_.stats().bytes_out[0] - device_out_mark_), ready_);
            device_out_mark_ = h_.stats().bytes_out[0];
        }
        if constexpr (simulated)
            return compute_simulated(session, hist, kv_len, todo, max_new_tokens, out, t0, t_loaded, load);

        const std::size_t end = hist.size();  // tokens in the device entry after the prefill
        const int layers = g.layers;
        auto save_layer_done = [&](int l) {  // layer l's new KV exists (async: save it now)
            if constexpr (Save::mode == saving::save_mode::layer_wise)
                if (sj) save_tokens(session, *sj, l, l + 1, sj->from, end, m);
        };
        bool prefilled = false;
        if constexpr (requires(Backend& b, std::span<float> l) {
                          b.forward(paged_kv_view<float>{}, std::span<const token_id>{}, true, l, [](int) {});
                      }) {
            if (load || Save::mode == saving::save_mode::layer_wise) {
                struct abort_on_exit {
                    layer_pipeline* p;
                    ~abort_on_exit() {
                        if (p) p->abort();  // frees the loader if the prefill threw
                    }
                } guard{load ? load->pipe.get() : nullptr};
                b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_, [&](int l) {
                    if (load) load->pipe->begin_layer(l);
                    if (l > 0) save_layer_done(l - 1);
                });
                save_layer_done(layers - 1);
                prefilled = true;
            }
        } else if (load) {  // a backend without a per-layer hook: wait for the whole load first
            load->pipe->begin_layer(layers - 1);
        }
        if (!prefilled) {
            b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_);
            if constexpr (Save::mode == saving::save_mode::layer_wise)
                if (sj) save_tokens(session, *sj, 0, layers, sj->from, end, m);
        }
        if (load) {
            m.load_s += *load->seconds;  // the loader wrote it before marking the last layer
            load.reset();
        }
        dev.commit(session, todo);
        token_id next_token = argmax();
        const double t_first = now();
        m.prefill_s = t_first - t_loaded;
        m.ttft_s = t_first - t0;
        if (cfg_.record_logits) out.first_logits = logits_;

        out.generated.push_back(next_token);
        for (int step = 1; step < max_new_tokens; ++step) {
            const token_id fed[1] = {next_token};
            const std::size_t pos = dev.meta(session).tokens.size();
            b_.forward(dev.view(session), fed, posenc::keys_pre_rope, logits_);
            dev.commit(session, fed);
            if constexpr (Save::mode == saving::save_mode::layer_wise)
                if (sj) save_tokens(session, *sj, 0, layers, pos, pos + 1, m);  // per step
            next_token = argmax();
            out.generated.push_back(next_token);
        }
        m.decode_s = now() - t_first;
        m.generated_tokens = static_cast<std::int64_t>(out.generated.size());
        hist.insert(hist.end(), out.generated.begin(), out.generated.end());

        dev.shrink_to_fit(session);
        if (sj) {
            const double s0 = now();
            if constexpr (Save::mode == saving::save_mode::at_turn_end) {
                copy_base(session, *sj);
                save_tokens(session, *sj, 0, layers, sj->from, dev.meta(session).tokens.size(), m);
            }
            seal_save(session, *sj);
            m.save_s += now() - s0;
        }
        if (cfg_.retain_across_turns) h_.touch(session);
        else h_.drop(session);
    }

    /// Steps 4-5 on simulated time: the prefill overlapping any load, then the job joins the
    /// server's decode batch (and a synchronous save follows its last step); the KV
    /// bookkeeping is the real engine's, done now.
    void compute_simulated(session_id session, std::vector<token_id>& hist, std::size_t kv_len,
                           std::span<const token_id> todo, int max_new_tokens, turn_result& out, double t0,
                           double t_loaded, std::optional<layer_load>& load) {
        turn_metrics& m = out.metrics;
        auto& dev = h_.device();
        const auto per_token = h_.geometry().kv_bytes_per_token();
        const auto cached = static_cast<std::int64_t>(kv_len), n = static_cast<std::int64_t>(todo.size());
        double t_first;
        if (load) {
            const sim::overlapped_load ol{static_cast<double>(kv_bytes_of(*load->src)), load->from_tier,
                                          cfg_.preload_buffer_layers, load->started_at, cfg_.size_preload_buffer};
            t_first = b_.prefill(cached, n, &ol, ready_);
            load.reset();
        } else {
            t_first = b_.prefill(cached, n, nullptr, ready_);
        }
        dev.commit(session, todo);
        m.prefill_s = t_first - t_loaded;
        m.ttft_s = t_first - t0;
        const auto context = static_cast<std::int64_t>(dev.meta(session).tokens.size());
        out.generated.assign(static_cast<std::size_t>(max_new_tokens), 0);
        // Every generated token but the last is fed back (the sim's tokens are all 0).
        dev.commit(session, std::span<const token_id>(out.generated).first(static_cast<std::size_t>(max_new_tokens - 1)));
        m.generated_tokens = max_new_tokens;
        hist.insert(hist.end(), out.generated.begin(), out.generated.end());
        dev.shrink_to_fit(session);
        double tail = 0;
        if (saving_on && cfg_.retain_across_turns) {
            // The new tokens leave the device (the first save of a session takes all of it).
            const std::size_t tokens = dev.meta(session).tokens.size() - kv_len;
            m.bytes_saved = tokens * per_token;
            if constexpr (Save::mode == saving::save_mode::at_turn_end) {
                tail = b_.costs().link_s(static_cast<double>(m.bytes_saved));
                m.save_s = tail;
            }
        }
        b_.decode(session, t_first, context, max_new_tokens - 1, tail);
        if (cfg_.retain_across_turns) h_.touch(session);
        else h_.drop(session);
    }

    /// Runs the simulated server until every admitted job has completed and fills in each
    /// job's decode time, matching completions to jobs of the same session in order.
    void finish_simulated(std::span<const session_id> sessions, std::span<turn_metrics* const> metrics) {
        b_.run_until_idle();
        std::unordered_map<session_id, std::size_t> next;  // the session's next job not yet matched
        for (const auto& c : b_.take_completions()) {
            std::size_t& i = next[c.session];
            while (i < sessions.size() && sessions[i] != c.session) ++i;
            if (i == sessions.size()) continue;  // admitted outside this call
            metrics[i]->decode_s = c.decode_end_s - c.first_token_s;
            ++i;
        }
    }

    static double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

    /// Simulated: bytes the hierarchy has read from / written to the tiers below DRAM.
    std::pair<std::size_t, std::size_t> ssd_traffic() const {
        std::pair<std::size_t, std::size_t> rw{0, 0};
        for (std::size_t t = 2; t < Hierarchy::tier_count; ++t) {
            rw.first += h_.stats().bytes_out[t];
            rw.second += h_.stats().bytes_in[t];
        }
        return rw;
    }
    /// Simulated: charges the SSD traffic since the last charge (the prefetcher's reads, the
    /// demotions' writes) to the SSDs now. Off every job's critical path, but a hit's read
    /// queues behind it.
    void charge_ssd_background() {
        const auto [r, w] = ssd_traffic();
        if (r > ssd_read_mark_) b_.ssd_background(static_cast<double>(r - ssd_read_mark_), false, now());
        if (w > ssd_write_mark_) b_.ssd_background(static_cast<double>(w - ssd_write_mark_), true, now());
        ssd_read_mark_ = r;
        ssd_write_mark_ = w;
    }
    /// Simulated: charges the prefetcher's reads, one per session fetched, as background I/O,
    /// and remembers when each is done: the fetched session's turn cannot load it earlier.
    void charge_prefetches(const std::vector<session_id>& fetched) {
        for (session_id s : fetched) {
            const auto bytes = static_cast<double>(h_.stored_bytes(s));
            fetched_at_[s] = b_.ssd_background(bytes, false, now());
        }
        ssd_read_mark_ = ssd_traffic().first;  // every read since the last charge was a fetch
        charge_ssd_background();                // the writes of the victims they displaced
    }
    /// Simulated: when the prefetcher's read of `s` is done (0: nothing in flight); forgets it.
    double fetch_done(session_id s) {
        const auto it = fetched_at_.find(s);
        if (it == fetched_at_.end()) return 0;
        const double t = it->second;
        fetched_at_.erase(it);
        return t;
    }
    /// Simulated: charges the read of the hit just taken from the SSD (everything read since
    /// the last charge), no earlier than `not_before`. Returns when it is in host memory.
    double charge_ssd_hit(double not_before) {
        const std::size_t r = ssd_traffic().first;
        const double bytes = static_cast<double>(r - ssd_read_mark_);
        ssd_read_mark_ = r;
        return b_.ssd_read(bytes, not_before);
    }

    /// A session's history taken out for a turn: commit() stores the new one; otherwise the
    /// destructor restores the old one (undoing a truncation cut and anything appended).
    struct history_restore {
        std::unordered_map<session_id, std::vector<token_id>>& map;
        session_id session;
        std::vector<token_id> hist;
        bool existed = false, committed = false;
        std::size_t size = 0, cut_at = 0;
        std::vector<token_id> removed;

        history_restore(std::unordered_map<session_id, std::vector<token_id>>& m, session_id s) : map(m), session(s) {
            if (auto it = m.find(s); it != m.end()) {
                hist = std::move(it->second);
                existed = true;
            }
            size = hist.size();
        }
        history_restore(const history_restore&) = delete;
        history_restore& operator=(const history_restore&) = delete;
        /// Removes tokens [k, k + d) (a truncation).
        void cut(std::size_t k, std::size_t d) {
            const auto b = hist.begin() + static_cast<std::ptrdiff_t>(k);
            removed.assign(b, b + static_cast<std::ptrdiff_t>(d));
            cut_at = k;
            hist.erase(b, b + static_cast<std::ptrdiff_t>(d));
        }
        void commit() {
            map[session] = std::move(hist);
            committed = true;
        }
        ~history_restore() {
            if (committed) return;
            hist.resize(size - removed.size());
            hist.insert(hist.begin() + static_cast<std::ptrdiff_t>(cut_at), removed.begin(), removed.end());
            if (existed) map[session] = std::move(hist);
        }
    };

    void validate(std::span<const token_id> input, int max_new_tokens) const {
        if (input.empty()) throw input_error("engine::run_turn: a turn needs at least one input token");
        if (max_new_tokens < 1)
            throw input_error("engine::run_turn: max_new_tokens must be >= 1, got " + std::to_string(max_new_tokens));
        for (token_id t : input)
            if (t < 0 || t >= b_.vocab())
                throw input_error("engine::run_turn: token id " + std::to_string(t) +
                                  " is outside the vocabulary [0, " + std::to_string(b_.vocab()) + ")");
        const auto needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
        if (needed > b_.context_window())
            throw input_error("engine::run_turn: the turn needs " + std::to_string(needed) +
                              " tokens (input + max_new_tokens) but the context window is " +
                              std::to_string(b_.context_window()));
    }

    /// Stored KV is reused only if its tokens are an exact prefix of the history and, for keys
    /// stored after RoPE, they were rotated at the positions they have now.
    /// `skip`: the cache was cut before loading and starts at history token `skip`.
    static bool usable(const kv_meta& meta, const std::vector<token_id>& hist, std::size_t skip = 0) {
        if (skip > hist.size() || meta.tokens.size() > hist.size() - skip) return false;
        const auto from = hist.begin() + static_cast<std::ptrdiff_t>(skip);
        if (!std::equal(meta.tokens.begin(), meta.tokens.end(), from)) return false;
        return posenc::keys_pre_rope || meta.rope_base == 0;
    }
    /// A cut of the oldest tokens whose kept KV stays valid as it is (keys stored before RoPE)
    /// is applied to the stored entry in host memory, before loading: only the kept tokens
    /// take device room and cross the link, layer by layer like any other hit.
    static bool trims_on_load(const truncation::decision& cut) {
        return posenc::keys_pre_rope && cut.reuse_cache && cut.keep_front == 0 && cut.drop_tokens > 0;
    }

    token_id argmax() const {
        return static_cast<token_id>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    }

    Hierarchy& h_;
    Backend& b_;
    engine_config cfg_;
    std::unordered_map<session_id, std::vector<token_id>> history_;
    std::vector<float> logits_;
    clock::time_point start_;
    struct queued_job {
        std::uint64_t id;
        job work;
    };
    std::deque<queued_job> jobs_;
    job_order order_;
    std::uint64_t next_id_ = 0;
    std::unordered_map<session_id, layer_load> pending_;  ///< next jobs' loads started early
    std::size_t device_out_mark_ = 0;                      ///< device bytes demoted before this point
    double ready_ = 0;  ///< simulated: when the running job's data is on the device (loads and demotions done)
    std::size_t ssd_read_mark_ = 0, ssd_write_mark_ = 0;  ///< simulated: SSD traffic charged so far
    std::unordered_map<session_id, double> fetched_at_;   ///< simulated: when each prefetch read is done
    // Last: destroyed (joined) first, while everything their copies touch still exists.
    io::copy_stream load_stream_;
    io::copy_stream save_stream_;
};

}  // namespace cachedattn
