// One conformance suite run over every eviction policy, plus each policy's own decisions.
#include "../support.hpp"

using namespace cachedattn;

namespace {
session_id S(std::uint64_t v) { return session_id{v}; }
std::optional<session_id> victim(const auto& p, std::span<const session_id> excluded = {}) {
    const queue_view q;
    return p.victim(eviction::context{q, excluded});
}
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("eviction contract", P, eviction_contract) {
    P p{typename P::config{}};
    CHECK(p.size() == 0);
    CHECK_FALSE(victim(p).has_value());
    for (std::uint64_t i = 1; i <= 5; ++i) p.on_insert(S(i));
    CHECK(p.size() == 5);

    SUBCASE("victim is a const query: asking twice gives the same answer") {
        CHECK(victim(p) == victim(p));
    }
    SUBCASE("the victim is always a tracked session, never an excluded one") {
        const std::vector<session_id> all{S(1), S(2), S(3), S(4)};
        auto v = victim(p, all);
        REQUIRE(v.has_value());
        CHECK(*v == S(5));
        const std::vector<session_id> every{S(1), S(2), S(3), S(4), S(5)};
        CHECK_FALSE(victim(p, every).has_value());
    }
    SUBCASE("erased sessions are never chosen") {
        for (std::uint64_t i = 1; i <= 4; ++i) p.on_erase(S(i));
        CHECK(p.size() == 1);
        CHECK(victim(p) == S(5));
        p.on_erase(S(5));
        CHECK_FALSE(victim(p).has_value());
    }
    SUBCASE("draining by repeated victim + erase visits every session once") {
        std::vector<std::uint64_t> seen;
        while (auto v = victim(p)) {
            seen.push_back(v->value);
            p.on_erase(*v);
        }
        std::sort(seen.begin(), seen.end());
        CHECK(seen == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    }
}
TEST_CASE_TEMPLATE_INVOKE(eviction_contract, eviction::lru, eviction::fifo, eviction::lfu, eviction::arc, eviction::ttl,
                          eviction::belady, eviction::scheduler_aware);

TEST_CASE("lru: the least recently used session goes first") {
    eviction::lru p;
    for (std::uint64_t i = 1; i <= 3; ++i) p.on_insert(S(i));
    CHECK(victim(p) == S(1));
    p.on_access(S(1));  // 1 is now the most recent
    CHECK(victim(p) == S(2));
    p.on_access(S(2));
    CHECK(victim(p) == S(3));
    const std::vector<session_id> pinned{S(3)};
    CHECK(victim(p, pinned) == S(1));
}

TEST_CASE("fifo: use does not save a session; insertion order decides") {
    eviction::fifo p;
    for (std::uint64_t i = 1; i <= 3; ++i) p.on_insert(S(i));
    p.on_access(S(1));
    p.on_access(S(1));
    CHECK(victim(p) == S(1));
    p.on_erase(S(1));
    p.on_insert(S(1));  // re-entering puts it at the back
    CHECK(victim(p) == S(2));
}
