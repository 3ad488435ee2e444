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
