// Must NOT compile: this "tier" cannot give a session back.
#include <cachedattn/cachedattn.hpp>

namespace ca = cachedattn;

struct write_only_tier {
    struct config {};
    static constexpr std::string_view name = "write_only";
    write_only_tier(const config&, const ca::tier::tier_init&) {}
    std::size_t capacity_bytes() const { return 0; }
    std::size_t used_bytes() const { return 0; }
    std::size_t free_bytes() const { return 0; }
    bool contains(ca::session_id) const { return false; }
    std::size_t sessions() const { return 0; }
    std::size_t charge(const ca::kv_meta&) const { return 0; }
    std::size_t stored_bytes(ca::session_id) const { return 0; }
    void put(ca::kv_entry&&) {}
    void erase(ca::session_id) {}
};

using broken = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, write_only_tier>, ca::eviction::lru,
                                ca::prefetch::none, ca::truncation::drop_oldest, ca::posenc::decoupled_rope>;
int main() { return sizeof(broken); }
