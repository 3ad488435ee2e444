#pragma once
/// @file
/// @brief Load or recompute, per turn (beyond the paper). The paper always loads a hit. At light
/// load a read from the SSD can take longer than recomputing the history, and over a slow link a
/// long history can too. Before a turn loads KV from below the device tier, the engine
/// estimates its time to first token three ways and takes the fastest:
/// - load it all (the paper),
/// - recompute it all (the stored copy is dropped unread),
/// - split: load the oldest `n - r` tokens layer by layer while the prefill recomputes the
///   newest `r` with the turn's input. Each layer then takes the longer of its copy and its
///   compute, so the two meet in the middle.
///
/// On the simulator the estimate is the simulated outcome itself (sim_backend's dry runs). On a
/// real backend it comes from `turn_costs`, given or measured online by `cost_meter`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <vector>

#include "cachedattn/engine/layer_timeline.hpp"

namespace cachedattn {

/// @brief A real backend's costs, as the choice reads them.
struct turn_costs {
    /// Prefill of n tokens after c cached ones: n * per_token_s + n * (c + n / 2) * per_pair_s
    /// (the MLP and projections per token, attention per query-key pair).
    double per_token_s = 0;
    double per_pair_s = 0;
    /// Seconds per byte to read a session from tier t into host memory (index t; a missing
    /// entry reads as free: DRAM hands its entry over).
    std::vector<double> read_s_per_byte;
    /// Seconds per byte to copy KV from host memory into the device tier.
    double link_s_per_byte = 0;

    double prefill_s(double n, double cached) const { return n * per_token_s + n * (cached + n / 2) * per_pair_s; }
    double read_s(std::size_t tier, double bytes) const {
        return tier < read_s_per_byte.size() ? bytes * read_s_per_byte[tier] : 0.0;
    }
};

struct load_or_recompute {
    enum class mode {
        load,       ///< always load a hit (the paper)
        recompute,  ///< never load from below the device tier: recompute (a baseline)
        fastest,    ///< per turn, whichever the estimate says is fastest
    };
    mode how = mode::load;
    /// `fastest` may split a turn (load the oldest tokens, recompute the newest). Only turns
    /// loaded layer by layer split: a whole-session load cannot overlap the prefill.
    bool split = true;
    /// Real backends: use these costs instead of measuring them (tests, known hardware).
    std::optional<turn_costs> costs{};
};

/// @brief A turn the choice is made for.
struct split_query {
    std::size_t from_tier = 1;
    std::size_t stored_tokens = 0;   ///< tokens the load would bring (after any truncation cut)
    std::size_t read_bytes = 0;      ///< bytes the tier reads to serve it (the whole stored copy)
    std::size_t bytes_per_token = 0;
    std::size_t prefill_tokens = 0;  ///< tokens prefilled anyway: uncached history plus the input
    bool layer_wise = true;
};

/// Stored tokens to recompute instead of loading, 0..q.stored_tokens, that minimise
/// `ttft(r)`. Ties go to loading more (the paper's choice). Without splitting only 0 and all
/// are tried; with it, a coarse grid and then every point around its best (the estimate is
/// the larger of a falling and a rising cost, so it has one valley).
template <class Estimate>
std::size_t choose_recompute(const split_query& q, bool split, Estimate&& ttft) {
    const std::size_t n = q.stored_tokens;
    std::size_t best = 0;
    double best_s = ttft(std::size_t{0});
    auto consider = [&](std::size_t r) {
        const double s = ttft(r);
        if (s < best_s || (s == best_s && r < best)) {
            best_s = s;
            best = r;
        }
    };
    consider(n);
    if (!split || !q.layer_wise || n < 2) return best;
    constexpr std::size_t grid = 16;
    std::size_t coarse = 0;
    double coarse_s = std::numeric_limits<double>::infinity();
    for (std::size_t i = 1; i < grid; ++i) {
        const std::size_t r = n * i / grid;
        const double s = ttft(r);
        if (s < coarse_s) coarse_s = s, coarse = r;
    }
    const std::size_t lo = coarse > n / grid ? coarse - n / grid : 0, hi = std::min(n, coarse + n / grid);
    const std::size_t step = std::max<std::size_t>(1, (hi - lo) / 64);
    for (std::size_t r = lo; r <= hi; r += step) consider(r);
    return best;
}

/// A real backend's time to first token for a turn that recomputes `r` of the stored tokens:
/// the read from the tier, then the kept tokens' layer copies overlapping the prefill with a
/// read buffer of `buffer_layers` (as layer_pipeline runs them), or the copy then the prefill
/// when the load is not layer-wise.
inline double estimate_ttft(const turn_costs& c, const split_query& q, std::size_t r, int layers, int buffer_layers) {
    const double kept = static_cast<double>(q.stored_tokens - r);
    const double prefill = c.prefill_s(static_cast<double>(q.prefill_tokens + r), kept);
    if (r == q.stored_tokens) return prefill;
    const double read = c.read_s(q.from_tier, static_cast<double>(q.read_bytes));
    const double copy = kept * static_cast<double>(q.bytes_per_token) * c.link_s_per_byte;
    if (!q.layer_wise || layers <= 0) return read + copy + prefill;
    const std::vector<double> copies(static_cast<std::size_t>(layers), copy / layers);
    const std::vector<double> computes(static_cast<std::size_t>(layers), prefill / layers);
    return read + layer_timeline(copies, computes, buffer_layers).compute_done;
}

/// @brief Measures a real backend's `turn_costs` from the turns it runs: prefill times of turns
/// that loaded nothing (least squares over the last `window`), read and copy rates per byte
/// (running means). No estimate until it has seen both a prefill spread and a copy.
class cost_meter {
public:
    explicit cost_meter(std::size_t window = 64) : window_(window) {}

    void prefill(std::size_t n, std::size_t cached, double seconds) {
        if (n == 0 || !(seconds > 0)) return;
        samples_.push_back({static_cast<double>(n), static_cast<double>(n) * (static_cast<double>(cached) + n / 2.0), seconds});
        if (samples_.size() > window_) samples_.pop_front();
    }
    void read(std::size_t tier, std::size_t bytes, double seconds) {
        if (bytes == 0 || !(seconds >= 0)) return;
        if (read_.size() <= tier) read_.resize(tier + 1);
        read_[tier].add(static_cast<double>(bytes), seconds);
    }
    void copy(std::size_t bytes, double seconds) {
        if (bytes > 0 && seconds >= 0) link_.add(static_cast<double>(bytes), seconds);
    }

    std::optional<turn_costs> estimate() const {
        if (samples_.size() < 3 || link_.bytes == 0) return std::nullopt;
        // Least squares for seconds = a * n + b * pairs, both >= 0.
        double nn = 0, np = 0, pp = 0, ns = 0, ps = 0;
        for (const auto& x : samples_) {
            nn += x.n * x.n, np += x.n * x.pairs, pp += x.pairs * x.pairs;
            ns += x.n * x.s, ps += x.pairs * x.s;
        }
        turn_costs c;
        const double det = nn * pp - np * np;
        if (det > 1e-12 * nn * pp) {
            c.per_token_s = (ns * pp - ps * np) / det;
            c.per_pair_s = (ps * nn - ns * np) / det;
        }
        if (!(det > 1e-12 * nn * pp) || c.per_token_s < 0 || c.per_pair_s < 0) {  // one term explains it
            c.per_pair_s = 0;
            c.per_token_s = ns / nn;
        }
        c.link_s_per_byte = link_.rate();
        for (const auto& r : read_) c.read_s_per_byte.push_back(r.rate());
        return c;
    }

private:
    struct sample {
        double n, pairs, s;
    };
    struct rate_sum {
        double bytes = 0, seconds = 0;
        void add(double b, double s) { bytes += b, seconds += s; }
        double rate() const { return bytes > 0 ? seconds / bytes : 0.0; }
    };
    std::size_t window_;
    std::deque<sample> samples_;
    std::vector<rate_sum> read_;
    rate_sum link_;
};

}  // namespace cachedattn
