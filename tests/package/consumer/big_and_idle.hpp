#pragma once
// A size-aware eviction policy written outside the tree, in one header: the session holding
// the most room-time leaves first, bytes x seconds since its last use. Everything it needs comes
// with the hooks (cachedattn::eviction::event): no lookups are injected.
#include <cachedattn/eviction/concept.hpp>

#include <unordered_map>

namespace my {

class big_and_idle {
public:
    struct config {};
    static constexpr std::string_view name = "big_and_idle";
    explicit big_and_idle(const config& = {}) {}

    void on_insert(cachedattn::session_id s, const cachedattn::eviction::event& e) { seen_[s] = {e.bytes, e.now}; }
    void on_access(cachedattn::session_id s, const cachedattn::eviction::event& e) { seen_[s] = {e.bytes, e.now}; }
    void on_erase(cachedattn::session_id s) { seen_.erase(s); }

    std::optional<cachedattn::session_id> victim(const cachedattn::eviction::context& ctx) const {
        std::optional<cachedattn::session_id> out;
        double worst = -1;
        for (const auto& [s, u] : seen_) {
            if (ctx.is_excluded(s)) continue;
            const double w = static_cast<double>(u.bytes + 1) * (ctx.now - u.at + 1e-3);
            if (w > worst || (out && w == worst && s < *out)) {
                worst = w;
                out = s;
            }
        }
        return out;
    }
    std::size_t size() const noexcept { return seen_.size(); }

private:
    struct use {
        std::size_t bytes;
        double at;
    };
    std::unordered_map<cachedattn::session_id, use> seen_;
};

}  // namespace my
