// Must NOT compile: this "policy" has no victim() query.
#include <cachedattn/cachedattn.hpp>

namespace ca = cachedattn;

struct no_victim {
    struct config {};
    static constexpr std::string_view name = "no_victim";
    explicit no_victim(const config&) {}
    void on_insert(ca::session_id) {}
    void on_access(ca::session_id) {}
    void on_erase(ca::session_id) {}
    std::size_t size() const { return 0; }
};

using broken = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier>, no_victim, ca::prefetch::none,
                                ca::truncation::drop_oldest, ca::posenc::decoupled_rope>;
int main() { return sizeof(broken); }
