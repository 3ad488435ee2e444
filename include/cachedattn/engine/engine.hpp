#pragma once
/// @file
/// @brief `engine<Stack, Backend>`: runs conversation turns, keeping each session's KV across
/// turns in the stack's hierarchy (the paper's CachedAttention flow, §3).
///
/// A turn, top to bottom (`run_job`): plan what to do with the session's stored KV
/// (turn_plan.hpp: truncation first, then where the KV is and how to load it); apply it, bringing
/// the KV to the device tier (layer by layer during the prefill, layer_loader.hpp) and cutting it
/// on overflow; then `compute`: reserve room, prefill what is not cached plus the new tokens,
/// decode greedily, while the stack's saving policy copies the new KV out (saving/). Eviction
/// moves the KV down later as other sessions need room.
///
/// Around it: the job queue (job_queue.hpp) and the scheduling step that prefetches for the jobs
/// behind the running ones. On a simulated backend (sim::sim_backend) the same decisions are
/// made and sim_clock.hpp charges their costs to the simulated server instead of copying bytes.
#include <algorithm>
#include <chrono>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/core/error.hpp"
#include "cachedattn/engine/engine_config.hpp"
#include "cachedattn/engine/job_queue.hpp"
#include "cachedattn/engine/layer_loader.hpp"
#include "cachedattn/engine/session_history.hpp"
#include "cachedattn/engine/sim_clock.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/engine/turn_plan.hpp"
#include "cachedattn/hierarchy/tiers.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/saving/concept.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn {

/// @brief Runs turns of many sessions on one model backend over one KV cache stack.
/// @tparam Stack   a kv_hierarchy (e.g. cachedattn::stacks::paper): tiers and every policy,
///                 saving included
/// @tparam Backend backend::model_backend: cpu_backend, cuda_backend, or sim::sim_backend
///                 (simulated time; needs a stack of accounting tiers, stacks::sim::*)
template <class Stack, backend::model_backend Backend>
class engine {
    static constexpr bool simulated_backend = requires { requires Backend::simulated; };
    static_assert(!simulated_backend || detail::stack_tiers_are_accounting<Stack>::all,
                  "cachedattn::engine: a simulated backend (sim::sim_backend) needs a simulated stack, whose "
                  "tiers count bytes and hold none (tier::sim_device_tier, sim_host_tier, sim_file_tier; "
                  "e.g. cachedattn::stacks::sim::paper)");
    static_assert(simulated_backend || detail::stack_tiers_are_accounting<Stack>::none,
                  "cachedattn::engine: a real backend (cpu_backend, cuda_backend) computes in tiers that hold "
                  "KV; this stack has simulated (accounting-only) tiers: use tier::device_tier, host_tier, "
                  "file_tier (e.g. cachedattn::stacks::paper) or run it on sim::sim_backend");

public:
    using clock = std::chrono::steady_clock;
    using hierarchy_type = Stack;
    using save_policy = typename Stack::save_type;
    using posenc = typename Stack::posenc_type;
    /// The backend runs on simulated time: no copies, no threads; every cost is charged to the
    /// simulated server where the real engine would start it, and a job completes later.
    static constexpr bool simulated = simulated_backend;

    engine(Stack& h, Backend& b, engine_config c = {})
        : h_(h), b_(b), cfg_(c), start_(clock::now()), sim_(h, b),
          loader_(h.device(), h.copies(), h.geometry().layers, c.preload_buffer_layers),
          writer_(saving::save_context<device_type>{h.device(), h.copies(), h.geometry()}) {
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
        loader_.synchronize();
        writer_.synchronize();
    }

    /// Runs one turn of `session`: `input` new tokens, then up to `max_new_tokens` greedy tokens.
    /// On simulated time the server runs until the turn (and anything admitted before it) is done.
    turn_result run_turn(session_id session, std::span<const token_id> input, int max_new_tokens) {
        validate(input, max_new_tokens);
        h_.set_time(now());
        turn_result r = run_job(session, input, max_new_tokens, queue_view{}, {});
        if constexpr (simulated) {
            std::vector<turn_metrics*> m{&r.metrics};
            sim_.finish(std::vector<session_id>{session}, m);
        }
        return r;
    }

    // ---------------------------------------------------------------- job queue
    /// Queues a turn (a job) behind the others, FCFS. Returns its id. Input is checked now.
    std::uint64_t submit(job j) {
        validate(j.input, j.max_new_tokens);
        return queue_.push(std::move(j));
    }
    /// Jobs waiting.
    std::size_t queued() const noexcept { return queue_.size(); }
    /// What the policies see of the queue.
    queue_view queue() const noexcept { return queue_.view(); }
    /// Jobs the I/O-aware scheduler (engine_config::io_aware_window) ran ahead of an earlier one.
    std::size_t reordered_jobs() const noexcept { return queue_.reordered(); }

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
        auto batch = queue_.take_batch(cfg_.batch_size, {cfg_.io_aware_window, cfg_.io_aware_max_passes},
                                       [&](session_id s) { return kv_ready(s); });
        const queue_view view = queue();
        // The batch has left the queue but runs now: the prefetcher must not move it down.
        std::vector<session_id> running;
        running.reserve(batch.size());
        for (const auto& b : batch) running.push_back(b.work.session);
        const auto fetched = h_.prefetch(view, running);
        if constexpr (simulated) sim_.charge_prefetches(fetched);
        std::vector<job_result> out;
        out.reserve(batch.size());
        std::vector<session_id> later;  // batch members not run yet keep their KV where it is
        for (std::size_t i = 0; i < batch.size(); ++i) {
            later.assign(running.begin() + static_cast<std::ptrdiff_t>(i + 1), running.end());
            auto& w = batch[i].work;
            const job* next = i + 1 < batch.size() ? &batch[i + 1].work : queue_.front();
            h_.set_time(now());
            out.push_back({batch[i].id, w.session, run_job(w.session, w.input, w.max_new_tokens, view, later, next)});
        }
        return out;
    }
    /// Runs steps until the queue is empty (on simulated time: until every job has completed).
    std::vector<job_result> drain() {
        std::vector<job_result> all;
        while (!queue_.empty()) {
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
            sim_.finish(sessions, metrics);
        }
        return all;
    }
    /// Seconds since the engine started (the clock time-aware policies see); simulated time when
    /// the backend is the simulator.
    double now() const {
        if constexpr (simulated) return b_.now();
        else return seconds(clock::now() - start_);
    }

    /// The session's full token history as the engine sees it (after any truncation).
    const std::vector<token_id>& history(session_id s) const { return histories_.of(s); }
    /// Continues a conversation this engine has not run so far (another engine process ran its
    /// earlier turns): `history` is the conversation up to now, every turn's input and output,
    /// as a chat client sends it. Stored KV of the session in a shared tier (tier::redis_tier)
    /// is reused when it is a prefix of it. Pre: the engine holds no history of `s`.
    void resume(session_id s, std::vector<token_id> history) {
        if (!histories_.of(s).empty())
            throw input_error("engine::resume: session " + std::to_string(s.value) + " already has a history here");
        for (token_id t : history)
            if (t < 0 || t >= b_.vocab())
                throw input_error("engine::resume: token id " + std::to_string(t) + " is outside the vocabulary");
        if (static_cast<std::int64_t>(history.size()) >= b_.context_window())
            throw input_error("engine::resume: the history fills the context window");
        histories_.set(s, std::move(history));
    }
    /// Forgets a finished conversation and its stored KV.
    void end_session(session_id s) {
        loader_.forget(s);  // drop() settles it
        sim_.forget(s);
        h_.drop(s);
        histories_.forget(s);
    }
    /// Real backends: the costs load_choice's `fastest` mode has measured so far (nullopt
    /// until it has seen prefills and a load).
    std::optional<turn_costs> measured_costs() const { return meter_.estimate(); }
    Stack& hierarchy() noexcept { return h_; }

    Backend& model_backend() noexcept { return b_; }
    const engine_config& config() const noexcept { return cfg_; }

private:
    using device_type = typename Stack::device_type;
    using rules = reuse_rules<posenc>;
    using source = turn_plan::source;
    static constexpr auto save_mode = save_policy::mode;
    static constexpr bool saving_on = save_mode == saving::save_mode::layer_wise ||
                                      save_mode == saving::save_mode::at_turn_end;

    bool retains() const noexcept { return cfg_.retain_across_turns && save_mode != saving::save_mode::discard; }

    turn_result run_job(session_id session, std::span<const token_id> input, int max_new_tokens,
                        const queue_view& queue, std::span<const session_id> pinned, const job* next = nullptr) {
        const double t0 = now();  // input was validated by run_turn or submit
        if constexpr (simulated) sim_.ready = t0;
        turn_result out;
        turn_metrics& m = out.metrics;
        session_histories::lease lease(histories_, session);
        std::vector<token_id>& hist = lease.hist;
        const auto stats_before = h_.stats();
        if constexpr (simulated) sim_.mark_device_out();

        // A conversation another process ran may be in a shared tier (a first turn has nothing to reuse).
        if (!hist.empty()) h_.adopt_shared(session);
        // A load started while the previous job ran (still in the device tier: nothing moved it).
        std::optional<layer_load> load = loader_.take_pending(session, h_.locate(session) == std::optional<std::size_t>(0));
        if (!load) {
            // This session's saves from its previous turn may still be draining.
            const double w0 = now();
            h_.copies().settle(session);
            m.save_s += now() - w0;
        }

        // 1. Plan, 2. bring the stored KV to the device tier, 3. cut it on overflow.
        const std::int64_t needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
        turn_plan plan = plan_turn(h_, session, hist, needed, b_.context_window(),
                                   load ? std::optional(load->dropped_front) : std::nullopt,
                                   cfg_.preload_buffer_layers >= 0);
        choose_load(session, plan, hist.size(), input.size(), m);
        m.truncated = plan.truncated;
        if (load && plan.kv != source::preloaded) {
            h_.copies().settle(session);  // pre-loaded for another cut (not expected): let it finish
            load.reset();
        }
        bool have = fetch(session, plan, hist, queue, pinned, load, m);
        if (plan.truncated) have = apply_cut(session, plan, lease, have, load, m);
        if (!have) h_.create_on_device(session);
        const std::size_t kv_len = h_.device().meta(session).tokens.size();
        const double t_loaded = simulated ? sim_.ready : now();  // simulated: when the loads are done
        m.load_s = t_loaded - t0 - m.save_s;

        // 4-5. Prefill and decode.
        try {
            compute(session, hist, kv_len, input, max_new_tokens, out, t0, t_loaded, queue, pinned, load, next);
        } catch (...) {
            if (load && load->pipe) load->pipe->abort();
            writer_.cancel();
            h_.drop(session);  // the device entry may hold KV the history does not (waits for copies)
            throw;
        }
        lease.commit();
        if constexpr (simulated) sim_.charge_ssd_background();  // this turn's demotions to the SSD

        const auto& stats_after = h_.stats();
        for (std::size_t t = 0; t < Stack::tier_count; ++t) {
            if (t > 0) m.bytes_demoted += stats_after.bytes_in[t] - stats_before.bytes_in[t];
            m.sessions_dropped += stats_after.drops[t] - stats_before.drops[t];
        }
        return out;
    }

    /// Step 2: carries out the plan's load. Returns whether the device entry now holds usable KV.
    bool fetch(session_id session, const turn_plan& plan, const std::vector<token_id>& hist, const queue_view& queue,
               std::span<const session_id> pinned, std::optional<layer_load>& load, turn_metrics& m) {
        bool have = false;
        switch (plan.kv) {
            case source::none:
            case source::stale:  // create_on_device drops it
                break;
            case source::recompute:  // faster than loading it: the turn's save replaces it
                h_.drop(session);
                break;
            case source::discard:
                h_.drop(session);
                m.invalidated = true;
                break;
            case source::preloaded:
                have = true;
                m.hit_tier = load->from_tier;
                m.bytes_loaded = kv_bytes_of(*load->src);
                m.preloaded_ahead = true;
                break;
            case source::layer_wise: {
                const std::size_t from = *plan.tier;
                if constexpr (simulated) sim_.charge_ssd_background();  // queued before this read
                const std::size_t read_bytes = h_.stored_bytes(session);
                const double r0 = now();
                auto staged = h_.promote_staged(session, pinned, queue, plan.drop_front, plan.keep);
                if constexpr (!simulated) meter_.read(from, read_bytes, now() - r0);
                if (!staged) {
                    m.damaged = true;
                    break;
                }
                load = layer_load{nullptr, std::make_shared<kv_entry>(std::move(*staged)), nullptr, from, now(),
                                  plan.drop_front};
                have = true;
                m.hit_tier = from;
                m.bytes_loaded = kv_bytes_of(*load->src);
                // The link copy can start once the read is done; the file tier reads the whole
                // file, the cut happens in host memory.
                if constexpr (simulated) load->started_at = sim_.host_ready(session, from, now());
                break;
            }
            case source::device:
            case source::whole: {
                if constexpr (simulated) sim_.charge_ssd_background();
                const auto p = h_.promote_to_device(session, pinned, queue);
                m.bytes_loaded = p.bytes;
                m.damaged = p.damaged;
                have = !p.damaged;
                if (have) m.hit_tier = *plan.tier;
                if constexpr (simulated) {
                    if (have && *plan.tier > 0) {  // the whole session over the link (and off the SSD) first
                        m.bytes_loaded = sim_.kv_bytes_of(h_.device().meta(session));
                        sim_.load_whole(session, *plan.tier, m.bytes_loaded);
                    }
                }
                break;
            }
        }
        const std::size_t trimmed = load ? load->dropped_front : 0;  // the device entry starts at hist[trimmed]
        if (have && !rules::usable(h_.device().meta(session), hist, trimmed)) {
            if (load) loader_.abort(session, *load);
            load.reset();
            h_.drop(session);
            have = false;
            m.hit_tier.reset();
            m.invalidated = true;
        }
        return have;
    }

    /// Step 3: applies the truncation to the history and to the device KV. Returns `have`.
    bool apply_cut(session_id session, const turn_plan& plan, session_histories::lease& lease, bool have,
                   const std::optional<layer_load>& load, turn_metrics& m) {
        const auto d = static_cast<std::size_t>(plan.cut.drop_tokens);
        const auto k = static_cast<std::size_t>(plan.cut.keep_front);
        lease.cut(k, d);
        if (!have || (load ? load->dropped_front : 0) == d) return have;
        // Cut before loading: the device entry holds exactly the kept tokens, and keys stored
        // before RoPE need no re-encoding. Otherwise the device KV is rewritten here, and any
        // saved copy no longer matches it.
        auto& dev = h_.device();
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
        return have;
    }

    /// Steps 4-5: reserve, prefill what is not cached plus the input, decode.
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
            if (load) loader_.abort(session, *load);
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
        if constexpr (!simulated) {
            if (load && !load->pipe) loader_.start(session, *load);
            if (saving_on && retains()) writer_.begin(session, kv_len, load ? load->src : nullptr, m);
        }
        preload_next(next, keep, queue);
        if constexpr (simulated) {
            if constexpr (save_mode == saving::save_mode::write_back) sim_.charge_device_demotions();
            sim_.template compute<save_policy>(session, hist, kv_len, todo, max_new_tokens, out, t0, t_loaded, load,
                                               cfg_.preload_buffer_layers, cfg_.size_preload_buffer, retains());
        } else {
            prefill_and_decode(session, hist, todo, max_new_tokens, out, t0, t_loaded, load);
        }
        if (retains()) h_.touch(session);
        else h_.drop(session);
    }

    /// Hands layer `layer`'s new KV to the saving policy; `written` completes when the backend
    /// has written it. A policy that takes the fence passes it to its copy (the asynchronous
    /// saver waits on its own thread); for one that does not, this thread waits first.
    template <class... Fence>
    void layer_done(int layer, std::size_t end, turn_metrics& m, const Fence&... written) {
        if constexpr (sizeof...(Fence) == 1 && requires { writer_.layer_done(layer, end, m, written...); }) {
            writer_.layer_done(layer, end, m, written...);
        } else {
            (wait(written), ...);
            writer_.layer_done(layer, end, m);
        }
    }

    /// The model runs: the prefill (layer l waits for its load; each finished layer's new KV is
    /// handed to the saving policy), then greedy decoding, then the turn's save ends.
    void prefill_and_decode(session_id session, std::vector<token_id>& hist, std::span<const token_id> todo,
                            int max_new_tokens, turn_result& out, double t0, double t_loaded,
                            std::optional<layer_load>& load) {
        turn_metrics& m = out.metrics;
        auto& dev = h_.device();
        const std::size_t end = hist.size();  // tokens in the device entry after the prefill
        const int layers = h_.geometry().layers;
        const bool loading = load.has_value();
        const double f0 = now();  // the model alone, for the cost meter
        bool prefilled = false;
        if constexpr (requires(Backend& b, std::span<float> l) {
                          b.forward(paged_kv_view<float>{}, std::span<const token_id>{}, true, l, [](int) {});
                      }) {
            if (load || save_mode == saving::save_mode::layer_wise) {
                struct abort_on_exit {
                    layer_pipeline* p;
                    ~abort_on_exit() {
                        if (p) p->abort();  // frees the loader if the prefill threw
                    }
                } guard{load ? load->pipe.get() : nullptr};
                // Layer l may read its history once the fence returned here completes (the GPU's
                // compute stream waits on it, the host does not); `written` (from backends that
                // queue work) completes when layer l-1's new KV is in the pool.
                b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_, [&](int l, const auto&... written) {
                    fence loaded = load ? load->pipe->begin_layer(l) : fence{};
                    if (l > 0) layer_done(l - 1, end, m, written...);
                    return loaded;
                });
                writer_.layer_done(layers - 1, end, m);
                prefilled = true;
            }
        } else if (load) {  // a backend without a per-layer hook: wait for the whole load first
            wait(load->pipe->begin_layer(layers - 1));
        }
        if (!prefilled) {
            b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_);
            for (int l = 0; l < layers; ++l) writer_.layer_done(l, end, m);
        }
        if (load) {
            m.load_s += load->seconds->total;  // the loader wrote it before marking the last layer
            meter_.copy(m.bytes_loaded, load->seconds->copying);
            load.reset();
        }
        dev.commit(session, todo);
        token_id next_token = argmax();
        const double t_first = now();
        m.prefill_s = t_first - t_loaded;
        m.ttft_s = t_first - t0;
        if (!loading) meter_.prefill(todo.size(), end - todo.size(), t_first - f0);
        if (cfg_.record_logits) out.first_logits = logits_;

        out.generated.push_back(next_token);
        for (int step = 1; step < max_new_tokens; ++step) {
            const token_id fed[1] = {next_token};
            const std::size_t pos = dev.meta(session).tokens.size();
            b_.forward(dev.view(session), fed, posenc::keys_pre_rope, logits_);
            dev.commit(session, fed);
            writer_.token_done(pos, m);
            next_token = argmax();
            out.generated.push_back(next_token);
        }
        m.decode_s = now() - t_first;
        m.generated_tokens = static_cast<std::int64_t>(out.generated.size());
        hist.insert(hist.end(), out.generated.begin(), out.generated.end());

        dev.shrink_to_fit(session);
        if (saving_on && retains()) {
            const double s0 = now();
            writer_.end(m);
            m.save_s += now() - s0;
        }
    }

    /// Load or recompute (engine_config::load_choice): for a turn about to load stored KV from
    /// below the device tier, how many of its newest stored tokens to recompute instead. Sets
    /// `p.keep`, or turns the plan into source::recompute when it recomputes them all.
    void choose_load(session_id s, turn_plan& p, std::size_t hist_len, std::size_t input_len, turn_metrics& m) {
        const bool layer_wise = p.kv == source::layer_wise;
        if (cfg_.load_choice.how == load_or_recompute::mode::load || !p.tier || *p.tier == 0 ||
            !(layer_wise || (p.kv == source::whole && !p.truncated)))
            return;
        const std::size_t cut = p.truncated ? static_cast<std::size_t>(p.cut.drop_tokens) : 0;
        const split_query q = split_query_for(s, *p.tier, layer_wise ? p.drop_front : 0, hist_len - cut, input_len, layer_wise);
        const std::size_t r = recompute_count(s, q);
        if (r == 0) return;
        m.recomputed_instead = static_cast<std::int64_t>(r);
        if (r == q.stored_tokens) p.kv = source::recompute;
        else p.keep = q.stored_tokens - r;
    }
    /// The choice's view of a turn of `s` whose KV is in tier `from`: `drop` stored tokens cut
    /// before loading, `kept_hist` history tokens left after the turn's cut, `input` new tokens.
    split_query split_query_for(session_id s, std::size_t from, std::size_t drop, std::size_t kept_hist,
                                std::size_t input, bool layer_wise) const {
        const std::size_t stored = h_.meta(s).tokens.size();
        split_query q;
        q.from_tier = from;
        q.stored_tokens = stored > drop ? stored - drop : 0;
        q.read_bytes = h_.stored_bytes(s);
        q.bytes_per_token = h_.geometry().kv_bytes_per_token();
        q.prefill_tokens = kept_hist - std::min(kept_hist, q.stored_tokens) + input;  // prefilled anyway
        q.layer_wise = layer_wise;
        return q;
    }
    /// Stored tokens to recompute rather than load, by engine_config::load_choice.
    std::size_t recompute_count(session_id s, const split_query& q) {
        const auto& lc = cfg_.load_choice;
        if (lc.how == load_or_recompute::mode::load) return 0;
        if (lc.how == load_or_recompute::mode::recompute) return q.stored_tokens;
        // Recomputing holds the GPU longer: with jobs waiting, the next one starts that much
        // later, so the extra compute counts against this turn's gain.
        const bool others_wait = !queue_.empty();
        auto extra_compute = [&](auto&& prefill_s, std::size_t x) {
            if (!others_wait || x == 0) return 0.0;
            const auto n = static_cast<double>(q.prefill_tokens), kept = static_cast<double>(q.stored_tokens - x);
            return prefill_s(n + static_cast<double>(x), kept) - prefill_s(n, static_cast<double>(q.stored_tokens));
        };
        if constexpr (simulated) {
            auto prefill_s = [&](double n, double c) {
                return b_.costs().prefill_s(static_cast<std::int64_t>(n), static_cast<std::int64_t>(c));
            };
            return choose_recompute(q, lc.split, [&](std::size_t x) {
                return sim_.estimate_ttft(s, q, x, now(), cfg_.preload_buffer_layers, cfg_.size_preload_buffer) +
                       extra_compute(prefill_s, x);
            });
        } else {
            const auto costs = lc.costs ? lc.costs : meter_.estimate();
            if (!costs) return 0;  // nothing measured yet: load, as the paper does
            auto prefill_s = [&](double n, double c) { return costs->prefill_s(n, c); };
            return choose_recompute(q, lc.split, [&](std::size_t x) {
                return estimate_ttft(*costs, q, x, h_.geometry().layers, cfg_.preload_buffer_layers) +
                       extra_compute(prefill_s, x);
            });
        }
    }

    /// Starts loading the next job's KV into the device tier while this job runs (paper §3.2:
    /// loading for the next job begins before the previous one finishes), as planned by
    /// plan_preload (turn_plan.hpp).
    void preload_next(const job* next, std::span<const session_id> keep, const queue_view& queue) {
        if (!next || cfg_.preload_buffer_layers < 0 || !cfg_.preload_next_job || loader_.has_pending(next->session)) return;
        const session_id s = next->session;
        const auto drop = plan_preload(h_, s, history(s), static_cast<std::int64_t>(next->input.size()) + next->max_new_tokens,
                                       b_.context_window(), keep, queue);
        if (!drop) return;
        const std::size_t from = *h_.locate(s);
        // A job that would rather recompute all of it decides at its turn, with the costs of then.
        // (A split is not worth it here: a load started now overlaps the running job.)
        if (cfg_.load_choice.how != load_or_recompute::mode::load) {
            const auto q = split_query_for(s, from, *drop, history(s).size() - *drop, next->input.size(), true);
            if (recompute_count(s, q) == q.stored_tokens) return;
        }
        if constexpr (simulated) sim_.charge_ssd_background();
        auto staged = h_.promote_staged(s, keep, queue, *drop);
        if (!staged) return;  // damaged: its turn will see a miss
        layer_load l{nullptr, std::make_shared<kv_entry>(std::move(*staged)), nullptr, from, 0, *drop};
        // Simulated: the link copy can start once any SSD read (here, as the real engine does) is done.
        if constexpr (simulated) l.started_at = sim_.host_ready(s, from, now());
        else loader_.start(s, l);
        loader_.add_pending(s, std::move(l));
    }

    /// Whether a job of `s` could start without waiting for a read from below DRAM: nothing
    /// stored (a miss computes at once), or stored in device memory or DRAM and, on simulated
    /// time, not still being fetched there by the prefetcher.
    bool kv_ready(session_id s) const {
        const auto t = h_.locate(s);
        if (!t) return true;
        if constexpr (simulated)
            if (*t == 1 && sim_.fetching(s, now())) return false;
        return *t <= 1;
    }
    /// Bytes of KV an entry stands for (accounting-only entries carry none).
    std::size_t kv_bytes_of(const kv_entry& e) const {
        if constexpr (simulated) return sim_.kv_bytes_of(e.meta);
        else return e.data.size();
    }

    static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

    void validate(std::span<const token_id> input, int max_new_tokens) const {
        validate_turn(input, max_new_tokens, b_.vocab(), b_.context_window());
    }

    token_id argmax() const {
        return static_cast<token_id>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
    }

    Stack& h_;
    Backend& b_;
    engine_config cfg_;
    session_histories histories_;
    std::vector<float> logits_;
    clock::time_point start_;
    job_queue queue_;
    sim_clock<Stack, Backend> sim_;  ///< simulated time only
    cost_meter meter_;               ///< real backends: measured costs for load_choice
    // Last: destroyed (their streams joined) first, while everything their copies touch exists.
    layer_loader<device_type> loader_;
    typename save_policy::template writer<device_type> writer_;
};

}  // namespace cachedattn
