#include "../support.hpp"

using namespace cachedattn;

namespace {
const model_geometry G{2, 4, 2, 8, dtype::f32, 4};
const std::size_t B = G.block_bytes();  // 1 KiB

kv_entry make_entry(std::uint64_t s, std::size_t tokens) {
    kv_entry e;
    e.meta.session = session_id{s};
    e.meta.tokens.assign(tokens, static_cast<token_id>(s));
    e.data.assign(e.meta.blocks(G) * G.block_bytes(), static_cast<std::byte>(s));
    return e;
}

using H = test::stack3<>;

/// Stores a session's entry in the device tier the way the engine does (create + reserve + commit).
void store_on_device(H& h, std::uint64_t s, std::size_t tokens) {
    const session_id id{s};
    h.create_on_device(id);
    h.reserve_on_device(id, tokens, {});
    const std::vector<token_id> toks(tokens, static_cast<token_id>(s));
    h.device().commit(id, toks);
}
}  // namespace

TEST_CASE("kv_hierarchy: victims move down one tier, and off the last tier they are dropped") {
    test::temp_dir dir("hier");
    const std::size_t file_one = io::kv_file_size(make_entry(1, 8).meta, G);
    H h(test::capacities<H>(2 * 2 * B, 2 * 2 * B, 2 * file_one, dir.path()), G, 1);
    for (std::uint64_t s = 1; s <= 7; ++s) {
        store_on_device(h, s, 8);  // 2 blocks each: two sessions fill a tier
        h.check_invariants();
    }
    // LRU everywhere: newest two on device, next two in DRAM, next two on SSD, oldest dropped.
    CHECK(h.locate(session_id{7}) == 0u);
    CHECK(h.locate(session_id{6}) == 0u);
    CHECK(h.locate(session_id{5}) == 1u);
    CHECK(h.locate(session_id{4}) == 1u);
    CHECK(h.locate(session_id{3}) == 2u);
    CHECK(h.locate(session_id{2}) == 2u);
    CHECK_FALSE(h.locate(session_id{1}).has_value());
    CHECK(h.stats().drops[2] == 1);
    CHECK(h.stats().demotions[0] == 5);
    CHECK(h.stats().demotions[1] == 3);
}

TEST_CASE("kv_hierarchy: plan_room is a const query, apply carries it out") {
    test::temp_dir dir("hier-plan");
    H h(test::capacities<H>(4 * B, 4 * B, 1 << 20, dir.path()), G, 1);
    store_on_device(h, 1, 8);
    store_on_device(h, 2, 8);
    auto plan = h.plan_room(0, 2 * B, {});
    REQUIRE(plan.has_value());
    REQUIRE(plan->size() == 1);
    CHECK((*plan)[0].session == session_id{1});
    CHECK((*plan)[0].to == 1u);
    CHECK(h.locate(session_id{1}) == 0u);  // nothing moved yet
    const std::vector<session_id> pinned{session_id{1}};
    auto plan2 = h.plan_room(0, 2 * B, pinned);
    REQUIRE(plan2.has_value());
    CHECK((*plan2)[0].session == session_id{2});
    const std::vector<session_id> both{session_id{1}, session_id{2}};
    CHECK_FALSE(h.plan_room(0, 2 * B, both).has_value());
    CHECK_FALSE(h.plan_room(0, 5 * B, {}).has_value());  // larger than the tier
    h.apply(*plan);
    CHECK(h.locate(session_id{1}) == 1u);
    h.check_invariants();
}

TEST_CASE("kv_hierarchy: promotion to the device brings the bytes back intact") {
    test::temp_dir dir("hier-promo");
    H h(test::capacities<H>(2 * B, 2 * B, 1 << 20, dir.path()), G, 1);
    store_on_device(h, 1, 8);
    const auto original = h.device().read(session_id{1});
    store_on_device(h, 2, 8);  // 1 -> host
    store_on_device(h, 3, 8);  // 2 -> host, 1 -> file
    REQUIRE(h.locate(session_id{1}) == 2u);
    auto p = h.promote_to_device(session_id{1}, {});
    CHECK(p.from == 2u);
    CHECK(p.bytes == 2 * B);
    CHECK(h.locate(session_id{1}) == 0u);
    const auto back = h.device().read(session_id{1});
    CHECK(back.data == original.data);
    CHECK(back.meta.tokens == original.meta.tokens);
    h.check_invariants();
}

TEST_CASE("kv_hierarchy: capacities are never exceeded under random operations") {
    test::temp_dir dir("hier-rand");
    H h(test::capacities<H>(6 * B, 9 * B, 20000, dir.path()), G, 1);
    std::mt19937_64 rng(3);
    for (int step = 0; step < 400; ++step) {
        const std::uint64_t s = rng() % 12 + 1;
        const session_id id{s};
        switch (rng() % 4) {
            case 0:
            case 1:
                if (h.locate(id)) h.promote_to_device(id, {});
                else store_on_device(h, s, rng() % 12 + 1);
                break;
            case 2: h.demote(id); break;
            case 3: h.drop(id); break;
        }
        for (std::size_t t = 0; t < H::tier_count; ++t) REQUIRE(h.used_bytes(t) <= h.capacity_bytes(t));
        h.check_invariants();
    }
}

TEST_CASE("kv_hierarchy: a session larger than the device tier is a clear configuration error") {
    test::temp_dir dir("hier-big");
    H h(test::capacities<H>(2 * B, 8 * B, 1 << 20, dir.path()), G, 1);
    h.create_on_device(session_id{1});
    CHECK_THROWS_WITH_AS(h.reserve_on_device(session_id{1}, 100, {}), doctest::Contains("cannot hold 100 tokens"),
                         config_error);
}

TEST_CASE("kv_hierarchy: zero capacities are rejected") {
    test::temp_dir dir("hier-zero");
    CHECK_THROWS_AS(H(test::capacities<H>(0, 1 << 20, 1 << 20, dir.path()), G, 1), config_error);
    CHECK_THROWS_AS(H(test::capacities<H>(1 << 20, 0, 1 << 20, dir.path()), G, 1), config_error);
    CHECK_THROWS_AS(H(test::capacities<H>(1 << 20, 1 << 20, 0, dir.path()), G, 1), config_error);
}
