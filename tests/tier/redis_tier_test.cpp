// tier::redis_tier against a real redis-server (tests/support/redis_server.hpp): the tier
// contract, sharing between tiers and processes, the shared capacity, damaged values, a hung,
// dead and restarted server, and an engine run with Redis as the third tier.
#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cachedattn/tier/redis_tier.hpp>
#include <chrono>

#include "../support/redis_server.hpp"
#include "tier_contract.hpp"

using namespace cachedattn;

namespace {
const model_geometry& G = test::contract_geometry;

tier::redis_tier::config config_for(const test::redis_server& srv, std::size_t capacity,
                                    std::string prefix = "t") {
    tier::redis_tier::config c;
    c.port = srv.port();
    c.key_prefix = std::move(prefix);
    c.capacity_bytes = capacity;
    c.connect_timeout_ms = 200;
    c.command_timeout_ms = 200;
    c.retry_after_ms = 50;
    return c;
}

/// A raw connection for what no tier would do: overwrite, read or delete values behind its back.
io::redis_connection raw(const test::redis_server& srv) { return io::redis_connection(srv.endpoint()); }

std::size_t server_used(const test::redis_server& srv, const std::string& prefix) {
    auto c = raw(srv);
    const auto r = c.command({"GET", prefix + ":used"});
    REQUIRE(r);
    return r->type == REDIS_REPLY_NIL ? 0 : std::stoull(std::string(r->str, r->len));
}

/// Seconds one call takes.
template <class F>
double timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

TEST_CASE("redis_tier: the tier contract") {
    test::redis_server srv;
    tier::redis_tier t(config_for(srv, 8 * (G.block_bytes() + 200)), {G, 1});
    test::check_tier_contract(t);
    CHECK(t.shared_used_bytes() == t.used_bytes());  // one tier on the prefix: the counters agree
    CHECK(server_used(srv, "t") == t.used_bytes());
}

TEST_CASE("redis_tier: round trip in the file format, charged by the encoded size") {
    test::redis_server srv;
    tier::redis_tier t(config_for(srv, 8 << 20), {G, 42});
    auto e = test::contract_entry(9, 11);
    e.meta.first_offset = 1;
    e.meta.rope_base = 3;
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    const auto copy = e;
    const auto encoded = io::encode_kv_file(copy, G, 42);
    CHECK(t.charge(copy.meta) == encoded.size());
    t.put(std::move(e));
    {
        auto c = raw(srv);
        const auto v = c.command({"GET", t.key_of(session_id{9})});
        REQUIRE(v);
        REQUIRE(v->type == REDIS_REPLY_STRING);
        CHECK(std::equal(encoded.begin(), encoded.end(), reinterpret_cast<const std::byte*>(v->str),
                         reinterpret_cast<const std::byte*>(v->str) + v->len));  // byte for byte a kv file
    }
    CHECK(t.key_of(session_id{9}) == "t:session:9");
    CHECK(server_used(srv, "t") == encoded.size());
    auto back = t.take(session_id{9});
    REQUIRE(back.has_value());
    CHECK(back->data == copy.data);
    CHECK(back->meta.tokens == copy.meta.tokens);
    CHECK(back->meta.first_offset == 1);
    CHECK(back->meta.rope_base == 3);
    CHECK(server_used(srv, "t") == 0);

    // Larger than one 1 MiB transfer slice: uploaded and downloaded in pieces (~2.5 MiB).
    const auto big = test::contract_entry(10, 10000);
    t.put(kv_entry(big));
    auto big_back = t.take(session_id{10});
    REQUIRE(big_back.has_value());
    CHECK(big_back->data == big.data);
    CHECK(t.stats().missing + t.stats().damaged == 0);
    auto c = raw(srv);  // no staging key left behind
    const auto keys = c.command({"KEYS", "*staging*"});
    REQUIRE(keys);
    CHECK(keys->elements == 0);
}

TEST_CASE("redis_tier: tiers on one server and prefix share sessions, refresh shows new ones") {
    test::redis_server srv;
    tier::redis_tier a(config_for(srv, 1 << 20), {G, 42});
    a.put(test::contract_entry(1, 9));
    tier::redis_tier b(config_for(srv, 1 << 20), {G, 42});  // adopts what is there
    tier::redis_tier other_model(config_for(srv, 1 << 20), {G, 43});
    tier::redis_tier other_prefix(config_for(srv, 1 << 20, "u"), {G, 42});
    CHECK(b.contains(session_id{1}));
    CHECK(b.meta(session_id{1}).tokens == test::contract_entry(1, 9).meta.tokens);
    CHECK(b.stored_bytes(session_id{1}) == a.stored_bytes(session_id{1}));
    CHECK(b.stats().adopted == 1);
    CHECK_FALSE(other_model.contains(session_id{1}));  // another fingerprint is not adopted
    CHECK_FALSE(other_prefix.contains(session_id{1}));

    auto got = b.take(session_id{1});  // b takes what a put
    REQUIRE(got.has_value());
    CHECK(got->data == test::contract_entry(1, 9).data);
    CHECK_FALSE(a.take(session_id{1}).has_value());  // already taken elsewhere: a miss
    CHECK(a.stats().missing == 1);
    CHECK(a.stats().damaged == 0);

    a.put(test::contract_entry(2, 5));
    CHECK_FALSE(b.contains(session_id{2}));
    auto r = b.refresh();
    CHECK(r.complete);
    CHECK(r.adopted == 1);
    CHECK(b.contains(session_id{2}));
    a.erase(session_id{2});
    r = b.refresh();  // gone from the store: forgotten
    CHECK(r.forgotten == 1);
    CHECK_FALSE(b.contains(session_id{2}));
    CHECK(b.used_bytes() == 0);
    CHECK(server_used(srv, "t") == 0);
}

TEST_CASE("redis_tier: a session put by another process is adopted and taken here") {
    test::redis_server srv;
    tier::redis_tier here(config_for(srv, 1 << 20), {G, 42});
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The other engine process: its own tier and connection. No doctest in here.
        int rc = 1;
        try {
            tier::redis_tier there(config_for(srv, 1 << 20), {G, 42});
            there.put(test::contract_entry(77, 13));
            rc = there.stats().puts_failed + there.stats().puts_refused == 0 ? 0 : 2;
        } catch (...) {
            rc = 3;
        }
        ::_exit(rc);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(here.refresh().adopted == 1);
    REQUIRE(here.contains(session_id{77}));
    auto got = here.take(session_id{77});
    REQUIRE(got.has_value());
    CHECK(got->data == test::contract_entry(77, 13).data);
}

TEST_CASE("redis_tier: the capacity holds across tiers, a refused put is a miss, as a failed write") {
    test::redis_server srv;
    const std::size_t one = io::kv_file_size(test::contract_entry(1, 9).meta, G);
    const auto cfg = [&] {
        auto c = config_for(srv, 2 * one + one / 2);
        c.adopt_existing = false;  // b does not hold a's sessions: only the server sees them
        return c;
    }();
    tier::redis_tier a(cfg, {G, 42});
    tier::redis_tier b(cfg, {G, 42});
    a.put(test::contract_entry(1, 9));
    a.put(test::contract_entry(2, 9));
    CHECK(b.free_bytes() == cfg.capacity_bytes);  // b has not talked to the server since
    b.put(test::contract_entry(3, 9));             // fits b's own accounting, not the store
    CHECK(b.stats().puts_refused == 1);
    CHECK(b.last_error().find("refused") != std::string::npos);
    CHECK(b.contains(session_id{3}));  // the concept's postcondition holds
    CHECK(b.free_bytes() == cfg.capacity_bytes - 2 * one);  // now it knows what the store holds
    CHECK(server_used(srv, "t") == 2 * one);
    CHECK_FALSE(b.take(session_id{3}).has_value());
    CHECK(b.stats().missing == 1);
    CHECK(b.used_bytes() == 0);
    a.erase(session_id{1});
    b.put(test::contract_entry(3, 9));  // room again
    CHECK(b.stats().puts_refused == 1);
    CHECK(server_used(srv, "t") == 2 * one);
    CHECK(b.take(session_id{3}).has_value());
}

// A value whose header is not the one this tier wrote (overwritten, another model's, other
// tokens) is not this tier's: a miss, left in place for whoever wrote it. A value with this
// tier's header and a damaged payload is damaged: a miss, consumed.
TEST_CASE("redis_tier: a damaged, stale or foreign value is a miss, never data") {
    test::redis_server srv;
    tier::redis_tier t(config_for(srv, 1 << 20), {G, 42});
    auto c = raw(srv);
    const session_id s{5};
    const std::string key = t.key_of(s);
    t.put(test::contract_entry(5, 9));
    std::string expected_reason = "did not put";
    bool ours = false;
    SUBCASE("payload byte overwritten") {
        REQUIRE(c.command({"SETRANGE", key, std::to_string(io::kv_file_header_bytes + 100), "\x5a"}));
        expected_reason = "payload checksum";
        ours = true;
    }
    SUBCASE("header byte overwritten") {
        REQUIRE(c.command({"SETRANGE", key, "20", "\x5a"}));
    }
    SUBCASE("value replaced by a shorter one") {
        REQUIRE(c.command({"SET", key, "not a kv file"}));
    }
    SUBCASE("value written for another model (stale fingerprint)") {
        const auto stale = io::encode_kv_file(test::contract_entry(5, 9), G, 43);
        REQUIRE(c.command({"SET", key, std::string_view(reinterpret_cast<const char*>(stale.data()), stale.size())}));
    }
    SUBCASE("value of the same session with other tokens") {
        const auto other = io::encode_kv_file(test::contract_entry(5, 10), G, 42);
        REQUIRE(c.command({"SET", key, std::string_view(reinterpret_cast<const char*>(other.data()), other.size())}));
    }
    CHECK_FALSE(t.take(s).has_value());
    CHECK((ours ? t.stats().damaged : t.stats().missing) == 1);
    CHECK(t.last_error().find(expected_reason) != std::string::npos);
    CHECK_FALSE(t.contains(s));
    CHECK(t.used_bytes() == 0);
    const auto left = c.command({"EXISTS", key});
    REQUIRE(left);
    CHECK(left->integer == (ours ? 0 : 1));
}

TEST_CASE("redis_tier: a hung or dead server is a bounded miss, a restarted one is used again") {
    test::redis_server srv;
    tier::redis_tier t(config_for(srv, 1 << 20), {G, 42});  // 200 ms connect and command timeouts
    t.put(test::contract_entry(1, 9));
    t.put(test::contract_entry(2, 9));
    t.put(test::contract_entry(3, 9));

    srv.freeze();  // accepts connections, never answers
    CHECK(timed([&] { CHECK_FALSE(t.take(session_id{1}).has_value()); }) < 2.0);
    CHECK(timed([&] { t.put(test::contract_entry(4, 9)); }) < 2.0);
    CHECK(t.contains(session_id{4}));
    CHECK(t.stats().take_failures == 1);
    CHECK(t.stats().puts_failed == 1);
    CHECK(t.command_errors() >= 2);
    CHECK_FALSE(t.refresh().complete);

    srv.kill();  // connections refused, writes to old sockets fail (SIGPIPE must not end us)
    CHECK(timed([&] { CHECK_FALSE(t.take(session_id{2}).has_value()); }) < 2.0);
    CHECK(timed([&] { t.erase(session_id{3}); }) < 2.0);
    CHECK(timed([&] { CHECK_FALSE(t.take(session_id{4}).has_value()); }) < 2.0);
    CHECK(t.connect_failures() >= 1);
    CHECK_FALSE(t.connected());
    CHECK(t.sessions() == 0);
    CHECK(t.used_bytes() == 0);

    srv.restart();  // same port, empty store
    std::this_thread::sleep_for(std::chrono::milliseconds(60));  // past retry_after_ms
    t.put(test::contract_entry(5, 9));
    CHECK(t.connected());
    auto back = t.take(session_id{5});
    REQUIRE(back.has_value());
    CHECK(back->data == test::contract_entry(5, 9).data);

    // A tier built while nothing listens is a tier of misses, not an error.
    srv.kill();
    tier::redis_tier down(config_for(srv, 1 << 20), {G, 42});
    CHECK(down.connect_failures() == 1);
    down.put(test::contract_entry(6, 9));
    CHECK_FALSE(down.take(session_id{6}).has_value());
}

TEST_CASE("redis_tier: a bad config is a clear error") {
    tier::redis_tier::config c;
    CHECK_THROWS_WITH_AS(tier::redis_tier(c, {G, 1}), doctest::Contains("capacity_bytes must be > 0"), config_error);
    c.capacity_bytes = 1 << 20;
    c.key_prefix.clear();
    CHECK_THROWS_WITH_AS(tier::redis_tier(c, {G, 1}), doctest::Contains("key_prefix"), config_error);
    c.key_prefix = "x";
    c.command_timeout_ms = 0;
    CHECK_THROWS_WITH_AS(tier::redis_tier(c, {G, 1}), doctest::Contains("timeouts"), config_error);
}

// ---------------------------------------------------------------- the engine on Redis
TEST_CASE("redis_tier as the third tier: reuse equals recompute, with pinned hits per tier") {
    using redis_tiers = tiers<tier::device_tier, tier::host_tier, tier::redis_tier>;
    using H = kv_hierarchy<redis_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope>;
    test::redis_server srv;
    backend::cpu_backend b(model::model_config::tiny(), 505);
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    H::config c;
    c.device().capacity_bytes = 160 * per_token;  // ~2 sessions each in device and DRAM
    c.host().capacity_bytes = 160 * per_token;
    c.ssd().port = srv.port();
    c.ssd().key_prefix = "engine";
    c.ssd().capacity_bytes = 4000 * per_token;
    H h(c, b.geometry(), b.weights_id());
    engine eng(h, b, {.retain_across_turns = true, .record_logits = true});

    // Six conversations of four turns, taken round robin: each session's next turn comes after
    // the five others', by which time the two-session device and DRAM tiers have pushed it down.
    std::mt19937_64 rng(505);
    std::array<std::size_t, 4> hits{};  // device, host, redis, miss
    for (int turn = 0; turn < 4; ++turn)
        for (std::uint64_t s = 1; s <= 6; ++s) {
            const session_id id{s};
            const auto input = test::random_tokens(rng, 4 + rng() % 13, b.vocab());
            std::vector<token_id> full = eng.history(id);
            full.insert(full.end(), input.begin(), input.end());
            const auto r = eng.run_turn(id, input, 2 + static_cast<int>(rng() % 4));
            CAPTURE(s);
            CAPTURE(turn);
            CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full)) < 1e-4);
            ++hits[r.metrics.hit_tier ? *r.metrics.hit_tier : 3];
            h.check_invariants();
        }
    MESSAGE("hits device/host/redis, misses: " << hits[0] << " " << hits[1] << " " << hits[2] << " " << hits[3]);
    // Pinned for seed 505 (computed once; the engine's placement is deterministic). Round 1:
    // 6 misses. Round 2: histories are still short (<= 28 tokens), the 160-token device tier
    // holds nearly all six: 5 device hits, and 1 from DRAM (session 6, demoted when 5 grew).
    // Round 3 (~40 tokens each): LRU has pushed every session to DRAM by its turn: 6 DRAM
    // hits. Round 4 (~50-60 tokens): DRAM holds about three, so the least recent went on to
    // Redis: 5 Redis hits and 1 DRAM hit. Totals 5 / 8 / 5 and 6 misses.
    CHECK(hits == std::array<std::size_t, 4>{5, 8, 5, 6});
    CHECK(h.stats().damaged == 0);
    const auto& rs = h.tier<2>().stats();
    CHECK(rs.puts_refused + rs.puts_failed + rs.missing + rs.damaged == 0);
}

TEST_CASE("redis_tier: two engine processes share one store, one continues the other's conversation") {
    using redis_tiers = tiers<tier::device_tier, tier::host_tier, tier::redis_tier>;
    using H = kv_hierarchy<redis_tiers, eviction::lru, prefetch::none, truncation::drop_oldest, posenc::decoupled_rope>;
    test::redis_server srv;
    backend::cpu_backend b(model::model_config::tiny(), 606);
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    auto config = [&] {
        H::config c;
        c.device().capacity_bytes = 200 * per_token;
        c.host().capacity_bytes = 200 * per_token;
        c.ssd().port = srv.port();
        c.ssd().key_prefix = "shared";
        c.ssd().capacity_bytes = 4000 * per_token;
        return c;
    };
    std::mt19937_64 rng(606);
    const session_id a{1}, late{2};
    std::vector<token_id> history;
    {
        // Process A runs two turns of session 1, then its KV goes down to Redis as A's own
        // device and DRAM fill (here: demoted by hand).
        H ha(config(), b.geometry(), b.weights_id());
        engine ea(ha, b);
        for (int turn = 0; turn < 2; ++turn) ea.run_turn(a, test::random_tokens(rng, 12, b.vocab()), 4);
        ha.demote(a);
        ha.demote(a);
        REQUIRE(ha.locate(a) == std::optional<std::size_t>(2));
        history = ea.history(a);
    }  // A ends; the session stays in the store
    // Process B, started afterwards, holds A's session from the start (adopted when built).
    H hb(config(), b.geometry(), b.weights_id());
    CHECK(hb.locate(a) == std::optional<std::size_t>(2));
    hb.check_invariants();
    engine eb(hb, b, {.record_logits = true});
    eb.resume(a, history);
    const auto input = test::random_tokens(rng, 10, b.vocab());
    std::vector<token_id> full = history;
    full.insert(full.end(), input.begin(), input.end());
    const auto r = eb.run_turn(a, input, 3);
    CHECK(r.metrics.hit_tier == std::optional<std::size_t>(2));
    // All but the last reply token, whose KV no turn computed (it was never fed back).
    CHECK(r.metrics.reused_tokens == static_cast<std::int64_t>(history.size()) - 1);
    CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full)) < 1e-4);

    // A session stored after B was built is found on B's miss (one lookup, tier::shared_tier).
    {
        H hc(config(), b.geometry(), b.weights_id());
        engine ec(hc, b);
        ec.run_turn(late, test::random_tokens(rng, 9, b.vocab()), 2);
        hc.demote(late);
        hc.demote(late);
        history = ec.history(late);
    }
    CHECK_FALSE(hb.locate(late).has_value());
    eb.resume(late, history);
    const auto r2 = eb.run_turn(late, test::random_tokens(rng, 5, b.vocab()), 2);
    CHECK(r2.metrics.hit_tier == std::optional<std::size_t>(2));
    hb.check_invariants();
    CHECK_THROWS_AS(eb.resume(late, history), input_error);  // B has its history now
}

TEST_CASE("redis_tier: a tier erases or takes only the value it put, never a newer one another process wrote") {
    test::redis_server srv;
    tier::redis_tier a(config_for(srv, 1 << 20), {G, 42}), b(config_for(srv, 1 << 20), {G, 42});
    const session_id s{5};
    a.put(test::contract_entry(5, 9));
    REQUIRE(b.adopt(s));
    REQUIRE(b.take(s).has_value());    // B continues the conversation elsewhere ...
    b.put(test::contract_entry(5, 12));  // ... and stores its newer KV under the same key
    a.erase(s);                          // A makes room: its own (older) value is gone already
    auto c = raw(srv);
    const auto left = c.command({"EXISTS", a.key_of(s)});
    REQUIRE(left);
    CHECK(left->integer == 1);
    const auto newer = b.take(s);
    REQUIRE(newer.has_value());
    CHECK(newer->meta.tokens.size() == 12);
    CHECK(server_used(srv, "t") == 0);
}
