#pragma once
/// @file
/// @brief The engine on simulated time: where each job's costs go on the simulated server
/// (sim::sim_backend). The engine makes every decision as on a real backend; this file charges
/// them: SSD reads and writes (a hit's read first, prefetches and demotions in the background),
/// copies over the host link, the prefill overlapping its layer-wise load, and the decode steps
/// in the server's batch, which complete later on the server's clock.
#include <algorithm>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cachedattn/engine/layer_loader.hpp"
#include "cachedattn/engine/load_or_recompute.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/saving/concept.hpp"
#include "cachedattn/sim/sim_backend.hpp"

namespace cachedattn {

template <class Hierarchy, class Backend>
class sim_clock {
public:
    sim_clock(Hierarchy& h, Backend& b) : h_(h), b_(b) {}

    double ready = 0;  ///< when the running job's data is on the device (loads and demotions done)

    /// Bytes of KV an entry stands for (accounting entries carry none).
    std::size_t kv_bytes_of(const kv_meta& m) const { return m.tokens.size() * h_.geometry().kv_bytes_per_token(); }

    /// Charges the SSD traffic since the last charge (the prefetcher's reads, the demotions'
    /// writes) to the SSDs now: off every job's critical path, but a hit's read queues behind it.
    void charge_ssd_background() {
        const auto [r, w] = ssd_traffic();
        if (r > read_mark_) b_.ssd_background(static_cast<double>(r - read_mark_), false, b_.now());
        if (w > write_mark_) b_.ssd_background(static_cast<double>(w - write_mark_), true, b_.now());
        read_mark_ = r;
        write_mark_ = w;
    }
    /// Charges the prefetcher's reads, one per session fetched, as background I/O, and remembers
    /// when each is done: the fetched session's turn cannot load it earlier.
    void charge_prefetches(const std::vector<session_id>& fetched) {
        for (session_id s : fetched) fetched_at_[s] = b_.ssd_background(static_cast<double>(h_.stored_bytes(s)), false, b_.now());
        read_mark_ = ssd_traffic().first;  // every read since the last charge was a fetch
        charge_ssd_background();           // the writes of the victims they displaced
    }
    /// When the prefetcher's read of `s` is done (0: nothing in flight); forgets it.
    double fetch_done(session_id s) {
        const auto it = fetched_at_.find(s);
        if (it == fetched_at_.end()) return 0;
        const double t = it->second;
        fetched_at_.erase(it);
        return t;
    }
    void forget(session_id s) { fetched_at_.erase(s); }
    /// Whether the prefetcher's read of `s` is still in flight at `now`.
    bool fetching(session_id s, double now) const {
        const auto it = fetched_at_.find(s);
        return it != fetched_at_.end() && it->second > now;
    }
    /// Charges the read of the hit just taken from tier `from` (everything read since the last
    /// charge) no earlier than `not_before`, or waits for its prefetch. Returns when the KV is
    /// in host memory.
    double host_ready(session_id s, std::size_t from, double not_before) {
        if (from >= 2) {
            const std::size_t r = ssd_traffic().first;
            const double bytes = static_cast<double>(r - read_mark_);
            read_mark_ = r;
            return b_.ssd_read(bytes, not_before);
        }
        return std::max(not_before, fetch_done(s));
    }
    /// When a turn of `s` would put out its first token if it recomputed `r` of the stored
    /// tokens `q` describes and loaded the rest (load_or_recompute.hpp), charging nothing:
    /// the same reads, copies and prefill that fetch and compute would charge.
    double estimate_ttft(session_id s, const split_query& q, std::size_t r, double now, int buffer_layers,
                         bool size_buffer) {
        const auto n = static_cast<std::int64_t>(q.prefill_tokens + r);
        const std::size_t kept = q.stored_tokens - r;
        if (kept == 0) return b_.prefill_estimate(0, n, nullptr, ready);
        const double kept_bytes = static_cast<double>(kept * h_.geometry().kv_bytes_per_token());
        const double read_bytes = static_cast<double>(q.read_bytes);
        const auto cached = static_cast<std::int64_t>(kept);
        const auto fetched = fetched_at_.find(s);
        const double fetch = fetched == fetched_at_.end() ? 0 : fetched->second;
        if (!q.layer_wise) {
            const double host = q.from_tier >= 2 ? b_.ssd_read_estimate(read_bytes, ready) : std::max(ready, fetch);
            return b_.prefill_estimate(cached, n, nullptr, b_.transfer_estimate(kept_bytes, host));
        }
        const double host = q.from_tier >= 2 ? b_.ssd_read_estimate(read_bytes, now) : std::max(now, fetch);
        const sim::overlapped_load ol{kept_bytes, q.from_tier, buffer_layers, host, size_buffer};
        return b_.prefill_estimate(cached, n, &ol, ready);
    }
    /// A whole-session load (no layer-wise pre-loading): off the SSD, then over the link, before
    /// the prefill.
    void load_whole(session_id s, std::size_t from, std::size_t bytes) {
        ready = host_ready(s, from, ready);
        ready = b_.transfer(static_cast<double>(bytes), ready);
    }
    /// Write-back: every session demoted from the device to make room crossed the link first,
    /// on this job's critical path.
    void charge_device_demotions() {
        ready = b_.transfer(static_cast<double>(h_.stats().bytes_out[0] - device_out_mark_), ready);
        device_out_mark_ = h_.stats().bytes_out[0];
    }
    void mark_device_out() { device_out_mark_ = h_.stats().bytes_out[0]; }

    /// Steps 4-5 on simulated time: the prefill overlapping any load, then the job joins the
    /// server's decode batch (and a synchronous save follows its last step). The KV bookkeeping
    /// is the real engine's, done now.
    template <class Save>
    void compute(session_id session, std::vector<token_id>& hist, std::size_t kv_len, std::span<const token_id> todo,
                 int max_new_tokens, turn_result& out, double t0, double t_loaded, std::optional<layer_load>& load,
                 int buffer_layers, bool size_buffer, bool retain) {
        turn_metrics& m = out.metrics;
        auto& dev = h_.device();
        const auto cached = static_cast<std::int64_t>(kv_len), n = static_cast<std::int64_t>(todo.size());
        double t_first;
        if (load) {
            const sim::overlapped_load ol{static_cast<double>(kv_bytes_of(load->src->meta)), load->from_tier,
                                          buffer_layers, load->started_at, size_buffer};
            t_first = b_.prefill(cached, n, &ol, ready);
            load.reset();
        } else {
            t_first = b_.prefill(cached, n, nullptr, ready);
        }
        dev.commit(session, todo);
        m.prefill_s = t_first - t_loaded;
        m.ttft_s = t_first - t0;
        const auto context = static_cast<std::int64_t>(dev.meta(session).tokens.size());
        out.generated.assign(static_cast<std::size_t>(max_new_tokens), 0);
        // Every generated token but the last is fed back.
        dev.commit(session, std::span<const token_id>(out.generated).first(static_cast<std::size_t>(max_new_tokens - 1)));
        m.generated_tokens = max_new_tokens;
        hist.insert(hist.end(), out.generated.begin(), out.generated.end());
        dev.shrink_to_fit(session);
        double tail = 0;
        constexpr bool saves = Save::mode == saving::save_mode::layer_wise || Save::mode == saving::save_mode::at_turn_end;
        if (saves && retain) {
            // The new tokens leave the device (the first save of a session takes all of it).
            const std::size_t tokens = dev.meta(session).tokens.size() - kv_len;
            m.bytes_saved = tokens * h_.geometry().kv_bytes_per_token();
            if constexpr (Save::mode == saving::save_mode::at_turn_end) {
                tail = b_.costs().link_s(static_cast<double>(m.bytes_saved));
                m.save_s = tail;
            }
        }
        b_.decode(session, t_first, context, max_new_tokens - 1, tail);
    }

    /// Runs the server until every admitted job has completed and fills in each job's decode
    /// time, matching completions to jobs of the same session in order.
    void finish(std::span<const session_id> sessions, std::span<turn_metrics* const> metrics) {
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

private:
    /// Bytes the hierarchy has read from / written to the tiers below DRAM.
    std::pair<std::size_t, std::size_t> ssd_traffic() const {
        std::pair<std::size_t, std::size_t> rw{0, 0};
        for (std::size_t t = 2; t < Hierarchy::tier_count; ++t) {
            rw.first += h_.stats().bytes_out[t];
            rw.second += h_.stats().bytes_in[t];
        }
        return rw;
    }

    Hierarchy& h_;
    Backend& b_;
    std::size_t device_out_mark_ = 0;
    std::size_t read_mark_ = 0, write_mark_ = 0;         ///< SSD traffic charged so far
    std::unordered_map<session_id, double> fetched_at_;  ///< when each prefetch read is done
};

}  // namespace cachedattn
