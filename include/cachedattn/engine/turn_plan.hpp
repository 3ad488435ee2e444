#pragma once
/// @file
/// @brief A turn's plan: what it will do with the session's stored KV, decided as a const query
/// over the hierarchy before anything moves (as the hierarchy plans room before applying it).
/// The engine then applies it; only what no query can know in advance (a damaged file, a
/// stored copy that turns out stale) changes course while applying.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "cachedattn/core/queue_view.hpp"

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn {

struct turn_plan {
    enum class source {
        none,        ///< nothing stored: a miss
        preloaded,   ///< a load started while the previous job ran; use it
        device,      ///< already in the device tier
        layer_wise,  ///< stage it in the device tier and copy it layer by layer during the prefill
        whole,       ///< bring it to the device tier before the prefill
        discard,     ///< stored, but not worth loading (truncation discards it or drops all of it)
        stale,       ///< stored below the device, but not a prefix of the history: dropped unread
        recompute,   ///< stored below the device, but recomputing it is faster: dropped unread
    };
    source kv = source::none;
    std::optional<std::size_t> tier;  ///< where the stored KV is now
    bool truncated = false;           ///< the history overflows the context window this turn
    truncation::decision cut{};       ///< the truncation, when truncated
    /// The cut removes the oldest tokens and the kept KV stays valid as it is: it is applied to
    /// the stored entry in host memory, so only the kept tokens take device room and cross the link.
    bool trim_on_load = false;
    std::size_t drop_front = 0;  ///< tokens cut from the stored entry before loading
    /// Stored tokens (after the cut) to load; the newest beyond it are recomputed with the input
    /// instead (load_or_recompute.hpp). Everything by default.
    std::size_t keep = std::numeric_limits<std::size_t>::max();
};

/// Rules that decide whether stored KV can serve a turn, for positional encoding `PosEnc`.
template <class PosEnc>
struct reuse_rules {
    /// Stored KV is reused only if its tokens are an exact prefix of the history (from history
    /// token `skip`, when the cache was cut before loading) and, for keys stored after RoPE,
    /// they were rotated at the positions they have now.
    static bool usable(const kv_meta& meta, const std::vector<token_id>& hist, std::size_t skip = 0) {
        if (skip > hist.size() || meta.tokens.size() > hist.size() - skip) return false;
        const auto from = hist.begin() + static_cast<std::ptrdiff_t>(skip);
        if (!std::equal(meta.tokens.begin(), meta.tokens.end(), from)) return false;
        return PosEnc::keys_pre_rope || meta.rope_base == 0;
    }
    /// A cut of the oldest tokens whose kept KV needs no re-encoding (keys stored before RoPE).
    static bool trims_on_load(const truncation::decision& cut) {
        return PosEnc::keys_pre_rope && cut.reuse_cache && cut.keep_front == 0 && cut.drop_tokens > 0;
    }
};

/// Plans a turn of a session whose history is `hist` and which needs `needed` more tokens.
/// `pending_drop`: a load started early for this session, and the tokens it cut (nullopt: none).
template <class Hierarchy>
turn_plan plan_turn(const Hierarchy& h, session_id s, const std::vector<token_id>& hist, std::int64_t needed,
                    std::int64_t window, std::optional<std::size_t> pending_drop, bool layer_wise_loads) {
    using rules = reuse_rules<typename Hierarchy::posenc_type>;
    turn_plan p;
    p.tier = h.locate(s);
    const auto hist_len = static_cast<std::int64_t>(hist.size());
    if (hist_len + needed > window) {
        p.truncated = true;
        p.cut = h.truncation().decide(hist_len, needed, window);
        p.trim_on_load = rules::trims_on_load(p.cut);
    }
    const auto drop = static_cast<std::size_t>(p.cut.drop_tokens);
    if (pending_drop && (!p.truncated || (p.trim_on_load && *pending_drop == drop))) {
        p.kv = turn_plan::source::preloaded;
        p.drop_front = *pending_drop;
        return p;
    }
    if (!p.tier) return p;
    // Not worth loading: the policy discards it, or truncation drops all of it.
    if (p.truncated && (!p.cut.reuse_cache || (p.cut.keep_front == 0 && h.meta(s).tokens.size() <= drop))) {
        p.kv = turn_plan::source::discard;
        return p;
    }
    if (*p.tier == 0) {
        p.kv = turn_plan::source::device;
    } else if (layer_wise_loads && (!p.truncated || p.trim_on_load)) {
        p.kv = rules::usable(h.meta(s), hist) ? turn_plan::source::layer_wise : turn_plan::source::stale;
        p.drop_front = p.trim_on_load ? drop : 0;
    } else {
        p.kv = turn_plan::source::whole;
    }
    return p;
}

/// Whether to start loading the next job's KV (session `s`) while the current job runs, and how
/// many of its oldest tokens to cut first (the cut its own turn will make). Only a clean,
/// reusable hit from a lower tier that fits in the device tier without touching `keep` is
/// pre-loaded. nullopt: do not pre-load.
template <class Hierarchy>
std::optional<std::size_t> plan_preload(const Hierarchy& h, session_id s, const std::vector<token_id>& hist,
                                        std::int64_t needed, std::int64_t window, std::span<const session_id> keep,
                                        const queue_view& queue) {
    using rules = reuse_rules<typename Hierarchy::posenc_type>;
    const auto where = h.locate(s);
    if (!where || *where == 0 || std::find(keep.begin(), keep.end(), s) != keep.end()) return std::nullopt;
    std::size_t drop = 0;
    const auto hist_len = static_cast<std::int64_t>(hist.size());
    if (hist_len + needed > window) {
        const auto cut = h.truncation().decide(hist_len, needed, window);
        if (!rules::trims_on_load(cut) || h.meta(s).tokens.size() <= static_cast<std::size_t>(cut.drop_tokens))
            return std::nullopt;
        drop = static_cast<std::size_t>(cut.drop_tokens);
    }
    if (!rules::usable(h.meta(s), hist)) return std::nullopt;
    std::vector<session_id> pinned(keep.begin(), keep.end());
    pinned.push_back(s);
    const std::size_t need = h.staged_charge(s, drop);
    if (need > h.device().capacity_bytes() || !h.plan_room(0, need, pinned, queue)) return std::nullopt;
    return drop;
}

}  // namespace cachedattn
