#include "../support.hpp"

using namespace cachedattn;

namespace {
const model_geometry G{2, 4, 2, 8, dtype::f32, 4};  // block = 2 layers * 2 * 2 heads * 4 tokens * 8 dims floats = 1 KiB

kv_entry make_entry(std::uint64_t s, std::size_t tokens, float seed, std::uint32_t offset = 0) {
    kv_entry e;
    e.meta.session = session_id{s};
    e.meta.first_offset = offset;
    for (std::size_t i = 0; i < tokens; ++i) e.meta.tokens.push_back(static_cast<token_id>(i + s));
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    auto* f = reinterpret_cast<float*>(e.data.data());
    for (std::size_t i = 0; i < e.data.size() / 4; ++i) f[i] = seed + static_cast<float>(i);
    return e;
}
}  // namespace

TEST_CASE("device_tier: put/take round-trips bytes and charges whole blocks") {
    tier::device_tier d({10 * G.block_bytes()}, {G, 1});
    CHECK(d.free_bytes() == 10 * G.block_bytes());
    auto e = make_entry(1, 9, 0.5f);  // 3 blocks
    const auto copy = e;
    d.put(std::move(e));
    CHECK(d.used_bytes() == 3 * G.block_bytes());
    CHECK(d.stored_bytes(session_id{1}) == 3 * G.block_bytes());
    CHECK(d.meta(session_id{1}).tokens == copy.meta.tokens);
    auto back = d.take(session_id{1});
    REQUIRE(back.has_value());
    CHECK(back->data == copy.data);
    CHECK(back->meta.tokens == copy.meta.tokens);
    CHECK(d.used_bytes() == 0);
    CHECK_FALSE(d.contains(session_id{1}));
}

TEST_CASE("device_tier: the paged view addresses [layer][k|v][head][token][dim] through the table") {
    tier::device_tier d({10 * G.block_bytes()}, {G, 1});
    d.put(make_entry(7, 2, 0.0f));   // occupies block 0, so session 8 gets non-identity blocks
    d.create(session_id{8});
    d.reserve(session_id{8}, 6);
    auto v = d.view(session_id{8});
    CHECK(v.capacity() == 8);
    for (int l = 0; l < G.layers; ++l)
        for (int h = 0; h < G.kv_heads; ++h)
            for (int t = 0; t < 6; ++t) {
                v.k(l, h, t)[0] = static_cast<float>(1000 * l + 100 * h + t);
                v.v(l, h, t)[G.head_dim - 1] = -static_cast<float>(1000 * l + 100 * h + t);
            }
    const std::vector<token_id> toks{1, 2, 3, 4, 5, 6};
    d.commit(session_id{8}, toks);
    d.shrink_to_fit(session_id{8});
    auto e = d.read(session_id{8});
    const auto* f = reinterpret_cast<const float*>(e.data.data());
    const std::size_t half = G.block_half_layer_elems();
    // token 5 is in block 1, slot 1; layer 1, K, head 1
    const std::size_t k_off = G.block_elems() + (1 * 2 + 0) * half + 1 * 4 * 8 + 1 * 8;
    CHECK(f[k_off] == doctest::Approx(1105));
    const std::size_t v_off = G.block_elems() + (1 * 2 + 1) * half + 1 * 4 * 8 + 1 * 8 + 7;
    CHECK(f[v_off] == doctest::Approx(-1105));
}

TEST_CASE("device_tier: truncate_front drops whole blocks and keeps an offset") {
    tier::device_tier d({10 * G.block_bytes()}, {G, 1});
    d.put(make_entry(1, 10, 0.0f));  // 3 blocks
    const float before = d.view(session_id{1}).k(0, 0, 5)[0];
    d.truncate_front(session_id{1}, 5);
    CHECK(d.used_bytes() == 2 * G.block_bytes());
    CHECK(d.meta(session_id{1}).first_offset == 1);
    CHECK(d.meta(session_id{1}).rope_base == 5);
    CHECK(d.meta(session_id{1}).tokens.size() == 5);
    CHECK(d.view(session_id{1}).k(0, 0, 0)[0] == before);
    d.truncate_front(session_id{1}, 5);
    CHECK(d.used_bytes() == 0);
}

TEST_CASE("device_tier: capacity is enforced in whole blocks") {
    tier::device_tier d({3 * G.block_bytes() + 100}, {G, 1});
    CHECK(d.free_bytes() == 3 * G.block_bytes());
    CHECK(d.charge(make_entry(1, 13, 0).meta) == 4 * G.block_bytes());
    CHECK_THROWS_AS(d.put(make_entry(1, 13, 0)), error);
    CHECK(d.used_bytes() == 0);
    CHECK_THROWS_WITH_AS(tier::device_tier({0}, {G, 1}), doctest::Contains("capacity_bytes must be > 0"), config_error);
    CHECK_THROWS_WITH_AS(tier::device_tier({100}, {G, 1}), doctest::Contains("holds no KV block"), config_error);
}

TEST_CASE("host_tier: byte accounting and capacity") {
    tier::host_tier h({5 * G.block_bytes()}, {G, 1});
    h.put(make_entry(1, 8, 0));
    h.put(make_entry(2, 4, 0));
    CHECK(h.used_bytes() == 3 * G.block_bytes());
    CHECK_THROWS_AS(h.put(make_entry(3, 12, 0)), error);
    CHECK(h.used_bytes() == 3 * G.block_bytes());
    h.erase(session_id{1});
    CHECK(h.used_bytes() == G.block_bytes());
    CHECK_THROWS_AS(tier::host_tier({0}, {G, 1}), config_error);
}

TEST_CASE("device_tier: erase_tokens in the middle moves later tokens down over the gap") {
    tier::device_tier d({10 * G.block_bytes()}, {G, 1});
    d.put(make_entry(1, 10, 0.0f));
    auto v = d.view(session_id{1});
    std::vector<float> k7(v.k(1, 1, 7), v.k(1, 1, 7) + G.head_dim), v9(v.v(0, 0, 9), v.v(0, 0, 9) + G.head_dim);
    const float k1 = v.k(0, 1, 1)[3];
    d.erase_tokens(session_id{1}, 2, 5);  // keep 0,1 then 7,8,9
    CHECK(d.meta(session_id{1}).tokens == std::vector<token_id>{1, 2, 8, 9, 10});
    v = d.view(session_id{1});
    CHECK(v.k(0, 1, 1)[3] == k1);
    CHECK(std::equal(k7.begin(), k7.end(), v.k(1, 1, 2)));
    CHECK(std::equal(v9.begin(), v9.end(), v.v(0, 0, 4)));
    CHECK(d.used_bytes() == 2 * G.block_bytes());
    CHECK(d.meta(session_id{1}).rope_base == 5);
    d.erase_tokens(session_id{1}, 4, 100);  // clamped
    CHECK(d.meta(session_id{1}).tokens.size() == 4);
}
