#pragma once
/// @file
/// @brief A synthetic ShareGPT-like workload whose defaults follow the paper's setup: about
/// 9K conversations with a mean of 5.75 turns (about 52K turns), 161 input and 338 output
/// tokens per turn on average with a heavy (log-normal) tail, sessions arriving as a Poisson
/// process at 1.0/s, and an exponential think time between a reply and the next turn.
/// Seeded and reproducible: the same config gives the same trace on every platform (the
/// samplers below use only <random> engines, whose output the standard fixes, and our own
/// transforms, not the implementation-defined distributions).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "cachedattn/core/error.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn::workload {

struct sharegpt_like_config {
    std::size_t conversations = 9000;
    double mean_turns = 5.75;       ///< turns per conversation: 1 + geometric, this mean
    std::int32_t max_turns = 100;
    double mean_input = 161;        ///< tokens per turn, log-normal with this mean
    double mean_output = 338;
    double sigma = 1.0;             ///< log-normal shape: larger = heavier tail
    std::int32_t max_tokens = 4096; ///< per-turn cap on input and on output tokens
    double arrival_rate = 1.0;      ///< sessions per second (Poisson)
    double mean_think_s = 60;       ///< seconds between a reply and the next turn (exponential)
    std::uint64_t seed = 1;
};

namespace detail {
/// Uniform in (0, 1) from 53 random bits: identical on every standard library.
inline double unit(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; }
inline double exponential(std::mt19937_64& rng, double mean) { return -mean * std::log(unit(rng)); }
inline double normal(std::mt19937_64& rng) {  // Box-Muller, one of the pair
    return std::sqrt(-2 * std::log(unit(rng))) * std::cos(2 * 3.14159265358979323846 * unit(rng));
}
/// Log-normal with the given mean: exp(mu + sigma z), mu = ln(mean) - sigma^2 / 2.
inline double lognormal_mean(std::mt19937_64& rng, double mean, double sigma) {
    return std::exp(std::log(mean) - sigma * sigma / 2 + sigma * normal(rng));
}
}  // namespace detail

inline trace sharegpt_like(const sharegpt_like_config& c) {
    if (c.conversations == 0) throw config_error("sharegpt_like: conversations must be > 0");
    if (!(c.mean_turns >= 1)) throw config_error("sharegpt_like: mean_turns must be >= 1");
    if (c.max_turns < 1) throw config_error("sharegpt_like: max_turns must be >= 1");
    if (!(c.mean_input >= 1) || !(c.mean_output >= 1))
        throw config_error("sharegpt_like: mean_input and mean_output must be >= 1 token");
    if (!(c.sigma >= 0) || !(c.arrival_rate > 0) || !(c.mean_think_s >= 0) || c.max_tokens < 1)
        throw config_error("sharegpt_like: need sigma >= 0, arrival_rate > 0, mean_think_s >= 0, max_tokens >= 1");
    std::mt19937_64 rng(c.seed);
    trace t;
    t.source = "sharegpt_like(seed=" + std::to_string(c.seed) + ")";
    t.conversations.reserve(c.conversations);
    // 1 + geometric(p) has mean 1 + (1 - p) / p = 1 / p.
    const double p = 1.0 / c.mean_turns;
    auto tokens = [&](double mean) {
        const double x = std::round(detail::lognormal_mean(rng, mean, c.sigma));
        return static_cast<std::int32_t>(std::clamp(x, 1.0, static_cast<double>(c.max_tokens)));
    };
    double clock = 0;
    for (std::size_t i = 0; i < c.conversations; ++i) {
        clock += detail::exponential(rng, 1.0 / c.arrival_rate);
        conversation conv;
        conv.session = session_id{i + 1};
        std::int32_t n = 1;
        while (n < c.max_turns && detail::unit(rng) >= p) ++n;
        conv.turns.resize(static_cast<std::size_t>(n));
        for (std::int32_t k = 0; k < n; ++k) {
            auto& turn = conv.turns[static_cast<std::size_t>(k)];
            turn.input_tokens = tokens(c.mean_input);
            turn.output_tokens = tokens(c.mean_output);
            if (k == 0) turn.at_s = clock;
            else turn.think_s = detail::exponential(rng, c.mean_think_s);
        }
        t.conversations.push_back(std::move(conv));
    }
    return t;
}

}  // namespace cachedattn::workload
