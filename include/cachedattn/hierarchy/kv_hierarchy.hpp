#pragma once
/// @file
/// @brief `kv_hierarchy`: where every session's KV lives, how it moves between tiers, and when
/// it is dropped. The paper's hierarchical KV caching system (§3.1) as one composed type.
///
/// Each session lives in exactly one tier (the directory says which). Making room in tier i is
/// planned first, as a const query over the tiers' eviction policies (victims go one tier down,
/// recursively making room there; whatever cannot go down is dropped), and then applied; plans
/// can be inspected in tests. One eviction policy instance per tier.
#include <array>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/queue_view.hpp"
#include "cachedattn/core/residency_view.hpp"
#include "cachedattn/eviction/concept.hpp"
#include "cachedattn/hierarchy/saved_copies.hpp"
#include "cachedattn/hierarchy/tiers.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/posenc/concept.hpp"
#include "cachedattn/prefetch/concept.hpp"
#include "cachedattn/saving/async_save.hpp"
#include "cachedattn/tier/concept.hpp"
#include "cachedattn/truncation/concept.hpp"

namespace cachedattn {

/// @brief One step of a plan: move `session` from tier `from` to tier `to`, or drop it.
struct tier_move {
    session_id session;
    std::size_t from = 0;
    std::optional<std::size_t> to;  ///< nullopt: drop
    std::size_t bytes = 0;          ///< bytes freed in `from`
};

/// @brief Counters of everything the hierarchy moved, per tier.
template <std::size_t N>
struct hierarchy_stats {
    std::array<std::size_t, N> bytes_in{};       ///< bytes written into tier i (promotion or demotion)
    std::array<std::size_t, N> bytes_out{};      ///< bytes taken out of tier i
    std::array<std::size_t, N> demotions{};      ///< sessions moved from tier i to i+1
    std::array<std::size_t, N> drops{};          ///< sessions dropped from tier i
    std::size_t damaged = 0;                     ///< stored copies found damaged (became misses)
    std::size_t saved_demotions = 0;             ///< device demotions served by a saved host copy
    std::size_t expired = 0;                     ///< sessions retired by a policy's expiry (TTL)
    std::size_t prefetched = 0;                  ///< sessions moved up by the prefetcher
};

/// @brief The whole KV cache system as one type: a "stack" of policies (cachedattn/stacks.hpp
/// names the common ones).
/// @tparam Tiers    `tiers<Device, ...>`, fastest first; the first models tier::device_tier_like
///                  (the model computes in it). Real stacks use device/host/file tiers, simulated
///                  ones sim_device/sim_host/sim_file (counting bytes, holding none).
/// @tparam Evict    eviction::eviction_policy: which session leaves a tier (one instance per tier)
/// @tparam Prefetch prefetch::prefetch_policy: which sessions move up before their turn
/// @tparam Truncate truncation::truncation_policy: what is dropped on context overflow
/// @tparam PosEnc   posenc::positional_encoding: keys stored before or after RoPE
/// @tparam Save     saving::saving_policy: when a turn's new KV is copied to host memory
///                  (async_save, sync_save, write_back) or whether it is kept at all (discard)
template <class Tiers, class Evict, class Prefetch, class Truncate, class PosEnc, class Save = saving::async_save>
class kv_hierarchy {
    static_assert(sizeof(Tiers) == 0,
                  "kv_hierarchy's first argument must be cachedattn::tiers<...>, e.g. "
                  "tiers<tier::device_tier, tier::host_tier, tier::file_tier>");
};

template <class... T, class Evict, class Prefetch, class Truncate, class PosEnc, class Save>
class kv_hierarchy<tiers<T...>, Evict, Prefetch, Truncate, PosEnc, Save> {
    static_assert(sizeof...(T) >= 1, "kv_hierarchy needs at least one tier (the device tier)");
    static_assert(sizeof...(T) <= max_tiers, "kv_hierarchy supports at most cachedattn::max_tiers tiers");
    static_assert((tier::tier<T> && ...),
                  "every tier must model cachedattn::tier::tier (see tier/concept.hpp): a nested "
                  "config, name, capacity_bytes/used_bytes/free_bytes, contains, charge, meta, put, "
                  "take and erase");
    static_assert(tier::device_tier_like<std::tuple_element_t<0, std::tuple<T...>>>,
                  "the first tier must model cachedattn::tier::device_tier_like (e.g. "
                  "tier::device_tier): the model computes in it");
    static_assert(eviction::eviction_policy<Evict>,
                  "Evict must model cachedattn::eviction::eviction_policy: it needs a nested config, "
                  "a static name, on_insert/on_access/on_erase(session_id[, event]), size() and a const "
                  "victim(const eviction::context&) returning std::optional<session_id>");
    static_assert(prefetch::prefetch_policy<Prefetch>,
                  "Prefetch must model cachedattn::prefetch::prefetch_policy: a nested config, a "
                  "static name and a const plan(const queue_view&, const residency_view&) "
                  "returning prefetch::prefetch_plan");
    static_assert(truncation::truncation_policy<Truncate>,
                  "Truncate must model cachedattn::truncation::truncation_policy: a nested config, "
                  "a static name and a const decide(history, needed, window) returning "
                  "truncation::decision");
    static_assert(posenc::positional_encoding<PosEnc>,
                  "PosEnc must model cachedattn::posenc::positional_encoding: a nested config, "
                  "static name, keys_pre_rope and tag, and a const rebase(paged_kv_view<float>, "
                  "first, shift, const rope_table&) returning bool");
    static_assert(saving::saving_policy<Save>,
                  "Save must model cachedattn::saving::saving_policy: a static name, a save_mode and a "
                  "nested writer<Device> template (see saving/concept.hpp)");

public:
    static constexpr std::size_t tier_count = sizeof...(T);
    using tier_tuple = std::tuple<T...>;
    using device_type = std::tuple_element_t<0, tier_tuple>;
    using eviction_type = Evict;
    using prefetch_type = Prefetch;
    using truncation_type = Truncate;
    using posenc_type = PosEnc;
    using save_type = Save;
    using stats_type = hierarchy_stats<tier_count>;
    using traits = eviction::eviction_traits<Evict>;

    /// Run-time settings of every tier and policy. Tiers by name: `c.device()`, `c.host()` (the
    /// second tier, DRAM), `c.ssd()` (the third), or by type: `c.tier<tier::file_tier>()`.
    struct config {
        std::tuple<typename T::config...> tiers;
        typename Evict::config eviction{};
        typename Prefetch::config prefetch{};
        typename Truncate::config truncation{};
        typename PosEnc::config posenc{};

        template <class Tier>
        auto& tier() { return std::get<typename Tier::config>(tiers); }
        template <class Tier>
        const auto& tier() const { return std::get<typename Tier::config>(tiers); }
        auto& device() { return std::get<0>(tiers); }
        const auto& device() const { return std::get<0>(tiers); }
        auto& host() requires(sizeof...(T) >= 2) { return std::get<1>(tiers); }
        const auto& host() const requires(sizeof...(T) >= 2) { return std::get<1>(tiers); }
        auto& ssd() requires(sizeof...(T) >= 3) { return std::get<2>(tiers); }
        const auto& ssd() const requires(sizeof...(T) >= 3) { return std::get<2>(tiers); }
    };

    /// @param weights_id identity of the weights (seed or file hash), folded into the fingerprint
    kv_hierarchy(const config& c, const model_geometry& g, std::uint64_t weights_id)
        : kv_hierarchy(c, tier::tier_init{g, io::cache_fingerprint(g, weights_id, PosEnc::tag)},
                       std::index_sequence_for<T...>{}) {}

    kv_hierarchy(const kv_hierarchy&) = delete;
    kv_hierarchy& operator=(const kv_hierarchy&) = delete;

    // ---------------------------------------------------------------- queries
    std::optional<std::size_t> locate(session_id s) const {
        auto it = dir_.find(s);
        if (it == dir_.end()) return std::nullopt;
        return it->second;
    }
    residency_view residency() const { return {&dir_, usage()}; }
    /// Capacity, use and sessions of every tier, now.
    tier_usage usage() const {
        tier_usage u;
        u.tiers = tier_count;
        for (std::size_t i = 0; i < tier_count; ++i) {
            u.capacity[i] = capacity_bytes(i);
            u.used[i] = used_bytes(i);
            u.sessions[i] = sessions(i);
        }
        return u;
    }
    /// The engine's clock (seconds); time-aware policies read it.
    void set_time(double now) noexcept { now_ = now; }
    double now() const noexcept { return now_; }
    template <std::size_t I>
    auto& tier() noexcept { return std::get<I>(tiers_); }
    template <std::size_t I>
    const auto& tier() const noexcept { return std::get<I>(tiers_); }
    device_type& device() noexcept { return std::get<0>(tiers_); }
    const device_type& device() const noexcept { return std::get<0>(tiers_); }
    const Evict& eviction(std::size_t tier) const { return evict_.at(tier); }
    const Prefetch& prefetcher() const noexcept { return prefetch_; }
    const Truncate& truncation() const noexcept { return truncate_; }
    const PosEnc& posenc() const noexcept { return posenc_; }
    const stats_type& stats() const noexcept { return stats_; }
    /// Host copies of device-resident sessions written by asynchronous saving, and the copies
    /// in flight on device blocks (see saved_copies.hpp). The engine writes them.
    saved_copies& copies() noexcept { return copies_; }
    const model_geometry& geometry() const noexcept { return init_.geometry; }
    std::uint64_t fingerprint() const noexcept { return init_.fingerprint; }

    std::size_t capacity_bytes(std::size_t i) const { return on_tier(i, [](const auto& t) { return t.capacity_bytes(); }); }
    std::size_t used_bytes(std::size_t i) const { return on_tier(i, [](const auto& t) { return t.used_bytes(); }); }
    std::size_t free_bytes(std::size_t i) const { return on_tier(i, [](const auto& t) { return t.free_bytes(); }); }
    std::size_t sessions(std::size_t i) const { return on_tier(i, [](const auto& t) { return t.sessions(); }); }
    static constexpr std::string_view tier_name(std::size_t i) {
        constexpr std::array<std::string_view, tier_count> names{T::name...};
        return names[i];
    }
    /// Bytes the stored copy of `s` takes in its tier. Pre: stored.
    std::size_t stored_bytes(session_id s) const {
        return on_tier(*locate(s), [&](const auto& t) { return t.stored_bytes(s); });
    }
    const kv_meta& meta(session_id s) const {
        return on_tier(*locate(s), [&](const auto& t) -> const kv_meta& { return t.meta(s); });
    }

    // ---------------------------------------------------------------- plan, then apply
    /// Moves that would free `bytes` in tier `i` without touching `pinned`, or nullopt when
    /// impossible (the tier is too small, or everything in it is pinned).
    ///
    /// `leaving` (tier, bytes): a session that leaves that tier before the plan is applied (a
    /// fetch moving it up): its bytes count as free there, so a victim moving down can take
    /// them instead of displacing someone else.
    std::optional<std::vector<tier_move>> plan_room(std::size_t i, std::size_t bytes,
                                                    std::span<const session_id> pinned,
                                                    const queue_view& queue = {},
                                                    std::pair<std::size_t, std::size_t> leaving = {0, 0}) const {
        std::array<std::size_t, tier_count> free{};
        for (std::size_t t = 0; t < tier_count; ++t) free[t] = free_bytes(t);
        if (leaving.first < tier_count) free[leaving.first] += leaving.second;
        std::array<std::vector<session_id>, tier_count> chosen;
        for (auto& c : chosen) c.assign(pinned.begin(), pinned.end());
        std::vector<tier_move> plan;
        const tier_usage u = usage();
        if (!plan_room_rec(i, bytes, std::nullopt, queue, u, free, chosen, plan)) return std::nullopt;
        return plan;
    }

    /// Carries out a plan from `plan_room`.
    void apply(const std::vector<tier_move>& plan) {
        for (const tier_move& m : plan) {
            if (!m.to) {
                drop_from(m.session, m.from, eviction::leave_reason::dropped);
                ++stats_.drops[m.from];
                continue;
            }
            auto e = take_from(m.session, m.from, eviction::leave_reason::demoted);
            if (!e) continue;  // damaged: already counted and forgotten
            put_into(std::move(*e), *m.to);
            ++stats_.demotions[m.from];
        }
    }

    /// Frees `bytes` in tier `i` (plan + apply). Returns false when impossible.
    bool make_room(std::size_t i, std::size_t bytes, std::span<const session_id> pinned,
                   const queue_view& queue = {}) {
        if (free_bytes(i) >= bytes) return true;
        auto plan = plan_room(i, bytes, pinned, queue);
        if (!plan) return false;
        apply(*plan);
        return true;
    }

    // ---------------------------------------------------------------- session operations
    /// Result of bringing a session's KV to the device tier.
    struct promotion {
        std::optional<std::size_t> from;  ///< tier that held it; nullopt: not stored (a miss)
        std::size_t bytes = 0;            ///< bytes copied into the device tier
        bool damaged = false;             ///< it was stored, but the copy was unusable
    };

    /// Moves `s` up to the device tier, demoting others as its eviction policies choose.
    /// Throws config_error when the device tier cannot hold it even when empty.
    promotion promote_to_device(session_id s, std::span<const session_id> pinned, const queue_view& queue = {}) {
        promotion r;
        r.from = locate(s);
        if (!r.from) return r;
        if (*r.from == 0) {
            traits::on_access(evict_[0], s, event_in(0, device().stored_bytes(s)));
            return r;
        }
        room_on_device_for(s, pinned, queue, device().charge(meta(s)));
        auto e = take_from(s, *locate(s), eviction::leave_reason::promoted);  // making room never moves a pinned session
        if (!e) {
            r.damaged = true;
            return r;
        }
        r.bytes = e->data.size();
        put_into(std::move(*e), 0);
        return r;
    }

    /// Like promote_to_device, but only allocates the session's blocks in the device tier and
    /// hands back the KV (in memory, staged) for the caller to copy layer by layer with
    /// `device().copy_layer` (layer-wise pre-loading). nullopt when the copy was damaged.
    ///
    /// `drop_front` > 0 loads a truncated session: its oldest `drop_front` tokens are cut from
    /// the entry in host memory (whole blocks plus an offset) before the device blocks are
    /// allocated, so only the kept tokens take device room and cross the link. Only valid when
    /// the kept keys need no re-encoding (keys stored before RoPE).
    std::optional<kv_entry> promote_staged(session_id s, std::span<const session_id> pinned,
                                           const queue_view& queue = {}, std::size_t drop_front = 0,
                                           std::size_t keep = std::numeric_limits<std::size_t>::max()) {
        room_on_device_for(s, pinned, queue, staged_charge(s, drop_front, keep));
        auto e = take_from(s, *locate(s), eviction::leave_reason::promoted);
        if (!e) return std::nullopt;
        if (drop_front) trim_front(*e, std::min(drop_front, e->meta.tokens.size()), geometry());
        if (keep < e->meta.tokens.size()) trim_back(*e, keep, geometry());
        device().put_staged(e->meta);
        enter(s, 0, device().stored_bytes(s));
        stats_.bytes_in[0] += e->data.size();
        return e;
    }

    /// Device bytes stored session `s` takes once its oldest `drop_front` tokens are cut and at
    /// most `keep` of the rest are kept.
    std::size_t staged_charge(session_id s, std::size_t drop_front = 0,
                              std::size_t keep = std::numeric_limits<std::size_t>::max()) const {
        const kv_meta& m = meta(s);
        if (drop_front == 0 && keep >= m.tokens.size()) return device().charge(m);
        const std::size_t left = m.tokens.size() > drop_front ? m.tokens.size() - drop_front : 0;
        const std::size_t kept = std::min(left, keep);
        const std::size_t slot = m.first_offset + drop_front;
        const auto off = kept ? slot % static_cast<std::size_t>(geometry().block_tokens) : 0;
        return geometry().blocks_for(kept, off) * geometry().block_bytes();
    }

    /// Starts an empty device-resident entry for `s` (a miss about to be computed).
    void create_on_device(session_id s) {
        if (locate(s)) drop(s);
        device().create(s);
        enter(s, 0, device().stored_bytes(s));
    }

    /// Grows `s`'s device entry to hold `tokens` tokens, demoting others to make room.
    void reserve_on_device(session_id s, std::size_t tokens, std::span<const session_id> pinned,
                           const queue_view& queue = {}) {
        const std::size_t extra = device().reserve_charge(s, tokens);
        std::vector<session_id> keep(pinned.begin(), pinned.end());
        keep.push_back(s);
        if (!make_room(0, extra, keep, queue)) {
            const std::size_t need = device().stored_bytes(s) + extra;
            throw config_error("kv_hierarchy: the device tier (" + std::to_string(device().capacity_bytes()) +
                               " bytes) cannot hold " + std::to_string(tokens) + " tokens of session " +
                               std::to_string(s.value) + " (" + std::to_string(need) + " bytes at " +
                               std::to_string(geometry().kv_bytes_per_token()) + " bytes per token)" +
                               (need <= device().capacity_bytes() ? " next to the pinned sessions" : "") +
                               "; raise the device capacity or lower the turn's token count");
        }
        device().reserve(s, tokens);
    }

    void touch(session_id s) {
        if (auto t = locate(s)) traits::on_access(evict_[*t], s, event_in(*t, stored_bytes(s)));
    }

    /// Forgets `s` wherever it is.
    void drop(session_id s) {
        if (auto t = locate(s)) drop_from(s, *t, eviction::leave_reason::dropped);
    }

    /// A session this hierarchy does not hold, looked up in its shared tiers (tier::shared_tier,
    /// e.g. redis_tier): another process may have stored it. True when it was found and placed.
    bool adopt_shared(session_id s) {
        if (locate(s)) return false;
        return adopt_in(s, std::index_sequence_for<T...>{});
    }

    /// Moves `s` one tier down (making room there), or drops it from the last tier.
    void demote(session_id s, const queue_view& queue = {},
                eviction::leave_reason why = eviction::leave_reason::demoted) {
        const auto t = locate(s);
        if (!t) return;
        const auto gone = why == eviction::leave_reason::demoted ? eviction::leave_reason::dropped : why;
        if (*t + 1 >= tier_count) {
            drop_from(s, *t, gone);
            ++stats_.drops[*t];
            return;
        }
        const std::size_t need = charge_in(*t + 1, meta(s));
        if (need > capacity_bytes(*t + 1) || !make_room(*t + 1, need, std::array{s}, queue)) {
            drop_from(s, *t, gone);
            ++stats_.drops[*t];
            return;
        }
        auto e = take_from(s, *t, why);
        if (!e) return;
        put_into(std::move(*e), *t + 1);
        ++stats_.demotions[*t];
    }

    /// Retires every session an eviction policy expires at the current time (a TTL): moved one
    /// tier down when the policy says `expiry_demotes`, else dropped. Returns how many.
    std::size_t expire(const queue_view& queue = {}) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < tier_count; ++i)
            for (session_id s : traits::expired(evict_[i], now_)) {
                if (locate(s) != i) continue;
                if constexpr (traits::expiry_demotes()) demote(s, queue, eviction::leave_reason::expired);
                else drop_from(s, i, eviction::leave_reason::expired);
                ++stats_.expired;
                ++n;
            }
        return n;
    }

    /// Runs the prefetch policy: promotes planned sessions to its target tier, making room
    /// through that tier's eviction policy. `pinned` (the jobs taken from the queue to run now,
    /// which the queue no longer shows) and every queued job up to the one being fetched are
    /// never displaced: a fetch must not demote the session whose turn runs next.
    /// Returns the sessions moved up, in the order they moved.
    std::vector<session_id> prefetch(const queue_view& queue, std::span<const session_id> pinned = {}) {
        const prefetch::prefetch_plan plan = prefetch_.plan(queue, residency());
        const std::size_t target = plan.target_tier;
        std::vector<session_id> moved;
        if (target >= tier_count || plan.sessions.empty()) return moved;
        std::vector<session_id> sooner(pinned.begin(), pinned.end());  // needed no later than the fetched one
        std::size_t scanned = 0;
        for (session_id s : plan.sessions) {
            const auto t = locate(s);
            if (!t || *t <= target) continue;
            const std::size_t need = charge_in(target, meta(s)) + plan.reserve_bytes;
            if (need > capacity_bytes(target)) continue;
            // Never evict a session whose job comes before s's: pin every queued job up to s.
            const std::size_t d = queue.distance(s).value_or(queue.size());
            for (; scanned <= d && scanned < queue.size(); ++scanned) sooner.push_back(queue.at(scanned));
            sooner.push_back(s);
            // s leaves its tier before the victims move down: they may use its bytes there
            // (a swap), rather than pushing out a session nobody chose.
            std::vector<tier_move> moves;
            if (free_bytes(target) < need) {
                auto p = plan_room(target, need, sooner, queue, {*t, stored_bytes(s)});
                if (!p) break;
                moves = std::move(*p);
            }
            auto e = take_from(s, *t, eviction::leave_reason::promoted);
            if (!e) continue;
            apply(moves);
            put_into(std::move(*e), target);
            ++stats_.prefetched;
            moved.push_back(s);
        }
        return moved;
    }

    /// Checks the byte accounting: every tier within capacity, the directory matches the tiers.
    /// Throws cachedattn::error on violation (used by tests and debug runs).
    void check_invariants() const {
        std::size_t in_tiers = 0;
        for (std::size_t i = 0; i < tier_count; ++i) {
            if (used_bytes(i) > capacity_bytes(i))
                throw error("kv_hierarchy: tier " + std::string(tier_name(i)) + " over capacity");
            in_tiers += sessions(i);
            if (evict_[i].size() != sessions(i))
                throw error("kv_hierarchy: eviction policy of tier " + std::string(tier_name(i)) +
                            " tracks a different number of sessions than the tier holds");
        }
        if (in_tiers != dir_.size()) throw error("kv_hierarchy: a session is in two tiers or none");
        for (const auto& [s, t] : dir_)
            if (!on_tier(t, [&](const auto& x) { return x.contains(s); }))
                throw error("kv_hierarchy: directory points to a tier that lacks the session");
    }

private:
    template <std::size_t... I>
    kv_hierarchy(const config& c, const tier::tier_init& init, std::index_sequence<I...>)
        : init_(init),
          tiers_(std::tuple_element_t<I, tier_tuple>(std::get<I>(c.tiers), init)...),
          evict_{make_evict<I>(c.eviction)...},
          prefetch_(c.prefetch),
          truncate_(c.truncation),
          posenc_(c.posenc) {
        (place_held<I>(), ...);
    }

    /// A shared tier may hold sessions other processes stored when it is built: they enter the
    /// directory. (Two shared tiers holding one session: the first places it; keep one shared tier.)
    template <std::size_t I>
    void place_held() {
        if constexpr (tier::shared_tier<std::tuple_element_t<I, tier_tuple>>)
            for (session_id s : std::get<I>(tiers_).held()) {
                if (!dir_.contains(s)) enter(s, I, std::get<I>(tiers_).stored_bytes(s));
            }
    }

    /// Frees room in the device tier for stored session `s` (before it is taken out of its tier,
    /// so a failure leaves it where it was). Throws config_error when impossible.
    void room_on_device_for(session_id s, std::span<const session_id> pinned, const queue_view& queue,
                            std::size_t need) {
        if (need > device().capacity_bytes())
            throw config_error("kv_hierarchy: the device tier (" + std::to_string(device().capacity_bytes()) +
                               " bytes) cannot hold session " + std::to_string(s.value) + "'s KV (" +
                               std::to_string(need) + " bytes)");
        std::vector<session_id> keep(pinned.begin(), pinned.end());
        keep.push_back(s);
        if (!make_room(0, need, keep, queue))
            throw config_error("kv_hierarchy: cannot make room for session " + std::to_string(s.value) +
                               " in the device tier: every resident session is pinned");
    }

    template <std::size_t>
    static Evict make_evict(const typename Evict::config& c) { return Evict(c); }

    template <class F>
    decltype(auto) on_tier(std::size_t i, F&& f) const {
        return on_tier_impl(*this, i, std::forward<F>(f), std::index_sequence_for<T...>{});
    }
    template <class F>
    decltype(auto) on_tier(std::size_t i, F&& f) {
        return on_tier_impl(*this, i, std::forward<F>(f), std::index_sequence_for<T...>{});
    }
    template <std::size_t... I>
    bool adopt_in(session_id s, std::index_sequence<I...>) {
        auto one = [&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
            if constexpr (tier::shared_tier<std::tuple_element_t<J, tier_tuple>>) {
                if (!std::get<J>(tiers_).adopt(s)) return false;
                enter(s, J, std::get<J>(tiers_).stored_bytes(s));
                return true;
            } else {
                return false;
            }
        };
        return (one(std::integral_constant<std::size_t, I>{}) || ...);
    }
    template <class Self, class F, std::size_t I0, std::size_t... I>
    static decltype(auto) on_tier_impl(Self& self, std::size_t i, F&& f, std::index_sequence<I0, I...>) {
        if constexpr (sizeof...(I) == 0) {
            return f(std::get<I0>(self.tiers_));
        } else {
            if (i == I0) return f(std::get<I0>(self.tiers_));
            return on_tier_impl(self, i, std::forward<F>(f), std::index_sequence<I...>{});
        }
    }

    std::size_t charge_in(std::size_t i, const kv_meta& m) const {
        return on_tier(i, [&](const auto& t) { return t.charge(m); });
    }

    /// Plans room for `bytes` in tier i; `incoming` is the session the room is for when it comes
    /// down from a faster tier: tier i's policy may refuse to let it displace a victim.
    bool plan_room_rec(std::size_t i, std::size_t bytes, std::optional<session_id> incoming, const queue_view& queue,
                       const tier_usage& u,
                       std::array<std::size_t, tier_count>& free,
                       std::array<std::vector<session_id>, tier_count>& chosen,
                       std::vector<tier_move>& plan) const {
        if (bytes > capacity_bytes(i)) return false;
        while (free[i] < bytes) {
            const eviction::context ctx{queue, chosen[i], now_, u};
            const auto v = evict_[i].victim(ctx);
            if (!v) return false;
            if (incoming && !traits::admit(evict_[i], *incoming, *v, ctx)) return false;
            chosen[i].push_back(*v);
            const std::size_t freed = on_tier(i, [&](const auto& t) { return t.stored_bytes(*v); });
            tier_move m{*v, i, std::nullopt, freed};
            // The victim goes to the fastest lower tier that admits it, else it is dropped.
            for (std::size_t j = i + 1; j < tier_count && !m.to; ++j) {
                const std::size_t need = charge_in(j, on_tier(i, [&](const auto& t) -> const kv_meta& { return t.meta(*v); }));
                // A failed attempt is rolled back, so the plan never moves sessions it did not need to.
                const auto mark = plan.size();
                const auto free_before = free;
                const auto chosen_before = chosen;
                if (plan_room_rec(j, need, *v, queue, u, free, chosen, plan)) {
                    free[j] -= need;
                    m.to = j;
                } else {
                    plan.resize(mark);
                    free = free_before;
                    chosen = chosen_before;
                }
            }
            free[i] += freed;
            plan.push_back(m);
        }
        return true;
    }

    eviction::event event_in(std::size_t tier, std::size_t bytes) const { return {bytes, tier, now_}; }

    std::optional<kv_entry> take_from(session_id s, std::size_t i, eviction::leave_reason why) {
        const std::size_t bytes = on_tier(i, [&](const auto& t) { return t.stored_bytes(s); });
        std::optional<kv_entry> e;
        if (i == 0) {
            // A saved copy already in host memory spares the device read (asynchronous saving).
            copies_.settle(s);
            e = copies_.claim(s, device().meta(s), device().charge(device().meta(s)));
            if (e) {
                device().erase(s);
                ++stats_.saved_demotions;
            }
        }
        if (!e) e = on_tier(i, [&](auto& t) { return t.take(s); });
        dir_.erase(s);
        traits::on_erase(evict_[i], s, {event_in(i, bytes), why});
        stats_.bytes_out[i] += bytes;
        if (!e) ++stats_.damaged;
        return e;
    }
    void put_into(kv_entry&& e, std::size_t i) {
        const session_id s = e.meta.session;
        const std::size_t bytes = charge_in(i, e.meta);
        on_tier(i, [&](auto& t) { t.put(std::move(e)); });
        enter(s, i, bytes);
        stats_.bytes_in[i] += bytes;
    }
    /// `s` is now held by tier i (`bytes` there): the directory first, so the policy's hook
    /// can already look the session up.
    void enter(session_id s, std::size_t i, std::size_t bytes) {
        dir_[s] = i;
        traits::on_insert(evict_[i], s, event_in(i, bytes));
    }
    void drop_from(session_id s, std::size_t i, eviction::leave_reason why) {
        if (i == 0) {
            copies_.settle(s);
            copies_.discard(s);
        }
        const std::size_t bytes = on_tier(i, [&](const auto& t) { return t.stored_bytes(s); });
        on_tier(i, [&](auto& t) { t.erase(s); });
        dir_.erase(s);
        traits::on_erase(evict_[i], s, {event_in(i, bytes), why});
    }

    tier::tier_init init_;
    tier_tuple tiers_;
    std::array<Evict, tier_count> evict_;
    Prefetch prefetch_;
    Truncate truncate_;
    PosEnc posenc_;
    residency_view::directory dir_;
    stats_type stats_;
    saved_copies copies_;
    double now_ = 0;
};

}  // namespace cachedattn
