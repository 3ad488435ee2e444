#include "../support.hpp"

using namespace cachedattn;

TEST_CASE("engine: bad input gets a clear exception and leaves the session untouched") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 1);
    test::temp_dir dir("errors");
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    H h(test::capacities<H>(300 * pt, 300 * pt, 300 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b);
    const std::vector<token_id> ok{1, 2, 3};
    const std::vector<token_id> too_big{1, 512};
    const std::vector<token_id> negative{-4};
    CHECK_THROWS_WITH_AS(eng.run_turn(session_id{1}, too_big, 3), doctest::Contains("outside the vocabulary"),
                         input_error);
    CHECK_THROWS_AS(eng.run_turn(session_id{1}, negative, 3), input_error);
    CHECK_THROWS_WITH_AS(eng.run_turn(session_id{1}, {}, 3), doctest::Contains("at least one input token"),
                         input_error);
    CHECK_THROWS_WITH_AS(eng.run_turn(session_id{1}, ok, 0), doctest::Contains("max_new_tokens must be >= 1"),
                         input_error);
    CHECK_THROWS_WITH_AS(eng.run_turn(session_id{1}, ok, 400), doctest::Contains("context window"), input_error);
    CHECK(eng.history(session_id{1}).empty());
    CHECK_FALSE(h.locate(session_id{1}).has_value());
    CHECK(eng.run_turn(session_id{1}, ok, 3).generated.size() == 3);
}

TEST_CASE("engine: impossible configurations are rejected up front") {
    using H = test::stack3<>;
    test::temp_dir dir("config");
    auto c = model::model_config::tiny();
    c.block_tokens = 0;
    CHECK_THROWS_WITH_AS(backend::cpu_backend(c, 1), doctest::Contains("block_tokens must be > 0"), config_error);
    c = model::model_config::tiny();
    c.heads = 5;
    CHECK_THROWS_WITH_AS(backend::cpu_backend(c, 1), doctest::Contains("divisible by kv_heads"), config_error);

    backend::cpu_backend b(model::model_config::tiny(), 1);
    CHECK_THROWS_AS(H(test::capacities<H>(0, 1 << 20, 1 << 20, dir.path()), b.geometry(), 1), config_error);

    // A device tier smaller than one turn's KV.
    H small(test::capacities<H>(b.geometry().block_bytes(), 1 << 20, 1 << 20, dir.path() / "s"), b.geometry(),
            b.weights_id());
    engine eng(small, b);
    const std::vector<token_id> prompt(40, 1);
    CHECK_THROWS_WITH_AS(eng.run_turn(session_id{1}, prompt, 4), doctest::Contains("cannot hold"), config_error);

    // An engine over a hierarchy built for another model.
    auto other_cfg = model::model_config::tiny();
    other_cfg.layers = 2;
    backend::cpu_backend other(other_cfg, 1);
    H h2(test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path() / "o"), b.geometry(), b.weights_id());
    CHECK_THROWS_WITH_AS(engine(h2, other), doctest::Contains("different model geometry"), config_error);

    // An unwritable cache directory.
    const auto blocker = dir.path() / "file";
    std::ofstream(blocker) << "x";
    CHECK_THROWS_WITH_AS(H(test::capacities<H>(1 << 20, 1 << 20, 1 << 20, blocker / "cache"), b.geometry(), 1),
                         doctest::Contains("cannot create cache directory"), io_error);
}

TEST_CASE("engine: a turn that fails leaves the session's history as it was") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 2);
    test::temp_dir dir("failed-turn");
    const std::size_t block = b.geometry().block_bytes();
    H h(test::capacities<H>(3 * block, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(3);
    eng.run_turn(session_id{1}, test::random_tokens(rng, 30, b.vocab()), 4);  // 33 tokens: 3 blocks
    const auto before = eng.history(session_id{1});
    CHECK_THROWS_AS(eng.run_turn(session_id{1}, test::random_tokens(rng, 30, b.vocab()), 4), config_error);
    CHECK(eng.history(session_id{1}) == before);
    const auto small = test::random_tokens(rng, 5, b.vocab());
    auto full = before;
    full.insert(full.end(), small.begin(), small.end());
    auto r = eng.run_turn(session_id{1}, small, 2);  // 40 tokens fit again
    CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full)) < 1e-4);
}

TEST_CASE("engine: a turn that fails after truncating puts the cut tokens back") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 2);  // window 256
    test::temp_dir dir("failed-cut");
    const std::size_t block = b.geometry().block_bytes();
    H h(test::capacities<H>(10 * block, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());  // 160 tokens
    engine eng(h, b);
    std::mt19937_64 rng(4);
    for (int t = 0; t < 3; ++t) eng.run_turn(session_id{1}, test::random_tokens(rng, 40, b.vocab()), 10);
    const auto before = eng.history(session_id{1});  // 150 tokens
    REQUIRE(before.size() == 150);
    // 150 + 100 + 10 overflows the window: the oldest tokens are cut, and then the turn needs
    // more room than the device has.
    CHECK_THROWS_AS(eng.run_turn(session_id{1}, test::random_tokens(rng, 100, b.vocab()), 10), config_error);
    CHECK(eng.history(session_id{1}) == before);
    CHECK(eng.run_turn(session_id{1}, test::random_tokens(rng, 5, b.vocab()), 2).generated.size() == 2);
}

TEST_CASE("engine: a truncation offset that would need one block too many falls back to recompute") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 4);
    test::temp_dir dir("offset");
    const std::size_t block = b.geometry().block_bytes();
    auto cfg = test::capacities<H>(16 * block, 1 << 20, 1 << 20, dir.path());  // 256 tokens = the window
    cfg.truncation.ratio = 0.01;
    H h(cfg, b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(5);
    bool fell_back = false;
    for (int turn = 0; turn < 30 && !fell_back; ++turn) {
        const auto input = test::random_tokens(rng, 10, b.vocab());
        const auto before = eng.history(session_id{1});
        turn_result r;
        REQUIRE_NOTHROW(r = eng.run_turn(session_id{1}, input, 10));
        if (r.metrics.truncated && r.metrics.invalidated) {
            fell_back = true;
            CHECK(r.metrics.reused_tokens == 0);
            const auto& after = eng.history(session_id{1});
            std::vector<token_id> text(after.begin(), after.end() - static_cast<std::ptrdiff_t>(r.generated.size()));
            CHECK(test::rel_error(r.first_logits, test::reference_logits(b, text)) < 1e-4);
        }
    }
    CHECK(fell_back);
}

TEST_CASE("engine and backend: mismatched weights or an unsupported KV type are refused") {
    using H = test::stack3<>;
    test::temp_dir dir("mismatch");
    backend::cpu_backend a(model::model_config::tiny(), 1), b(model::model_config::tiny(), 2);
    H h(test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path()), a.geometry(), a.weights_id());
    CHECK_THROWS_WITH_AS(engine(h, b), doctest::Contains("other weights"), config_error);
    auto f16 = model::model_config::tiny();
    f16.type = dtype::f16;
    CHECK_THROWS_WITH_AS(backend::cpu_backend(f16, 1), doctest::Contains("f32"), config_error);
    auto theta = model::model_config::tiny();
    theta.rope_theta = 500000.0f;
    CHECK(backend::cpu_backend(theta, 1).weights_id() != a.weights_id());  // fingerprint sees theta
}
