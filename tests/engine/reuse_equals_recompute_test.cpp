// The central property (DESIGN.md invariant 1): logits of a turn that reuses stored KV, from
// any tier, equal those of recomputing the whole history from scratch.
#include "../support.hpp"

using namespace cachedattn;

namespace {

struct conversation {
    session_id id;
    int turns_left = 0;
};

/// Runs `conversations` random conversations, `live` at a time, interleaved at random, and
/// checks every turn against the from-scratch reference. Returns hits per tier.
template <class H>
std::array<std::size_t, 4> run_property(H& h, backend::cpu_backend& b, int conversations, int live,
                                        std::uint64_t seed, double tol = 1e-4) {
    engine eng(h, b, {.retain_across_turns = true, .record_logits = true});
    std::mt19937_64 rng(seed);
    std::array<std::size_t, 4> hits{};
    std::vector<conversation> active;
    int started = 0;
    while (started < conversations || !active.empty()) {
        while (static_cast<int>(active.size()) < live && started < conversations)
            active.push_back({session_id{static_cast<std::uint64_t>(++started)}, 3 + static_cast<int>(rng() % 3)});
        const std::size_t pick = rng() % active.size();
        conversation& c = active[pick];
        const auto input = test::random_tokens(rng, 4 + rng() % 17, b.vocab());
        const int max_new = 2 + static_cast<int>(rng() % 6);

        std::vector<token_id> full = eng.history(c.id);
        full.insert(full.end(), input.begin(), input.end());
        const auto r = eng.run_turn(c.id, input, max_new);
        REQUIRE_FALSE(r.metrics.truncated);
        const auto ref = test::reference_logits(b, full, H::posenc_type::keys_pre_rope);
        const double err = test::rel_error(r.first_logits, ref);
        CAPTURE(c.id.value);
        CAPTURE(r.metrics.reused_tokens);
        CHECK(err < tol);
        CHECK(r.metrics.reused_tokens + r.metrics.recomputed_tokens + r.metrics.new_tokens ==
              static_cast<std::int64_t>(full.size()));
        if (r.metrics.hit_tier && *r.metrics.hit_tier > 0)
            CHECK(r.metrics.bytes_loaded == h.geometry().blocks_for(static_cast<std::size_t>(r.metrics.reused_tokens)) *
                                                h.geometry().block_bytes());
        if (r.metrics.hit_tier) ++hits[*r.metrics.hit_tier];
        else ++hits[3];
        for (std::size_t t = 0; t < H::tier_count; ++t) REQUIRE(h.used_bytes(t) <= h.capacity_bytes(t));
        h.check_invariants();
        if (--c.turns_left == 0) {
            eng.end_session(c.id);
            active.erase(active.begin() + static_cast<std::ptrdiff_t>(pick));
        }
    }
    return hits;
}

template <class H>
void check_stack(std::uint64_t seed) {
    backend::cpu_backend b(model::model_config::tiny(), seed);
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("reuse");
    // Device and DRAM: ~2-3 live sessions each (a session reaches ~140 tokens); SSD: the rest.
    // Eight sessions live at a time, so every tier serves hits.
    H h(test::capacities<H>(160 * per_token, 160 * per_token, 4000 * per_token, dir.path()), b.geometry(),
        b.weights_id());
    const auto hits = run_property(h, b, test::quick() ? 16 : 50, 8, seed);
    MESSAGE("hits device/host/file, misses: " << hits[0] << " " << hits[1] << " " << hits[2] << " " << hits[3]);
    CHECK(hits[0] > 0);
    CHECK(hits[1] > 0);
    CHECK(hits[2] > 0);
}

}  // namespace

TEST_CASE("reuse equals recompute: 50 conversations, lru, decoupled RoPE, hits from every tier") {
    check_stack<test::stack3<eviction::lru, posenc::decoupled_rope>>(101);
}

TEST_CASE("reuse equals recompute: 50 conversations, fifo, coupled RoPE, hits from every tier") {
    check_stack<test::stack3<eviction::fifo, posenc::coupled_rope>>(202);
}

TEST_CASE("reuse equals recompute: a device-only hierarchy") {
    using H = kv_hierarchy<tiers<tier::device_tier>, eviction::lru, prefetch::none, truncation::drop_oldest,
                           posenc::decoupled_rope>;
    backend::cpu_backend b(model::model_config::tiny(), 303);
    H::config c;
    std::get<0>(c.tiers).capacity_bytes = 400 * b.geometry().kv_bytes_per_token();
    H h(c, b.geometry(), b.weights_id());
    const auto hits = run_property(h, b, 12, 4, 303);
    CHECK(hits[0] > 0);
}

TEST_CASE("recompute-every-turn baseline: nothing is reused, the answers are the same") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 404);
    test::temp_dir dir("re");
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    H keep(test::capacities<H>(1000 * pt, 1000 * pt, 1000 * pt, dir.path() / "a"), b.geometry(), b.weights_id());
    H drop(test::capacities<H>(1000 * pt, 1000 * pt, 1000 * pt, dir.path() / "b"), b.geometry(), b.weights_id());
    engine cached(keep, b, {.retain_across_turns = true, .record_logits = true});
    engine re(drop, b, {.retain_across_turns = false, .record_logits = true});
    std::mt19937_64 rng(9);
    for (int turn = 0; turn < 4; ++turn) {
        const auto input = test::random_tokens(rng, 10, b.vocab());
        auto a = cached.run_turn(session_id{1}, input, 5);
        auto r = re.run_turn(session_id{1}, input, 5);
        CHECK(a.generated == r.generated);
        CHECK(test::rel_error(a.first_logits, r.first_logits) < 1e-4);
        CHECK(r.metrics.reused_tokens == 0);
        CHECK_FALSE(r.metrics.hit_tier.has_value());
        if (turn > 0) CHECK(a.metrics.reused_tokens > 0);
    }
    CHECK(drop.locate(session_id{1}) == std::nullopt);
}

// ---------------------------------------------------------------- truncation
namespace {
model::model_config short_window(int layers) {
    auto c = model::model_config::tiny();
    c.name = "tiny-window96";
    c.layers = layers;
    c.context_window = 96;
    return c;
}

/// Runs turns on session 1 until one truncates; pushes the session down to the file tier first
/// by running other sessions in between. Returns the truncating turn and the inputs it saw.
template <class H>
struct truncation_run {
    turn_result result;
    std::vector<token_id> kept_history;  // history after truncation, before this turn's input
    std::vector<token_id> input;
    std::vector<token_id> history_before;  // history before truncation
};

template <class H>
truncation_run<H> run_until_truncation(engine<H, backend::cpu_backend>& eng, std::mt19937_64& rng, int vocab) {
    for (int turn = 0; turn < 20; ++turn) {
        // Other sessions push session 1 out of the device tier and DRAM.
        for (std::uint64_t other = 2; other <= 7; ++other)
            eng.run_turn(session_id{other + 10u * static_cast<std::uint64_t>(turn)}, test::random_tokens(rng, 30, vocab), 4);
        const auto input = test::random_tokens(rng, 20, vocab);
        const auto before = eng.history(session_id{1});
        auto r = eng.run_turn(session_id{1}, input, 6);
        if (r.metrics.truncated) {
            const auto after = eng.history(session_id{1});
            const std::size_t kept = after.size() - input.size() - r.generated.size();
            return {r, std::vector<token_id>(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(kept)), input,
                    before};
        }
    }
    FAIL("no turn truncated");
    return {};
}
}  // namespace

TEST_CASE("truncation, decoupled RoPE, one layer: reusing the kept KV equals recomputing the kept text") {
    using H = test::stack3<eviction::lru, posenc::decoupled_rope>;
    backend::cpu_backend b(short_window(1), 7);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("trunc-dec");
    H h(test::capacities<H>(150 * pt, 150 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(1);
    auto run = run_until_truncation(eng, rng, b.vocab());
    const auto& m = run.result.metrics;
    CHECK(m.hit_tier == 2u);  // came back from SSD
    CHECK(m.reused_tokens > 0);
    CHECK_FALSE(m.invalidated);
    auto text = run.kept_history;
    text.insert(text.end(), run.input.begin(), run.input.end());
    CHECK(test::rel_error(run.result.first_logits, test::reference_logits(b, text)) < 1e-4);
}

TEST_CASE("truncation, decoupled RoPE, several layers: the kept KV is reused at its new positions") {
    // Deeper layers' KV of the kept tokens still reflects the dropped context, so the result is
    // the paper's approximation, not a recompute: check it equals running the same model over
    // the stored (dropped-then-rebased) cache, and that it stays near the recompute.
    using H = test::stack3<eviction::lru, posenc::decoupled_rope>;
    backend::cpu_backend b(short_window(3), 8);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("trunc-dec3");
    H h(test::capacities<H>(150 * pt, 150 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(2);
    auto run = run_until_truncation(eng, rng, b.vocab());
    CHECK(run.result.metrics.reused_tokens > 0);

    // Reference: the full old history's KV (its last generated token was never fed), drop the
    // same oldest tokens, then prefill the kept-but-uncached tail and the new input.
    const auto& old = run.history_before;
    const std::size_t dropped = old.size() - run.kept_history.size();
    model::scratch_kv kv(b.geometry(), static_cast<std::int64_t>(old.size() + run.input.size()));
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    const std::vector<token_id> cached(old.begin(), old.end() - 1);
    b.forward(kv.view(), cached, true, logits);
    kv.commit(static_cast<std::int64_t>(cached.size()));
    kv.drop_front(static_cast<std::int64_t>(dropped));
    std::vector<token_id> rest{old.back()};
    rest.insert(rest.end(), run.input.begin(), run.input.end());
    b.forward(kv.view(), rest, true, logits);
    CHECK(test::rel_error(run.result.first_logits, logits) < 1e-4);

    auto text = run.kept_history;
    text.insert(text.end(), run.input.begin(), run.input.end());
    const double approx = test::rel_error(run.result.first_logits, test::reference_logits(b, text));
    // "Near": nearer the recompute than the logits of any of five other texts of the same length
    // ending in the same input (what a wrong cache would give: about 1 with random weights).
    double unrelated = 1e30;
    for (int k = 0; k < 5; ++k) {
        auto other = test::random_tokens(rng, text.size() - run.input.size(), b.vocab());
        other.insert(other.end(), run.input.begin(), run.input.end());
        unrelated = std::min(unrelated, test::rel_error(test::reference_logits(b, other), test::reference_logits(b, text)));
    }
    MESSAGE("decoupled truncated reuse vs recompute, 3 layers: relative logit error " << approx
                                                                                        << " (nearest other text: " << unrelated << ")");
    CHECK(approx < unrelated);
}

TEST_CASE("truncation, coupled RoPE: the stale cache is detected and the kept text recomputed") {
    using H = test::stack3<eviction::lru, posenc::coupled_rope>;
    backend::cpu_backend b(short_window(3), 9);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("trunc-cpl");
    H h(test::capacities<H>(150 * pt, 150 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(3);
    auto run = run_until_truncation(eng, rng, b.vocab());
    const auto& m = run.result.metrics;
    CHECK(m.invalidated);
    CHECK(m.reused_tokens == 0);
    CHECK_FALSE(m.hit_tier.has_value());
    CHECK(m.recomputed_tokens == static_cast<std::int64_t>(run.kept_history.size()));
    auto text = run.kept_history;
    text.insert(text.end(), run.input.begin(), run.input.end());
    CHECK(test::rel_error(run.result.first_logits, test::reference_logits(b, text, false)) < 1e-4);
}

TEST_CASE("truncation, recompute policy (TT): kept text is recomputed even under decoupled RoPE") {
    using H = test::stack3<eviction::lru, posenc::decoupled_rope, truncation::recompute>;
    backend::cpu_backend b(short_window(3), 10);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("trunc-tt");
    H h(test::capacities<H>(150 * pt, 150 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(4);
    auto run = run_until_truncation(eng, rng, b.vocab());
    CHECK(run.result.metrics.reused_tokens == 0);
    auto text = run.kept_history;
    text.insert(text.end(), run.input.begin(), run.input.end());
    CHECK(test::rel_error(run.result.first_logits, test::reference_logits(b, text)) < 1e-4);
}

// ---------------------------------------------------------------- isolation and damage
TEST_CASE("a session never receives another session's KV, even when files are swapped on disk") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 12);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("isolation");
    // Device and DRAM hold one session each, so the third turn pushes session 1 to SSD.
    H h(test::capacities<H>(60 * pt, 60 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(5);
    const auto in1 = test::random_tokens(rng, 30, b.vocab());
    const auto in2 = test::random_tokens(rng, 30, b.vocab());
    eng.run_turn(session_id{1}, in1, 4);
    eng.run_turn(session_id{2}, in2, 4);
    eng.run_turn(session_id{3}, in2, 4);
    eng.run_turn(session_id{4}, in1, 4);
    REQUIRE(h.locate(session_id{1}) == 2u);
    REQUIRE(h.locate(session_id{2}) == 2u);
    auto& ssd = h.tier<2>();
    ssd.flush();
    std::filesystem::copy_file(ssd.path_of(session_id{2}), ssd.path_of(session_id{1}),
                               std::filesystem::copy_options::overwrite_existing);
    const auto next = test::random_tokens(rng, 5, b.vocab());
    auto full = eng.history(session_id{1});
    full.insert(full.end(), next.begin(), next.end());
    auto r = eng.run_turn(session_id{1}, next, 3);
    CHECK(r.metrics.damaged);
    CHECK_FALSE(r.metrics.hit_tier.has_value());
    CHECK(r.metrics.reused_tokens == 0);
    CHECK(test::rel_error(r.first_logits, test::reference_logits(b, full)) < 1e-4);
    CHECK(h.stats().damaged == 1);
}

// ---------------------------------------------------------------- more encodings and truncations
namespace {
template <class PosEnc, class Trunc>
void check_exact_truncation(std::uint64_t seed, bool expect_reuse) {
    using H = test::stack3<eviction::lru, PosEnc, Trunc>;
    backend::cpu_backend b(short_window(1), seed);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("trunc-exact");
    H h(test::capacities<H>(150 * pt, 150 * pt, 10000 * pt, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true});
    std::mt19937_64 rng(seed);
    auto run = run_until_truncation(eng, rng, b.vocab());
    const auto& m = run.result.metrics;
    CHECK((m.reused_tokens > 0) == expect_reuse);
    CHECK(m.invalidated != expect_reuse);
    if constexpr (std::is_same_v<Trunc, truncation::attention_sink>) {
        // The first tokens of the conversation survive every truncation.
        REQUIRE(run.kept_history.size() >= 4);
        CHECK(std::equal(run.kept_history.begin(), run.kept_history.begin() + 4, run.history_before.begin()));
    }
    auto text = run.kept_history;
    text.insert(text.end(), run.input.begin(), run.input.end());
    CHECK(test::rel_error(run.result.first_logits, test::reference_logits(b, text, PosEnc::keys_pre_rope)) < 1e-4);
}
}  // namespace

TEST_CASE("truncation, re-rotated RoPE, one layer: rotating stored keys by -shift equals recomputing") {
    check_exact_truncation<posenc::rerotate_rope, truncation::drop_oldest>(31, true);
}

TEST_CASE("truncation, attention sinks + decoupled RoPE, one layer: sinks and tail reused exactly") {
    check_exact_truncation<posenc::decoupled_rope, truncation::attention_sink>(32, true);
}

TEST_CASE("truncation, attention sinks + re-rotated RoPE, one layer: only keys after the gap rotate") {
    check_exact_truncation<posenc::rerotate_rope, truncation::attention_sink>(33, true);
}

TEST_CASE("truncation, attention sinks + coupled RoPE: the gap makes the cache stale, recomputed") {
    check_exact_truncation<posenc::coupled_rope, truncation::attention_sink>(34, false);
}

TEST_CASE("reuse equals recompute without truncation: re-rotated RoPE and attention-sink stacks") {
    check_stack<test::stack3<eviction::lru, posenc::rerotate_rope>>(505);
    check_stack<test::stack3<eviction::scheduler_aware, posenc::decoupled_rope, truncation::attention_sink>>(606);
}
