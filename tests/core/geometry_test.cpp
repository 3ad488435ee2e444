#include "../support.hpp"

using namespace cachedattn;

TEST_CASE("geometry: KV bytes per token match the paper's Table 1 for LLaMA-2-13B") {
    const auto g = model::model_config::llama2_13b().geometry();
    CHECK(g.kv_bytes_per_token() == 2u * 40 * 5120 * 2);  // 0.78 MiB
    CHECK(g.block_bytes() == g.kv_bytes_per_token() * 16);
    CHECK(g.blocks_for(0) == 0);
    CHECK(g.blocks_for(1) == 1);
    CHECK(g.blocks_for(16) == 1);
    CHECK(g.blocks_for(17) == 2);
    CHECK(g.blocks_for(16, 1) == 2);
}

TEST_CASE("geometry: impossible shapes are rejected with the field's name") {
    model_geometry g{2, 4, 2, 32, dtype::f32, 16};
    CHECK_NOTHROW(g.validate());
    auto bad = g;
    bad.block_tokens = 0;
    CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("block_tokens must be > 0"), config_error);
    bad = g;
    bad.heads = 6;
    bad.kv_heads = 4;
    CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("must be divisible by kv_heads"), config_error);
    bad = g;
    bad.layers = -1;
    CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("layers must be > 0"), config_error);
    bad = g;
    bad.head_dim = 31;
    CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("head_dim must be even"), config_error);
}

TEST_CASE("model_config: bad shapes are rejected before any weight is allocated") {
    auto c = model::model_config::tiny();
    c.vocab = 0;
    CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("vocab must be > 0"), config_error);
    c = model::model_config::tiny();
    c.kv_heads = 3;
    CHECK_THROWS_AS(backend::cpu_backend(c, 1), config_error);
}

TEST_CASE("truncation: drop counts honour the ratio and always make the turn fit") {
    truncation::drop_oldest half{{0.5}};
    CHECK(half.decide(100, 10, 100).drop_tokens == 50);
    CHECK(half.decide(100, 90, 100).drop_tokens == 90);   // the ratio alone would not fit
    CHECK(half.decide(101, 10, 100).drop_tokens == 51);   // rounds up
    CHECK(half.decide(100, 10, 100).reuse_cache);
    truncation::recompute re{{0.25}};
    CHECK(re.decide(100, 10, 100).drop_tokens == 25);
    CHECK_FALSE(re.decide(100, 10, 100).reuse_cache);
    CHECK_THROWS_AS(truncation::drop_oldest({0.0}), config_error);
    CHECK_THROWS_AS(truncation::drop_oldest({1.5}), config_error);
}
