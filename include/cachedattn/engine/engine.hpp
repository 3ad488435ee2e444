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
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cachedattn/backend/concept.hpp"
#include "cachedattn/core/error.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn {

struct engine_config {
    /// false: drop every session's KV when its turn ends (the paper's "RE" baseline:
    /// recompute the whole history every turn).
    bool retain_across_turns = true;
    /// Copy the logits that chose each turn's first token into the result (tests).
    bool record_logits = false;
};

template <class Hierarchy, backend::model_backend Backend>
class engine {
public:
    using hierarchy_type = Hierarchy;
    using posenc = typename Hierarchy::posenc_type;

    engine(Hierarchy& h, Backend& b, engine_config c = {}) : h_(h), b_(b), cfg_(c) {
        if (!(h_.geometry() == b_.geometry()))
            throw config_error("engine: the hierarchy was built for a different model geometry than the backend");
        if (h_.fingerprint() != io::cache_fingerprint(b_.geometry(), b_.weights_id(), posenc::tag))
            throw config_error("engine: the hierarchy was built for other weights than the backend's "
                               "(construct it with backend.geometry() and backend.weights_id())");
        logits_.resize(static_cast<std::size_t>(b_.vocab()));
    }

    /// Runs one turn of `session`: `input` new tokens, then up to `max_new_tokens` greedy tokens.
    turn_result run_turn(session_id session, std::span<const token_id> input, int max_new_tokens) {
        const auto t0 = clock::now();
        validate(input, max_new_tokens);

        turn_result out;
        turn_metrics& m = out.metrics;
        // Work on a copy: the session's history changes only when the turn succeeds.
        std::vector<token_id> hist = history(session);
        const std::int64_t window = b_.context_window();
        const std::int64_t needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
        const std::span<const session_id> none{};
        const auto stats_before = h_.stats();

        // 1. Overflow: decide the truncation first; a cache it will discard is not loaded.
        truncation::decision cut{};
        if (static_cast<std::int64_t>(hist.size()) + needed > window) {
            cut = h_.truncation().decide(static_cast<std::int64_t>(hist.size()), needed, window);
            m.truncated = true;
            // Not worth loading: the policy discards it, or truncation drops all of it.
            if (h_.locate(session) &&
                (!cut.reuse_cache || h_.meta(session).tokens.size() <= static_cast<std::size_t>(cut.drop_tokens))) {
                h_.drop(session);
                m.invalidated = true;
            }
        }

        // 2. Find the stored KV and bring it to the device tier.
        bool have = false;
        if (const auto where = h_.locate(session)) {
            auto p = h_.promote_to_device(session, none);
            m.bytes_loaded = p.bytes;
            m.damaged = p.damaged;
            have = !p.damaged;
            if (have) m.hit_tier = *where;
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
            hist.erase(hist.begin(), hist.begin() + static_cast<std::ptrdiff_t>(d));
            if (have) {
                if (dev.meta(session).tokens.size() <= d) {
                    h_.drop(session);
                    have = false;
                } else {
                    dev.truncate_front(session, d);
                    if (h_.posenc().rebase(dev.view(session), static_cast<std::int64_t>(d), b_.rope())) {
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
            compute(session, hist, kv_len, input, max_new_tokens, out, t0, t_loaded);
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
    using clock = std::chrono::steady_clock;

    /// Steps 4-5 of a turn: reserve, prefill what is not cached plus the input, decode.
    void compute(session_id session, std::vector<token_id>& hist, std::size_t kv_len,
                 std::span<const token_id> input, int max_new_tokens, turn_result& out, clock::time_point t0,
                 clock::time_point t_loaded) {
        turn_metrics& m = out.metrics;
        auto& dev = h_.device();
        const std::span<const session_id> none{};
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
            kv_len = 0;
            m.hit_tier.reset();
            m.invalidated = true;
        }
        const std::span<const token_id> todo(hist.data() + kv_len, hist.size() - kv_len);
        m.reused_tokens = static_cast<std::int64_t>(kv_len);
        m.new_tokens = static_cast<std::int64_t>(input.size());
        m.recomputed_tokens = static_cast<std::int64_t>(todo.size() - input.size());
        h_.reserve_on_device(session, room, none);
        b_.forward(dev.view(session), todo, posenc::keys_pre_rope, logits_);
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
};

}  // namespace cachedattn
