#include "../support.hpp"

using namespace cachedattn;

namespace {
model::model_config one_layer() {
    auto c = model::model_config::tiny();
    c.name = "tiny-1layer";
    c.layers = 1;
    return c;
}

/// Logits after running `prefix` then `rest` as two calls on one cache.
template <class B>
std::vector<float> two_step(B& b, const std::vector<token_id>& prefix, const std::vector<token_id>& rest, bool pre) {
    model::scratch_kv kv(b.geometry(), static_cast<std::int64_t>(prefix.size() + rest.size()));
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    b.forward(kv.view(), prefix, pre, logits);
    kv.commit(static_cast<std::int64_t>(prefix.size()));
    b.forward(kv.view(), rest, pre, logits);
    return logits;
}
}  // namespace

TEST_CASE("transformer: prefill over a cached prefix equals prefilling everything") {
    backend::cpu_backend b(model::model_config::tiny(), 11);
    std::mt19937_64 rng(1);
    for (int trial = 0; trial < 5; ++trial) {
        auto prefix = test::random_tokens(rng, 10 + rng() % 60, b.vocab());
        auto rest = test::random_tokens(rng, 1 + rng() % 20, b.vocab());
        auto all = prefix;
        all.insert(all.end(), rest.begin(), rest.end());
        for (bool pre : {true, false}) {
            CAPTURE(pre);
            CHECK(test::rel_error(two_step(b, prefix, rest, pre), test::reference_logits(b, all, pre)) < 1e-5);
        }
    }
}

TEST_CASE("transformer: keys before or after RoPE give the same logits when positions agree") {
    backend::cpu_backend b(model::model_config::tiny(), 5);
    std::mt19937_64 rng(2);
    auto toks = test::random_tokens(rng, 50, b.vocab());
    CHECK(test::rel_error(test::reference_logits(b, toks, true), test::reference_logits(b, toks, false)) < 1e-5);
}

TEST_CASE("transformer: vectorised and scalar loops, one thread and many, agree") {
    const auto c = model::model_config::tiny();
    backend::basic_cpu_backend<model::scalar_ops> scalar(c, 3, {1});
    backend::cpu_backend simd1(c, 3, {1});
    backend::cpu_backend simd4(c, 3, {4});
    std::mt19937_64 rng(4);
    auto toks = test::random_tokens(rng, 40, c.vocab);
    const auto ref = test::reference_logits(scalar, toks);
    CHECK(test::rel_error(test::reference_logits(simd1, toks), ref) < 1e-4);
    CHECK(test::reference_logits(simd1, toks) == test::reference_logits(simd4, toks));  // bit-identical
}

TEST_CASE("transformer: logits are not degenerate (the tests would be blind otherwise)") {
    backend::cpu_backend b(model::model_config::tiny(), 9);
    std::mt19937_64 rng(5);
    auto a = test::reference_logits(b, test::random_tokens(rng, 20, b.vocab()));
    auto c = test::reference_logits(b, test::random_tokens(rng, 20, b.vocab()));
    const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
    CHECK(*hi - *lo > 1.0f);
    CHECK(test::rel_error(a, c) > 1e-2);
}

TEST_CASE("decoupled RoPE: a truncated cache equals recomputing the truncated text at new positions") {
    // Exact for one layer: layer-0 K (before RoPE) and V depend on the token alone. With more
    // layers, kept tokens' KV still reflects the dropped context (the paper's approximation;
    // see the engine tests and docs/design.md).
    backend::cpu_backend b(one_layer(), 21);
    std::mt19937_64 rng(6);
    for (int trial = 0; trial < 5; ++trial) {
        auto history = test::random_tokens(rng, 40 + rng() % 40, b.vocab());
        auto next = test::random_tokens(rng, 1 + rng() % 10, b.vocab());
        const auto drop = static_cast<std::int64_t>(history.size() / 2);
        model::scratch_kv kv(b.geometry(), static_cast<std::int64_t>(history.size() + next.size()));
        std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
        b.forward(kv.view(), history, true, logits);
        kv.commit(static_cast<std::int64_t>(history.size()));
        kv.drop_front(drop);
        b.forward(kv.view(), next, true, logits);

        std::vector<token_id> kept(history.begin() + drop, history.end());
        kept.insert(kept.end(), next.begin(), next.end());
        CHECK(test::rel_error(logits, test::reference_logits(b, kept)) < 1e-4);
    }
}

TEST_CASE("coupled RoPE: reusing a truncated post-RoPE cache naively gives different logits") {
    backend::cpu_backend b(one_layer(), 21);
    std::mt19937_64 rng(7);
    auto history = test::random_tokens(rng, 64, b.vocab());
    auto next = test::random_tokens(rng, 4, b.vocab());
    model::scratch_kv kv(b.geometry(), 68);
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    b.forward(kv.view(), history, false, logits);
    kv.commit(64);
    kv.drop_front(32);  // keys still carry positions 32..63, but now sit at 0..31
    b.forward(kv.view(), next, false, logits);
    std::vector<token_id> kept(history.begin() + 32, history.end());
    kept.insert(kept.end(), next.begin(), next.end());
    CHECK(test::rel_error(logits, test::reference_logits(b, kept, false)) > 1e-2);
}

TEST_CASE("transformer: out-of-vocabulary tokens and overlong inputs are clear errors") {
    backend::cpu_backend b(model::model_config::tiny(), 1);
    model::scratch_kv kv(b.geometry(), 300);
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    const std::vector<token_id> bad{1, 512};
    CHECK_THROWS_WITH_AS(b.forward(kv.view(), bad, true, logits), doctest::Contains("outside the vocabulary"),
                         input_error);
    const std::vector<token_id> neg{-1};
    CHECK_THROWS_AS(b.forward(kv.view(), neg, true, logits), input_error);
    const std::vector<token_id> longer(257, 1);
    CHECK_THROWS_WITH_AS(b.forward(kv.view(), longer, true, logits), doctest::Contains("context window"),
                         input_error);
}
