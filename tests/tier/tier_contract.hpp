#pragma once
// The tier contract (tier/concept.hpp) as one function template, so the test file of a tier
// that needs a fixture of its own (a Redis server) runs the same checks as tier_contract_test.
#include "../support.hpp"

namespace test {

inline const ca::model_geometry contract_geometry{2, 4, 2, 8, ca::dtype::f32, 4};

/// A session of `tokens` tokens with recognisable token ids and bytes.
inline ca::kv_entry contract_entry(std::uint64_t s, std::size_t tokens) {
    ca::kv_entry e;
    e.meta.session = ca::session_id{s};
    for (std::size_t i = 0; i < tokens; ++i) e.meta.tokens.push_back(static_cast<ca::token_id>(i + 3 * s));
    e.data.resize(e.meta.blocks(contract_geometry) * contract_geometry.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>((i * 13 + s) & 0xff);
    return e;
}

/// Pre: `t` is empty, built for contract_geometry with room for about 8 blocks.
template <class T>
void check_tier_contract(T& t) {
    static_assert(ca::tier::tier<T>);
    const auto& g = contract_geometry;
    CHECK(t.used_bytes() == 0);
    CHECK(t.free_bytes() <= t.capacity_bytes());

    const auto a = contract_entry(1, 9);  // 3 blocks
    const auto b = contract_entry(2, 4);  // 1 block
    const std::size_t ca = t.charge(a.meta), cb = t.charge(b.meta);
    CHECK(ca >= 3 * g.block_bytes());
    CHECK(cb >= g.block_bytes());

    t.put(ca::kv_entry(a));
    t.put(ca::kv_entry(b));
    CHECK(t.contains(ca::session_id{1}));
    CHECK(t.sessions() == 2);
    CHECK(t.used_bytes() == ca + cb);  // charged exactly what charge() said
    CHECK(t.stored_bytes(ca::session_id{1}) == ca);
    CHECK(t.meta(ca::session_id{2}).tokens == b.meta.tokens);
    CHECK(t.used_bytes() + t.free_bytes() <= t.capacity_bytes());

    auto back = t.take(ca::session_id{1});  // take returns the same bytes and forgets them
    REQUIRE(back.has_value());
    CHECK(back->data == a.data);
    CHECK(back->meta.tokens == a.meta.tokens);
    CHECK_FALSE(t.contains(ca::session_id{1}));
    CHECK(t.used_bytes() == cb);

    t.erase(ca::session_id{2});
    CHECK(t.used_bytes() == 0);
    CHECK(t.sessions() == 0);

    // Over capacity is refused and changes nothing.
    std::size_t stored = 0;
    for (std::uint64_t s = 10; s < 30; ++s) {
        auto e = contract_entry(s, 8);
        if (t.charge(e.meta) > t.free_bytes()) {
            const std::size_t before = t.used_bytes();
            CHECK_THROWS_AS(t.put(std::move(e)), ca::error);
            CHECK(t.used_bytes() == before);
            break;
        }
        t.put(std::move(e));
        ++stored;
    }
    CHECK(stored >= 3);
    CHECK(t.used_bytes() <= t.capacity_bytes());
}

}  // namespace test
