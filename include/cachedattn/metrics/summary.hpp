#pragma once
/// @file
/// @brief Aggregates turn metrics into what a policy comparison reports: hit rate per tier,
/// mean and tail TTFT, job time, tokens recomputed, bytes moved.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "cachedattn/engine/turn.hpp"

namespace cachedattn::metrics {

/// @brief The q-quantile (0..1) of `v` by the nearest-rank method; 0 for an empty sample.
inline double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double rank = std::ceil(q * static_cast<double>(v.size()));
    const std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
    return v[std::min(i, v.size() - 1)];
}

class summary {
public:
    explicit summary(std::size_t tiers) : hits_(tiers, 0) {}

    void add(const turn_metrics& m) {
        ++turns_;
        if (m.hit_tier) ++hits_.at(*m.hit_tier);
        if (m.damaged) ++damaged_;
        if (m.truncated) ++truncated_;
        ttft_.push_back(m.ttft_s);
        job_.push_back(m.ttft_s + m.decode_s + m.save_s);
        bytes_saved_ += m.bytes_saved;
        preloaded_ahead_ += m.preloaded_ahead;
        prefill_.push_back(m.prefill_s);
        reused_ += m.reused_tokens;
        recomputed_ += m.recomputed_tokens;
        new_ += m.new_tokens;
        generated_ += m.generated_tokens;
        bytes_loaded_ += m.bytes_loaded;
        bytes_demoted_ += m.bytes_demoted;
        dropped_ += m.sessions_dropped;
        if (m.recomputed_instead > 0) ++(m.hit_tier ? split_ : recomputed_instead_);
    }

    std::size_t turns() const noexcept { return turns_; }
    std::size_t hits(std::size_t tier) const { return hits_.at(tier); }
    std::size_t hits() const {
        std::size_t s = 0;
        for (auto h : hits_) s += h;
        return s;
    }
    double hit_rate(std::size_t tier) const { return turns_ ? static_cast<double>(hits(tier)) / static_cast<double>(turns_) : 0; }
    double hit_rate() const { return turns_ ? static_cast<double>(hits()) / static_cast<double>(turns_) : 0; }
    double mean_ttft() const { return mean(ttft_); }
    double p99_ttft() const { return quantile(ttft_, 0.99); }
    /// Mean time a job held the engine: TTFT + decode + time blocked on saving.
    double mean_job() const { return mean(job_); }
    std::size_t bytes_saved() const noexcept { return bytes_saved_; }
    std::size_t preloaded_ahead() const noexcept { return preloaded_ahead_; }
    double total_prefill() const { return sum(prefill_); }
    double total_ttft() const { return sum(ttft_); }
    std::int64_t reused_tokens() const noexcept { return reused_; }
    std::int64_t recomputed_tokens() const noexcept { return recomputed_; }
    std::int64_t new_tokens() const noexcept { return new_; }
    std::int64_t generated_tokens() const noexcept { return generated_; }
    std::size_t bytes_loaded() const noexcept { return bytes_loaded_; }
    std::size_t bytes_demoted() const noexcept { return bytes_demoted_; }
    std::size_t sessions_dropped() const noexcept { return dropped_; }
    std::size_t damaged() const noexcept { return damaged_; }
    std::size_t truncated() const noexcept { return truncated_; }
    /// Turns that recomputed stored KV because it was faster than loading it (load_choice):
    /// all of it (a miss), or the newest part beside a load (a split).
    std::size_t recomputed_instead() const noexcept { return recomputed_instead_; }
    std::size_t split() const noexcept { return split_; }
    double recomputed_instead_share() const { return share(recomputed_instead_); }
    double split_share() const { return share(split_); }

private:
    static double sum(const std::vector<double>& v) {
        double s = 0;
        for (double x : v) s += x;
        return s;
    }
    double share(std::size_t n) const { return turns_ ? static_cast<double>(n) / static_cast<double>(turns_) : 0; }
    static double mean(const std::vector<double>& v) { return v.empty() ? 0 : sum(v) / static_cast<double>(v.size()); }

    std::size_t turns_ = 0, damaged_ = 0, truncated_ = 0, recomputed_instead_ = 0, split_ = 0;
    std::vector<std::size_t> hits_;
    std::vector<double> ttft_, prefill_, job_;
    std::int64_t reused_ = 0, recomputed_ = 0, new_ = 0, generated_ = 0;
    std::size_t bytes_loaded_ = 0, bytes_demoted_ = 0, dropped_ = 0, bytes_saved_ = 0, preloaded_ahead_ = 0;
};

}  // namespace cachedattn::metrics
