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
#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <optional>
#include <thread>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/core/error.hpp"
#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/engine/layer_pipeline.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/io/kv_file_format.hpp"
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
    /// the prefill; k >= 0 copies layer by layer on an I/O thread while the prefill runs, at
    /// most 1 + k layers ahead of compute (k = the read buffer in layers, paper §3.2).
    int preload_buffer_layers = 1;
};

template <class Hierarchy, backend::model_backend Backend>
class engine {
public:
    using clock = std::chrono::steady_clock;
    using hierarchy_type = Hierarchy;
    using posenc = typename Hierarchy::posenc_type;

    engine(Hierarchy& h, Backend& b, engine_config c = {}) : h_(h), b_(b), cfg_(c), start_(clock::now()) {
        if (cfg_.batch_size == 0) throw config_error("engine: batch_size must be >= 1");
        if (!(h_.geometry() == b_.geometry()))
            throw config_error("engine: the hierarchy was built for a different model geometry than the backend");
        if (h_.fingerprint() != io::cache_fingerprint(b_.geometry(), b_.weights_id(), posenc::tag))
            throw config_error("engine: the hierarchy was built for other weights than the backend's "
                               "(construct it with backend.geometry() and backend.weights_id())");
        logits_.resize(static_cast<std::size_t>(b_.vocab()));
    }

    /// Runs one turn of `session`: `input` new tokens, then up to `max_new_tokens` greedy tokens.
    turn_result run_turn(session_id session, std::span<const token_id> input, int max_new_tokens) {
        h_.set_time(now());
        return run_job(session, input, max_new_tokens, queue_view{}, {});
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
    std::vector<job_result> step() {
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
        h_.prefetch(view);
        std::vector<job_result> out;
        out.reserve(batch.size());
        std::vector<session_id> later;  // batch members not run yet keep their KV where it is
        for (std::size_t i = 0; i < batch.size(); ++i) {
            later.clear();
            for (std::size_t j = i + 1; j < batch.size(); ++j) later.push_back(batch[j].work.session);
            auto& w = batch[i].work;
            h_.set_time(now());
            out.push_back({batch[i].id, w.session, run_job(w.session, w.input, w.max_new_tokens, view, later)});
        }
        return out;
    }
    /// Runs steps until the queue is empty.
    std::vector<job_result> drain() {
        std::vector<job_result> all;
        while (!jobs_.empty()) {
            auto r = step();
            std::move(r.begin(), r.end(), std::back_inserter(all));
        }
        return all;
    }
    /// Seconds since the engine started (the clock time-aware policies see).
    double now() const { return seconds(clock::now() - start_); }

private:
    turn_result run_job(session_id session, std::span<const token_id> input, int max_new_tokens,
                        const queue_view& queue, std::span<const session_id> pinned) {
        const auto t0 = clock::now();
        validate(input, max_new_tokens);

        turn_result out;
        turn_metrics& m = out.metrics;
        // Work on a copy: the session's history changes only when the turn succeeds.
        std::vector<token_id> hist = history(session);
        const std::int64_t window = b_.context_window();
        const std::int64_t needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
        const auto stats_before = h_.stats();

        // 1. Overflow: decide the truncation first; a cache it will discard is not loaded.
        truncation::decision cut{};
        if (static_cast<std::int64_t>(hist.size()) + needed > window) {
            cut = h_.truncation().decide(static_cast<std::int64_t>(hist.size()), needed, window);
            m.truncated = true;
            // Not worth loading: the policy discards it, or truncation drops all of it.
            if (h_.locate(session) &&
                (!cut.reuse_cache || (cut.keep_front == 0 && h_.meta(session).tokens.size() <=
                                                                static_cast<std::size_t>(cut.drop_tokens)))) {
                h_.drop(session);
                m.invalidated = true;
            }
        }

        // 2. Find the stored KV and bring it to the device tier.
        bool have = false;
        std::optional<kv_entry> staged;  // KV to copy in layer by layer during the prefill
        if (const auto where = h_.locate(session)) {
            if (cfg_.preload_buffer_layers >= 0 && *where > 0 && !m.truncated) {
                if (usable(h_.meta(session), hist)) {
                    staged = h_.promote_staged(session, pinned, queue);
                    m.damaged = !staged;
                    have = staged.has_value();
                    if (have) {
                        m.hit_tier = *where;
                        m.bytes_loaded = staged->data.size();
                    }
                }  // else: the check below drops it without loading it
            } else {
                auto p = h_.promote_to_device(session, pinned, queue);
                m.bytes_loaded = p.bytes;
                m.damaged = p.damaged;
                have = !p.damaged;
                if (have) m.hit_tier = *where;
            }
        }
        auto& dev = h_.device();
        if (have && !usable(dev.meta(session), hist)) {
            h_.drop(session);
            have = false;
            m.hit_tier.reset();
            m.invalidated = true;
        }

        // 3. Apply the truncation to the history and to the stored KV.
        if (m.truncated) {
            const auto d = static_cast<std::size_t>(cut.drop_tokens);
            const auto k = static_cast<std::size_t>(cut.keep_front);
            hist.erase(hist.begin() + static_cast<std::ptrdiff_t>(k), hist.begin() + static_cast<std::ptrdiff_t>(k + d));
            if (have) {
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
        const auto t_loaded = clock::now();
        m.load_s = seconds(t_loaded - t0);

        try {
            compute(session, hist, kv_len, input, max_new_tokens, out, t0, t_loaded, queue, pinned, staged);
        } catch (...) {
            h_.drop(session);  // the device entry may hold KV the history does not
            throw;
        }
        history_[session] = std::move(hist);

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
        h_.drop(s);
        history_.erase(s);
    }
    Hierarchy& hierarchy() noexcept { return h_; }
    Backend& model_backend() noexcept { return b_; }
    const engine_config& config() const noexcept { return cfg_; }

private:
    /// Steps 4-5 of a turn: reserve, prefill what is not cached plus the input, decode.
    void compute(session_id session, std::vector<token_id>& hist, std::size_t kv_len,
                 std::span<const token_id> input, int max_new_tokens, turn_result& out, clock::time_point t0,
                 clock::time_point t_loaded, const queue_view& queue, std::span<const session_id> pinned,
                 std::optional<kv_entry>& staged) {
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
            h_.create_on_device(session);
            staged.reset();
            kv_len = 0;
            m.hit_tier.reset();
            m.invalidated = true;
        }
        const std::span<const token_id> todo(hist.data() + kv_len, hist.size() - kv_len);
        m.reused_tokens = static_cast<std::int64_t>(kv_len);
        m.new_tokens = static_cast<std::int64_t>(input.size());
        m.recomputed_tokens = static_cast<std::int64_t>(todo.size() - input.size());
        h_.reserve_on_device(session, room, pinned, queue);
        bool prefilled = false;
        if constexpr (requires(Backend& b, std::span<float> l) {
                          b.forward(paged_kv_view<float>{}, std::span<const token_id>{}, true, l, [](int) {});
                      }) {
            if (staged) {
                // Layer-wise pre-loading: an I/O thread copies the history layer by layer while
                // the prefill runs; layer l waits until its history is resident.
                layer_pipeline pipe(h_.geometry().layers, cfg_.preload_buffer_layers);
                double load_s = 0;
                {
                    std::jthread loader([&, blocks = dev.block_ids(session)] {
                        const auto start = clock::now();
                        for (int l = 0; l < pipe.layers(); ++l) {
                            if (!pipe.wait_for_slot(l)) return;
                            dev.copy_layer(blocks, *staged, l);
                            pipe.loaded(l);
                        }
                        load_s = seconds(clock::now() - start);
                    });
                    struct abort_on_exit {
                        layer_pipeline& p;
                        ~abort_on_exit() { p.abort(); }  // frees the loader if the prefill threw
                    } guard{pipe};
                    b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_,
                               [&](int l) { pipe.begin_layer(l); });
                }  // joins the loader
                m.load_s += load_s;
                staged.reset();
                prefilled = true;
            }
        } else if (staged) {  // a backend without a per-layer hook: load everything first
            const auto blocks = dev.block_ids(session);
            for (int l = 0; l < h_.geometry().layers; ++l) dev.copy_layer(blocks, *staged, l);
            staged.reset();
        }
        if (!prefilled) b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_);
        dev.commit(session, todo);
        token_id next = argmax();
        const auto t_first = clock::now();
        m.prefill_s = seconds(t_first - t_loaded);
        m.ttft_s = seconds(t_first - t0);
        if (cfg_.record_logits) out.first_logits = logits_;

        out.generated.push_back(next);
        for (int step = 1; step < max_new_tokens; ++step) {
            const token_id fed[1] = {next};
            b_.forward(dev.view(session), fed, posenc::keys_pre_rope, logits_);
            dev.commit(session, fed);
            next = argmax();
            out.generated.push_back(next);
        }
        m.decode_s = seconds(clock::now() - t_first);
        m.generated_tokens = static_cast<std::int64_t>(out.generated.size());
        hist.insert(hist.end(), out.generated.begin(), out.generated.end());

        dev.shrink_to_fit(session);
        if (cfg_.retain_across_turns) h_.touch(session);
        else h_.drop(session);
    }

    static double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

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
    static bool usable(const kv_meta& meta, const std::vector<token_id>& hist) {
        if (meta.tokens.size() > hist.size()) return false;
        if (!std::equal(meta.tokens.begin(), meta.tokens.end(), hist.begin())) return false;
        return posenc::keys_pre_rope || meta.rope_base == 0;
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
};

}  // namespace cachedattn
