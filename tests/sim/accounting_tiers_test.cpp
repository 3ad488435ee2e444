// Accounting-only tiers (the simulator's HBM, DRAM and SSD) make exactly the moves the real
// tiers make: the same sequence of turns through two hierarchies with the same byte capacities
// and policies leaves every session in the same tier, step by step.
#include <cachedattn/tier/accounting_tier.hpp>

#include "../support.hpp"

using namespace cachedattn;

namespace {
using real_tiers = tiers<tier::device_tier, tier::host_tier, tier::file_tier>;
using sim_tiers = tiers<tier::sim_device_tier, tier::sim_host_tier, tier::sim_file_tier>;

template <class H>
void turn(H& h, session_id s, std::size_t grow, job_order& order) {
    // What the engine does with the hierarchy in one turn (no model): find, promote, reserve,
    // write the new tokens, shrink, touch.
    const queue_view q(order);
    if (h.locate(s)) h.promote_to_device(s, {}, q);
    else h.create_on_device(s);
    auto& dev = h.device();
    const std::size_t have = dev.meta(s).tokens.size();
    h.reserve_on_device(s, have + grow, {}, q);
    if constexpr (!tier::accounting_tier<typename H::device_type>) {
        // Give the real tier's new tokens some bytes (the model would write them).
        auto v = dev.view(s);
        for (std::size_t t = have; t < have + grow; ++t)
            for (int l = 0; l < v.layers; ++l) *v.k(l, 0, static_cast<std::int64_t>(t)) = static_cast<float>(t);
    }
    std::vector<token_id> toks(grow, static_cast<token_id>(s.value % 7));
    dev.commit(s, toks);
    dev.shrink_to_fit(s);
    h.touch(s);
    h.prefetch(q);
}

template <class Evict, class Prefetch>
void same_moves(std::uint64_t seed) {
    using real = kv_hierarchy<real_tiers, Evict, Prefetch, truncation::drop_oldest, posenc::decoupled_rope>;
    using simulated = kv_hierarchy<sim_tiers, Evict, Prefetch, truncation::drop_oldest, posenc::decoupled_rope>;
    backend::cpu_backend b(model::model_config::tiny(), 1);
    const std::size_t block = b.geometry().block_bytes();
    test::temp_dir dir("accounting");
    auto rc = test::capacities<real>(12 * block, 20 * block, 48 * block + 4096, dir.path());
    typename simulated::config sc;
    sc.device().capacity_bytes = 12 * block;
    sc.host().capacity_bytes = 20 * block;
    sc.ssd().capacity_bytes = 48 * block + 4096;
    real r(rc, b.geometry(), b.weights_id());
    simulated s(sc, b.geometry(), b.weights_id());

    std::mt19937_64 rng(seed);
    std::vector<session_id> jobs;  // the future: a random interleaving of 12 sessions' turns
    for (int i = 0; i < 120; ++i) jobs.push_back(session_id{1 + rng() % 12});
    job_order order_r, order_s;
    for (auto j : jobs) {
        order_r.push(j);
        order_s.push(j);
    }
    std::size_t moves = 0;
    for (auto j : jobs) {
        order_r.pop();
        order_s.pop();
        const std::size_t grow = 2 + rng() % 12;
        turn(r, j, grow, order_r);
        turn(s, j, grow, order_s);
        r.check_invariants();
        s.check_invariants();
        for (std::uint64_t id = 1; id <= 12; ++id) {
            INFO("session " << id);
            REQUIRE(r.locate(session_id{id}) == s.locate(session_id{id}));
        }
        for (std::size_t t = 0; t < 3; ++t) CHECK(r.used_bytes(t) == s.used_bytes(t));
    }
    for (std::size_t t = 0; t < 3; ++t) {
        CHECK(r.stats().demotions[t] == s.stats().demotions[t]);
        CHECK(r.stats().drops[t] == s.stats().drops[t]);
        moves += r.stats().demotions[t] + r.stats().drops[t];
    }
    CHECK(r.stats().prefetched == s.stats().prefetched);
    CHECK(moves > 20);  // the capacities force real decisions
    MESSAGE(Evict::name << " + " << Prefetch::name << ": " << moves << " demotions/drops, "
                        << r.stats().prefetched << " prefetches, identical in both");
}
}  // namespace

TEST_CASE("accounting tiers: the simulated hierarchy makes the real one's moves") {
    same_moves<eviction::lru, prefetch::none>(1);
    same_moves<eviction::scheduler_aware, prefetch::scheduler_aware>(2);
    same_moves<eviction::arc, prefetch::on_demand>(3);
    same_moves<eviction::belady, prefetch::none>(4);
}

TEST_CASE("accounting tiers: charges like the real tiers, no payload accepted") {
    backend::cpu_backend b(model::model_config::tiny(), 1);
    const tier::tier_init init{b.geometry(), 1};
    tier::sim_host_tier host({1 << 20}, init);
    tier::sim_file_tier file({1 << 20}, init);
    kv_meta m;
    m.session = session_id{1};
    m.tokens.assign(40, 3);
    CHECK(host.charge(m) == 3 * b.geometry().block_bytes());
    CHECK(file.charge(m) == io::kv_file_size(m, b.geometry()));
    kv_entry e{m, {}};
    host.put(std::move(e));
    CHECK(host.used_bytes() == host.charge(m));
    CHECK(host.take(session_id{1})->data.empty());
    kv_entry with_bytes{m, std::pmr::vector<std::byte>(8)};
    CHECK_THROWS_AS(host.put(std::move(with_bytes)), error);
    CHECK_THROWS_AS(tier::sim_host_tier({0}, init), config_error);
}
