#pragma once
/// @file
/// @brief The host tier ("DRAM"): whole session entries in host memory, charged by their blocks.
/// (With CUDA on, the CUDA build backs it with pinned memory so copies to HBM run async.)
#include <string>
#include <unordered_map>

#include "cachedattn/core/error.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn::tier {

class host_tier {
public:
    struct config {
        std::size_t capacity_bytes = 0;
    };
    static constexpr std::string_view name = "host";

    host_tier(const config& c, const tier_init& init) : g_(init.geometry), capacity_(c.capacity_bytes) {
        g_.validate();
        if (c.capacity_bytes == 0) throw config_error("host_tier: capacity_bytes must be > 0");
    }

    std::size_t capacity_bytes() const noexcept { return capacity_; }
    std::size_t used_bytes() const noexcept { return used_; }
    std::size_t free_bytes() const noexcept { return capacity_ - used_; }
    bool contains(session_id s) const { return entries_.contains(s); }
    std::size_t sessions() const noexcept { return entries_.size(); }
    std::size_t charge(const kv_meta& m) const noexcept { return m.blocks(g_) * g_.block_bytes(); }
    std::size_t stored_bytes(session_id s) const { return get(s).data.size(); }
    const kv_meta& meta(session_id s) const { return get(s).meta; }

    void put(kv_entry&& e) {
        const std::size_t bytes = charge(e.meta);
        if (contains(e.meta.session)) throw error("host_tier: put of a session already stored");
        if (bytes > free_bytes()) throw error("host_tier: put over capacity (the hierarchy must make room first)");
        if (e.data.size() != bytes) throw error("host_tier: put of an entry with a malformed payload");
        used_ += bytes;
        const session_id s = e.meta.session;
        entries_.emplace(s, std::move(e));
    }
    std::optional<kv_entry> take(session_id s) {
        auto it = find(s);
        kv_entry e = std::move(it->second);
        used_ -= e.data.size();
        entries_.erase(it);
        return e;
    }
    void erase(session_id s) {
        auto it = find(s);
        used_ -= it->second.data.size();
        entries_.erase(it);
    }

private:
    std::unordered_map<session_id, kv_entry>::iterator find(session_id s) {
        auto it = entries_.find(s);
        if (it == entries_.end()) throw error("host_tier: session not stored");
        return it;
    }
    const kv_entry& get(session_id s) const {
        auto it = entries_.find(s);
        if (it == entries_.end()) throw error("host_tier: session not stored");
        return it->second;
    }

    model_geometry g_;
    std::size_t capacity_;
    std::size_t used_ = 0;
    std::unordered_map<session_id, kv_entry> entries_;
};
static_assert(tier<host_tier>);

}  // namespace cachedattn::tier
