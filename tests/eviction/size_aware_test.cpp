// Size-aware eviction: what the hierarchy tells a policy with each event, and the two size-aware
// policies (GDSF, size-aware Belady) on their own and inside a hierarchy.
#include "../support.hpp"

#include <functional>

using namespace cachedattn;

namespace {
const model_geometry G{2, 4, 2, 8, dtype::f32, 4};
const std::size_t B = G.block_bytes();  // 1 KiB
session_id S(std::uint64_t v) { return session_id{v}; }

/// Records every event; asks the hierarchy about the session from inside the hook.
struct recorder {
    struct config {};
    static constexpr std::string_view name = "recorder";
    struct seen {
        char what;
        session_id s;
        eviction::event e;
        eviction::leave_reason why = eviction::leave_reason::dropped;
        std::optional<std::size_t> located;  ///< the hierarchy's answer during the hook
    };
    inline static std::vector<seen> log;
    inline static std::function<std::optional<std::size_t>(session_id)> locate;

    explicit recorder(const config&) {}
    void on_insert(session_id s, const eviction::event& e) {
        log.push_back({'i', s, e, {}, locate(s)});
        lru_.on_insert(s);
    }
    void on_access(session_id s, const eviction::event& e) {
        log.push_back({'a', s, e, {}, locate(s)});
        lru_.on_access(s);
    }
    void on_erase(session_id s, const eviction::leave_event& e) {
        log.push_back({'e', s, e, e.why, locate(s)});
        lru_.on_erase(s);
    }
    std::optional<session_id> victim(const eviction::context& c) const { return lru_.victim(c); }
    std::size_t size() const noexcept { return lru_.size(); }
    eviction::lru lru_;
};
using H = test::stack3<recorder>;

void store_on_device(H& h, std::uint64_t s, std::size_t tokens) {
    h.create_on_device(S(s));
    h.reserve_on_device(S(s), tokens, {});
    const std::vector<token_id> toks(tokens, static_cast<token_id>(s));
    h.device().commit(S(s), toks);
    h.touch(S(s));
}

eviction::context ctx_of(const queue_view& q, double now = 0) { return {q, {}, now, {}}; }
}  // namespace

TEST_CASE("hierarchy events: every hook gets the session's bytes, its tier, the clock and why it left") {
    test::temp_dir dir("events");
    H h(test::capacities<H>(2 * 2 * B, 2 * 2 * B, 1 << 20, dir.path()), G, 1);
    recorder::log.clear();
    recorder::locate = [&](session_id s) { return h.locate(s); };
    h.set_time(5.0);
    store_on_device(h, 1, 8);  // 2 blocks
    // A miss enters empty, then the turn's end reports its size.
    REQUIRE(recorder::log.size() == 2);
    CHECK(recorder::log[0].what == 'i');
    CHECK(recorder::log[0].e.bytes == 0);
    CHECK(recorder::log[0].located == 0u);  // the directory says where it is during on_insert
    CHECK(recorder::log[1].what == 'a');
    CHECK(recorder::log[1].e.bytes == 2 * B);
    CHECK(recorder::log[1].e.tier == 0);
    CHECK(recorder::log[1].e.now == 5.0);

    h.set_time(6.0);
    store_on_device(h, 2, 8);
    recorder::log.clear();
    store_on_device(h, 3, 8);  // session 1 (LRU) goes down to DRAM
    const auto left = std::find_if(recorder::log.begin(), recorder::log.end(), [](const auto& x) { return x.what == 'e'; });
    REQUIRE(left != recorder::log.end());
    CHECK(left->s == S(1));
    CHECK(left->e.tier == 0);
    CHECK(left->e.bytes == 2 * B);
    CHECK(left->why == eviction::leave_reason::demoted);
    const auto entered = std::find_if(recorder::log.begin(), recorder::log.end(),
                                      [](const auto& x) { return x.what == 'i' && x.s == S(1); });
    REQUIRE(entered != recorder::log.end());
    CHECK(entered->e.tier == 1);
    CHECK(entered->e.bytes == h.stored_bytes(S(1)));
    CHECK(entered->located == 1u);

    recorder::log.clear();
    h.promote_to_device(S(1), {});
    const auto up = std::find_if(recorder::log.begin(), recorder::log.end(),
                                 [](const auto& x) { return x.what == 'e' && x.s == S(1); });
    REQUIRE(up != recorder::log.end());
    CHECK(up->why == eviction::leave_reason::promoted);
    CHECK(up->e.tier == 1);

    recorder::log.clear();
    h.drop(S(1));
    REQUIRE(recorder::log.size() == 1);
    CHECK(recorder::log[0].why == eviction::leave_reason::dropped);
    CHECK_FALSE(recorder::log[0].located.has_value());  // gone from the directory when told
    h.check_invariants();
}

TEST_CASE("gdsf: a large session leaves before a small one, uses raise priority, evictions age the rest") {
    eviction::gdsf p;
    const queue_view q;
    p.on_insert(S(1), {8 * B, 1, 0});
    p.on_insert(S(2), {2 * B, 1, 0});
    CHECK(p.victim(ctx_of(q)) == S(1));  // 1/8B < 1/2B
    p.on_access(S(1), {8 * B, 1, 1});
    p.on_access(S(1), {8 * B, 1, 2});
    p.on_access(S(1), {8 * B, 1, 3});
    p.on_access(S(1), {8 * B, 1, 4});  // 5 uses / 8B > 1 use / 2B
    CHECK(p.victim(ctx_of(q)) == S(2));
    const double h2 = p.priority(S(2));
    p.on_erase(S(2), {{2 * B, 1, 5}, eviction::leave_reason::demoted});
    p.on_insert(S(3), {2 * B, 1, 6});  // enters above the clock the eviction raised
    CHECK(p.priority(S(3)) == doctest::Approx(h2 + 1.0 / static_cast<double>(2 * B)));
    // A promotion is not a judgement: it does not move the clock.
    const double h3 = p.priority(S(3));
    p.on_erase(S(3), {{2 * B, 1, 7}, eviction::leave_reason::promoted});
    p.on_insert(S(4), {2 * B, 1, 8});
    CHECK(p.priority(S(4)) == doctest::Approx(h3));

    eviction::gdsf by_size({.cost_is_size = true});  // cost = bytes: LFU with ageing
    by_size.on_insert(S(1), {8 * B, 1, 0});
    by_size.on_insert(S(2), {2 * B, 1, 0});
    by_size.on_access(S(2), {2 * B, 1, 0});
    CHECK(by_size.victim(ctx_of(q)) == S(1));  // fewer uses, whatever the size
}

TEST_CASE("belady_size: farthest next use times bytes leaves first, never-used sessions first of all") {
    next_use_table future;
    eviction::belady_size p({.oracle = &future});
    const queue_view q;
    p.on_insert(S(1), {1 * B, 1, 0});  // next use at t=100: weight 100 B
    p.on_insert(S(2), {10 * B, 1, 0});  // next use at t=20: weight 200 B
    p.on_insert(S(3), {4 * B, 1, 0});   // next use at t=30: weight 120 B
    future.set(S(1), 100);
    future.set(S(2), 20);
    future.set(S(3), 30);
    CHECK(p.victim(ctx_of(q, 0)) == S(2));  // plain Belady would choose session 1
    eviction::belady plain({.oracle = &future});
    for (auto s : {S(1), S(2), S(3)}) plain.on_insert(s);
    CHECK(plain.victim(ctx_of(q, 0)) == S(1));
    // The size changes with use.
    p.on_access(S(2), {1 * B, 1, 0});
    CHECK(p.victim(ctx_of(q, 0)) == S(3));
    // Never used again goes first, larger first.
    p.on_insert(S(4), {1 * B, 1, 0});
    p.on_insert(S(5), {2 * B, 1, 0});
    CHECK(p.victim(ctx_of(q, 0)) == S(5));
    CHECK(p.admit(S(4), S(1), ctx_of(q, 0)) == false);  // 4 is never used: it should not displace 1
    CHECK(p.admit(S(1), S(4), ctx_of(q, 0)) == true);

    // Without an oracle the queue is the future (distance in jobs).
    job_order order;
    order.push(S(2));
    order.push(S(1));
    eviction::belady_size byq;
    byq.on_insert(S(1), {1 * B, 1, 0});  // (1 + 1) x 1 B
    byq.on_insert(S(2), {4 * B, 1, 0});  // (0 + 1) x 4 B
    CHECK(byq.victim(ctx_of(queue_view(order))) == S(2));
}

TEST_CASE_TEMPLATE("size-aware policies drive a real three-tier hierarchy: invariants hold, hits are served",
                   P, eviction::gdsf, eviction::belady_size) {
    test::temp_dir dir("size-aware");
    using S3 = test::stack3<P>;
    backend::cpu_backend b(model::model_config::tiny(), 1);
    S3 h(test::capacities<S3>(256 << 10, 512 << 10, 2 << 20, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b);
    const auto turns = workload::in_arrival_order(workload::synthetic_chat({.sessions = 10, .turns = 3, .vocab = b.vocab()}), b.vocab());
    metrics::summary sum(3);
    for (const auto& t : turns) {
        sum.add(eng.run_turn(t.session, t.input, t.max_new_tokens).metrics);
        h.check_invariants();
    }
    CHECK(sum.hit_rate() > 0.5);
}
