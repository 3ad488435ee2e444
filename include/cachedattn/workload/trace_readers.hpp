#pragma once
/// @file
/// @brief Readers for public conversation traces. Malformed input throws `trace_error`, whose
/// message names the file, the line and the field ("conv.json:12: field 'from': ...").
#include <cstddef>
#include <filesystem>
#include <string>

#include "cachedattn/core/error.hpp"
#include "cachedattn/workload/trace.hpp"

namespace cachedattn::workload {

/// @brief A trace file that cannot be read as its format says.
class trace_error : public input_error {
public:
    trace_error(const std::filesystem::path& file, std::size_t line, const std::string& field, const std::string& what)
        : input_error(file.string() + ":" + std::to_string(line) + ": " +
                      (field.empty() ? std::string() : "field '" + field + "': ") + what),
          file_(file),
          line_(line),
          field_(field) {}
    const std::filesystem::path& file() const noexcept { return file_; }
    std::size_t line() const noexcept { return line_; }
    const std::string& field() const noexcept { return field_; }

private:
    std::filesystem::path file_;
    std::size_t line_;
    std::string field_;
};

struct sharegpt_options {
    /// Token counts are taken from a message's "tokens" or "num_tokens" field when present,
    /// else estimated from the text as ceil(characters / chars_per_token).
    double chars_per_token = 4.0;
    /// Seconds between sessions' first turns (ShareGPT has no timestamps): Poisson at this rate.
    double arrival_rate = 1.0;
    double mean_think_s = 60;  ///< think time before each later turn (exponential)
    std::uint64_t seed = 1;
};

/// ShareGPT JSON: an array of {"id": ..., "conversations": [{"from": "human"|"gpt"|..., "value":
/// "..."}...]}. A turn is a run of user messages ("human", "user") followed by the model's
/// replies ("gpt", "chatgpt", "bard", "bing", "assistant", "model"); "system" messages count as
/// input of the next turn. A conversation with no user message is skipped; one that ends on a
/// user message keeps that turn with one output token.
trace read_sharegpt(const std::filesystem::path& file, const sharegpt_options& opt = {});

struct burstgpt_options {
    /// Skip rows whose response has 0 tokens (BurstGPT's failed requests).
    bool skip_failed = true;
    /// Read at most this many rows (0: all).
    std::size_t max_rows = 0;
};

/// BurstGPT CSV with a header row naming at least "Timestamp", "Request tokens" and "Response
/// tokens" (any order, case and spacing ignored), optionally "Session ID". Rows that share a
/// session id form one conversation in timestamp order (each turn at its own timestamp); rows
/// without one (no column, or an empty cell) are single-turn sessions.
trace read_burstgpt(const std::filesystem::path& file, const burstgpt_options& opt = {});

}  // namespace cachedattn::workload
