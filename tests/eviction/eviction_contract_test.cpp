// The conformance suite run over every eviction policy, plus each policy's own decisions.
#include "../support.hpp"

#include <cachedattn/testing/eviction_conformance.hpp>

using namespace cachedattn;

namespace {
session_id S(std::uint64_t v) { return session_id{v}; }
std::optional<session_id> victim(const auto& p, std::span<const session_id> excluded = {}) {
    const queue_view q;
    return p.victim(eviction::context{q, excluded});
}
}  // namespace

// The installed conformance suite (cachedattn/testing/eviction_conformance.hpp), which policies
// written outside the tree run too.
TEST_CASE_TEMPLATE_DEFINE("eviction conformance suite", P, eviction_conformance) {
    const auto failures = testing::check_eviction_policy<P>();
    std::string all;
    for (const auto& f : failures) all += f + "\n";
    CHECK_MESSAGE(failures.empty(), all);
}
TEST_CASE_TEMPLATE_INVOKE(eviction_conformance, eviction::lru, eviction::fifo, eviction::lfu, eviction::arc,
                          eviction::ttl, eviction::belady, eviction::scheduler_aware, eviction::gdsf,
                          eviction::belady_size);

namespace {
/// Names an excluded session and forgets to count: the suite must say so.
class broken_policy {
public:
    struct config {};
    static constexpr std::string_view name = "broken";
    explicit broken_policy(const config&) {}
    void on_insert(session_id s) { tracked_.push_back(s); }
    void on_access(session_id) {}
    void on_erase(session_id s) { std::erase(tracked_, s); }
    std::optional<session_id> victim(const eviction::context&) const {
        if (tracked_.empty()) return std::nullopt;
        return tracked_.front();  // ignores ctx.excluded
    }
    std::size_t size() const noexcept { return tracked_.size() > 3 ? 3 : tracked_.size(); }

private:
    std::vector<session_id> tracked_;
};
}  // namespace

TEST_CASE("eviction conformance suite: a policy that breaks the contract is caught") {
    const auto failures = testing::check_eviction_policy<broken_policy>();
    REQUIRE_FALSE(failures.empty());
    const auto has = [&](std::string_view what) {
        return std::any_of(failures.begin(), failures.end(), [&](const std::string& f) { return f.find(what) != f.npos; });
    };
    CHECK(has("size() counts every inserted session"));
    CHECK(has("with every session excluded, none goes"));
}

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

TEST_CASE("fifo: use does not save a session, insertion order decides") {
    eviction::fifo p;
    for (std::uint64_t i = 1; i <= 3; ++i) p.on_insert(S(i));
    p.on_access(S(1));
    p.on_access(S(1));
    CHECK(victim(p) == S(1));
    p.on_erase(S(1));
    p.on_insert(S(1));  // re-entering puts it at the back
    CHECK(victim(p) == S(2));
}
