// The installed prefetch conformance suite (cachedattn/testing/prefetch_conformance.hpp) over
// every prefetch policy, and a broken policy it must catch.
#include "../support.hpp"

#include <cachedattn/testing/prefetch_conformance.hpp>

using namespace cachedattn;

TEST_CASE_TEMPLATE_DEFINE("prefetch conformance suite", P, prefetch_conformance) {
    const auto failures = testing::check_prefetch_policy<P>();
    std::string all;
    for (const auto& f : failures) all += f + "\n";
    CHECK_MESSAGE(failures.empty(), all);
}
TEST_CASE_TEMPLATE_INVOKE(prefetch_conformance, prefetch::none, prefetch::on_demand, prefetch::scheduler_aware);

namespace {
/// Plans every stored session, queued or not, farthest first: the suite must say so.
struct fetch_everything {
    struct config {};
    static constexpr std::string_view name = "fetch_everything";
    explicit fetch_everything(const config&) {}
    prefetch::prefetch_plan plan(const queue_view& q, const residency_view&) const {
        prefetch::prefetch_plan p;
        for (std::size_t d = q.size(); d-- > 0;) p.sessions.push_back(q.at(d));
        return p;
    }
};
}  // namespace

TEST_CASE("prefetch conformance suite: a policy that breaks the contract is caught") {
    const auto failures = testing::check_prefetch_policy<fetch_everything>();
    const auto has = [&](std::string_view what) {
        return std::any_of(failures.begin(), failures.end(), [&](const std::string& f) { return f.find(what) != f.npos; });
    };
    CHECK(has("nearest job first"));
    CHECK(has("planned twice"));
    CHECK(has("not stored below the target tier"));
}
