#pragma once
/// @file
/// @brief Every session's token history as the engine sees it (after truncation), and the
/// guard that lends one out for a turn: a turn that fails puts back what it changed.
#include <cstddef>
#include <unordered_map>
#include <vector>

#include "cachedattn/core/session.hpp"

namespace cachedattn {

class session_histories {
public:
    /// The session's history (empty for a new session).
    const std::vector<token_id>& of(session_id s) const {
        static const std::vector<token_id> empty;
        const auto it = map_.find(s);
        return it == map_.end() ? empty : it->second;
    }
    void forget(session_id s) { map_.erase(s); }
    void set(session_id s, std::vector<token_id> tokens) { map_[s] = std::move(tokens); }

    /// A history taken out for a turn: commit() stores the new one; otherwise the destructor
    /// restores the old one (undoing a truncation cut and anything appended). No copy per turn:
    /// histories are long.
    class lease {
    public:
        lease(session_histories& h, session_id s) : map_(h.map_), session_(s) {
            if (auto it = map_.find(s); it != map_.end()) {
                hist = std::move(it->second);
                existed_ = true;
            }
            size_ = hist.size();
        }
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        ~lease() {
            if (committed_) return;
            hist.resize(size_ - removed_.size());
            hist.insert(hist.begin() + static_cast<std::ptrdiff_t>(cut_at_), removed_.begin(), removed_.end());
            if (existed_) map_[session_] = std::move(hist);
        }
        /// Removes tokens [k, k + d) (a truncation).
        void cut(std::size_t k, std::size_t d) {
            const auto b = hist.begin() + static_cast<std::ptrdiff_t>(k);
            removed_.assign(b, b + static_cast<std::ptrdiff_t>(d));
            cut_at_ = k;
            hist.erase(b, b + static_cast<std::ptrdiff_t>(d));
        }
        void commit() {
            map_[session_] = std::move(hist);
            committed_ = true;
        }

        std::vector<token_id> hist;

    private:
        std::unordered_map<session_id, std::vector<token_id>>& map_;
        session_id session_;
        bool existed_ = false, committed_ = false;
        std::size_t size_ = 0, cut_at_ = 0;
        std::vector<token_id> removed_;
    };

private:
    std::unordered_map<session_id, std::vector<token_id>> map_;
};

}  // namespace cachedattn
