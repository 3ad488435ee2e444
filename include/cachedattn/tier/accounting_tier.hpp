#pragma once
/// @file
/// @brief Tiers that count bytes and hold no KV: the simulator's DRAM and SSD at the paper's
/// scale (128 GB, 10 TB). They charge exactly what `host_tier` and `file_tier` charge for the
/// same session, so a simulated hierarchy with the same byte capacities makes the same moves as
/// the real one. Entries carry their meta (token ids included) and no payload.
#include <string>
#include <string_view>
#include <unordered_map>

#include "cachedattn/core/error.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn::tier {
namespace detail {

template <class Rule>
class accounting_tier {
public:
    struct config {
        std::size_t capacity_bytes = 0;
    };
    static constexpr std::string_view name = Rule::name;
    static constexpr bool accounting_only = true;  ///< holds no KV bytes (simulated stacks only)

    accounting_tier(const config& c, const tier_init& init) : g_(init.geometry), capacity_(c.capacity_bytes) {
        g_.validate();
        if (c.capacity_bytes == 0) throw config_error(std::string(name) + ": capacity_bytes must be > 0");
    }

    std::size_t capacity_bytes() const noexcept { return capacity_; }
    std::size_t used_bytes() const noexcept { return used_; }
    std::size_t free_bytes() const noexcept { return capacity_ - used_; }
    bool contains(session_id s) const { return entries_.contains(s); }
    std::size_t sessions() const noexcept { return entries_.size(); }
    std::size_t charge(const kv_meta& m) const { return Rule::charge(m, g_); }
    std::size_t stored_bytes(session_id s) const { return get(s).bytes; }
    const kv_meta& meta(session_id s) const { return get(s).meta; }

    void put(kv_entry&& e) {
        const std::size_t bytes = charge(e.meta);
        if (contains(e.meta.session)) fail("put of a session already stored");
        if (bytes > free_bytes()) fail("put over capacity (the hierarchy must make room first)");
        if (!e.data.empty()) fail("put of an entry with KV bytes: accounting tiers hold none (a simulated stack only)");
        used_ += bytes;
        const session_id s = e.meta.session;
        entries_.emplace(s, entry{std::move(e.meta), bytes});
    }
    std::optional<kv_entry> take(session_id s) {
        auto it = find(s);
        kv_entry e;
        e.meta = std::move(it->second.meta);
        used_ -= it->second.bytes;
        entries_.erase(it);
        return e;
    }
    void erase(session_id s) {
        auto it = find(s);
        used_ -= it->second.bytes;
        entries_.erase(it);
    }

private:
    struct entry {
        kv_meta meta;
        std::size_t bytes;
    };
    [[noreturn]] static void fail(const char* what) { throw error(std::string(name) + ": " + what); }
    typename std::unordered_map<session_id, entry>::iterator find(session_id s) {
        auto it = entries_.find(s);
        if (it == entries_.end()) fail("session not stored");
        return it;
    }
    const entry& get(session_id s) const {
        auto it = entries_.find(s);
        if (it == entries_.end()) fail("session not stored");
        return it->second;
    }

    model_geometry g_;
    std::size_t capacity_;
    std::size_t used_ = 0;
    std::unordered_map<session_id, entry> entries_;
};

struct host_charge {
    static constexpr std::string_view name = "host (simulated)";
    static std::size_t charge(const kv_meta& m, const model_geometry& g) { return m.blocks(g) * g.block_bytes(); }
};
struct file_charge {
    static constexpr std::string_view name = "file (simulated)";
    static std::size_t charge(const kv_meta& m, const model_geometry& g) { return io::kv_file_size(m, g); }
};

}  // namespace detail

/// DRAM charged like `host_tier` (whole blocks).
using sim_host_tier = detail::accounting_tier<detail::host_charge>;
/// SSD charged like `file_tier` (header + token ids + blocks).
using sim_file_tier = detail::accounting_tier<detail::file_charge>;
static_assert(tier<sim_host_tier>);
static_assert(tier<sim_file_tier>);

}  // namespace cachedattn::tier
