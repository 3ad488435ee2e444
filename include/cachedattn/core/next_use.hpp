#pragma once
/// @file
/// @brief When each session's KV will next be needed, as a simulator that knows the trace can
/// say: the oracle behind Belady's MIN in trace-driven runs. sim::replay fills it (an arrived
/// turn: its arrival; a finished turn: the next turn's arrival; a running turn: a lower bound,
/// its admission plus the next think time; a finished conversation: never).
#include <limits>
#include <unordered_map>

#include "cachedattn/core/session.hpp"

namespace cachedattn {

class next_use_table {
public:
    static constexpr double never = std::numeric_limits<double>::infinity();

    void set(session_id s, double at) { at_[s] = at; }
    void forget(session_id s) { at_.erase(s); }
    /// When `s` is next needed; `never` for a session with no turn to come.
    double at(session_id s) const {
        const auto it = at_.find(s);
        return it == at_.end() ? never : it->second;
    }
    std::size_t size() const noexcept { return at_.size(); }

private:
    std::unordered_map<session_id, double> at_;
};

}  // namespace cachedattn
