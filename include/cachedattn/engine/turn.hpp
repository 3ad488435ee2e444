#pragma once
/// @file
/// @brief What one turn (job) reports: the generated tokens and where the time and bytes went.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cachedattn/core/error.hpp"

#include "cachedattn/core/session.hpp"

namespace cachedattn {

struct turn_metrics {
    std::optional<std::size_t> hit_tier;  ///< tier that served the session's KV; nullopt: miss
    bool damaged = false;        ///< a stored copy existed but was unusable (counted as a miss)
    bool truncated = false;      ///< the history overflowed the context window this turn
    bool invalidated = false;    ///< stored KV existed but could not be reused (posenc, stale)
    std::int64_t reused_tokens = 0;      ///< history tokens whose KV came from the store
    std::int64_t recomputed_tokens = 0;  ///< history tokens prefilled again
    /// Stored tokens recomputed because that was faster than loading them (engine_config::
    /// load_choice); all of them: the turn counts as a miss (hit_tier empty).
    std::int64_t recomputed_instead = 0;
    std::int64_t new_tokens = 0;         ///< the turn's input tokens
    std::int64_t generated_tokens = 0;
    bool preloaded_ahead = false;    ///< the hit's load started while the previous job ran
    std::size_t bytes_loaded = 0;    ///< bytes copied into the device tier for this turn
    std::size_t bytes_saved = 0;     ///< bytes of this turn's KV copied out to host memory
    std::size_t bytes_demoted = 0;   ///< bytes of other sessions moved down a tier to make room
    std::size_t sessions_dropped = 0;  ///< sessions dropped from the hierarchy to make room
    double load_s = 0;     ///< finding and loading the stored KV (under layer-wise pre-loading it
                           ///< includes the layer copies, which overlap the prefill)
    double prefill_s = 0;  ///< computing history-to-recompute + new tokens
    double ttft_s = 0;     ///< turn start to first generated token
    double decode_s = 0;   ///< the remaining generated tokens
    double save_s = 0;     ///< time the turn was blocked on saving (the whole copy under sync_save;
                           ///< under async_save only waiting for this session's earlier saves)
};

struct turn_result {
    std::vector<token_id> generated;
    turn_metrics metrics;
    std::vector<float> first_logits;  ///< logits that chose the first token (if recorded)
};

/// Throws input_error unless a turn of `input` plus `max_new_tokens` fits a model with this
/// vocabulary and context window.
inline void validate_turn(std::span<const token_id> input, int max_new_tokens, int vocab, std::int64_t window) {
    if (input.empty()) throw input_error("engine::run_turn: a turn needs at least one input token");
    if (max_new_tokens < 1)
        throw input_error("engine::run_turn: max_new_tokens must be >= 1, got " + std::to_string(max_new_tokens));
    for (token_id t : input)
        if (t < 0 || t >= vocab)
            throw input_error("engine::run_turn: token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                              std::to_string(vocab) + ")");
    const auto needed = static_cast<std::int64_t>(input.size()) + max_new_tokens;
    if (needed > window)
        throw input_error("engine::run_turn: the turn needs " + std::to_string(needed) +
                          " tokens (input + max_new_tokens) but the context window is " + std::to_string(window));
}

}  // namespace cachedattn
