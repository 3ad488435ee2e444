// One conformance suite run over every tier: the contract in tier/concept.hpp.
#include "../support.hpp"

using namespace cachedattn;

namespace {
const model_geometry G{2, 4, 2, 8, dtype::f32, 4};

kv_entry make_entry(std::uint64_t s, std::size_t tokens) {
    kv_entry e;
    e.meta.session = session_id{s};
    for (std::size_t i = 0; i < tokens; ++i) e.meta.tokens.push_back(static_cast<token_id>(i + 3 * s));
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>((i * 13 + s) & 0xff);
    return e;
}

/// Builds each tier with room for about `blocks` blocks.
template <class T>
struct make_tier;
template <>
struct make_tier<tier::device_tier> {
    static tier::device_tier make(std::size_t blocks, const std::filesystem::path&) {
        return tier::device_tier({blocks * G.block_bytes()}, {G, 1});
    }
};
template <>
struct make_tier<tier::host_tier> {
    static tier::host_tier make(std::size_t blocks, const std::filesystem::path&) {
        return tier::host_tier({blocks * G.block_bytes()}, {G, 1});
    }
};
template <>
struct make_tier<tier::file_tier> {
    static tier::file_tier make(std::size_t blocks, const std::filesystem::path& dir) {
        return tier::file_tier({dir, blocks * (G.block_bytes() + 200)}, {G, 1});
    }
};
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("tier contract", T, tier_contract) {
    static_assert(tier::tier<T>);
    test::temp_dir dir("tier-contract");
    T t = make_tier<T>::make(8, dir.path());
    CHECK(t.used_bytes() == 0);
    CHECK(t.free_bytes() <= t.capacity_bytes());

    const auto a = make_entry(1, 9);   // 3 blocks
    const auto b = make_entry(2, 4);   // 1 block
    const std::size_t ca = t.charge(a.meta), cb = t.charge(b.meta);
    CHECK(ca >= 3 * G.block_bytes());
    CHECK(cb >= G.block_bytes());

    auto copy = a;
    t.put(std::move(copy));
    t.put(kv_entry(b));
    CHECK(t.contains(session_id{1}));
    CHECK(t.sessions() == 2);
    CHECK(t.used_bytes() == ca + cb);           // charged exactly what charge() said
    CHECK(t.stored_bytes(session_id{1}) == ca);
    CHECK(t.meta(session_id{2}).tokens == b.meta.tokens);
    CHECK(t.used_bytes() + t.free_bytes() <= t.capacity_bytes());

    auto back = t.take(session_id{1});          // take returns the same bytes and forgets them
    REQUIRE(back.has_value());
    CHECK(back->data == a.data);
    CHECK(back->meta.tokens == a.meta.tokens);
    CHECK_FALSE(t.contains(session_id{1}));
    CHECK(t.used_bytes() == cb);

    t.erase(session_id{2});
    CHECK(t.used_bytes() == 0);
    CHECK(t.sessions() == 0);

    // Over capacity is refused and changes nothing.
    std::vector<kv_entry> many;
    std::size_t stored = 0;
    for (std::uint64_t s = 10; s < 30; ++s) {
        auto e = make_entry(s, 8);
        if (t.charge(e.meta) > t.free_bytes()) {
            const std::size_t before = t.used_bytes();
            CHECK_THROWS_AS(t.put(std::move(e)), error);
            CHECK(t.used_bytes() == before);
            break;
        }
        t.put(std::move(e));
        ++stored;
    }
    CHECK(stored >= 3);
    CHECK(t.used_bytes() <= t.capacity_bytes());
}
TEST_CASE_TEMPLATE_INVOKE(tier_contract, tier::device_tier, tier::host_tier, tier::file_tier);
