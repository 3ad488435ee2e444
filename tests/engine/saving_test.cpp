// Asynchronous saving and next-job pre-loading: no save is lost, a saved copy equals the
// device's KV, saving changes no decision and no logit, and a pre-load that its job never
// uses (the session was moved first) still leaves correct KV behind.
#include <future>
#include <numeric>
#include <thread>

#include "../support.hpp"

using namespace cachedattn;

namespace {

struct turn_record {
    std::uint64_t session;
    std::optional<std::size_t> hit_tier;
    std::vector<token_id> generated;
    std::vector<float> logits;
    bool preloaded_ahead;
    std::size_t bytes_saved;
};

template <class H>
typename H::config small_tiers(const backend::cpu_backend& b, const std::filesystem::path& dir) {
    const std::size_t block = b.geometry().block_bytes();
    // Room for a few sessions per tier: every turn moves someone.
    return test::capacities<H>(10 * block, 12 * block, 64 * block, dir);
}

/// Runs `sessions` x `rounds` queued turns with saving policy `Save`; checks every turn
/// against the from-scratch reference and, after the engine has synchronized, that every
/// device-resident session's saved copy (under a saving policy) equals its device KV.
template <class Save, class H>
std::vector<turn_record> run_queue(H& h, backend::cpu_backend& b, int sessions, int rounds, std::uint64_t seed,
                                   engine_config cfg = {}) {
    cfg.record_logits = true;
    static_assert(std::is_same_v<typename H::save_type, Save>);
    engine<H, backend::cpu_backend> eng(h, b, cfg);
    std::mt19937_64 rng(seed);
    std::map<std::uint64_t, std::vector<std::vector<token_id>>> inputs;
    for (int r = 0; r < rounds; ++r)
        for (int s = 1; s <= sessions; ++s) {
            auto in = test::random_tokens(rng, 5 + rng() % 20, b.vocab());
            inputs[static_cast<std::uint64_t>(s)].push_back(in);
            eng.submit({session_id{static_cast<std::uint64_t>(s)}, in, 3});
        }
    std::vector<turn_record> out;
    std::map<std::uint64_t, std::vector<token_id>> hist;
    std::map<std::uint64_t, std::size_t> turn;
    while (eng.queued() > 0) {
        for (auto& jr : eng.step()) {
            auto& hs = hist[jr.session.value];
            const auto& in = inputs[jr.session.value][turn[jr.session.value]++];
            hs.insert(hs.end(), in.begin(), in.end());
            CHECK(test::rel_error(jr.result.first_logits, test::reference_logits(b, hs)) < 1e-4);
            hs.insert(hs.end(), jr.result.generated.begin(), jr.result.generated.end());
            out.push_back({jr.session.value, jr.result.metrics.hit_tier, jr.result.generated,
                           jr.result.first_logits, jr.result.metrics.preloaded_ahead, jr.result.metrics.bytes_saved});
            h.check_invariants();
        }
    }
    eng.synchronize();
    for (int s = 1; s <= sessions; ++s) {
        const session_id id{static_cast<std::uint64_t>(s)};
        if (h.locate(id) != std::optional<std::size_t>(0)) continue;
        const auto copy = h.copies().peek(id);
        if constexpr (Save::mode == saving::save_mode::write_back) {
            CHECK(copy == nullptr);
        } else {
            INFO("session " << s);
            REQUIRE(copy != nullptr);
            const kv_entry dev = h.device().read(id);
            CHECK(copy->meta.tokens == dev.meta.tokens);
            CHECK(copy->meta.first_offset == dev.meta.first_offset);
            CHECK(copy->meta.rope_base == dev.meta.rope_base);
            REQUIRE(copy->data.size() == dev.data.size());
            // Only the stored tokens' slots are defined (a block's tail beyond them is not).
            const auto& g = h.geometry();
            std::size_t differing = 0;
            for (std::size_t t = 0; t < dev.meta.tokens.size(); ++t)
                for (int l = 0; l < g.layers; ++l)
                    for (int kv = 0; kv < 2; ++kv)
                        for (int hd = 0; hd < g.kv_heads; ++hd) {
                            const std::size_t slot = dev.meta.first_offset + t;
                            const std::size_t blk = slot / static_cast<std::size_t>(g.block_tokens);
                            const std::size_t in = slot % static_cast<std::size_t>(g.block_tokens);
                            const std::size_t off =
                                blk * g.block_bytes() +
                                ((((static_cast<std::size_t>(l) * 2 + static_cast<std::size_t>(kv)) * g.kv_heads +
                                   static_cast<std::size_t>(hd)) *
                                      static_cast<std::size_t>(g.block_tokens) +
                                  in) *
                                 static_cast<std::size_t>(g.head_dim)) *
                                    sizeof(float);
                            differing += std::memcmp(copy->data.data() + off, dev.data.data() + off,
                                                     static_cast<std::size_t>(g.head_dim) * sizeof(float)) != 0;
                        }
            CHECK(differing == 0);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("saving: async and sync saves equal the device KV, change no decision, and serve demotions") {
    using H1 = test::stack3<eviction::lru, posenc::decoupled_rope, truncation::drop_oldest, saving::write_back>;
    using H2 = test::stack3<eviction::lru, posenc::decoupled_rope, truncation::drop_oldest, saving::async_save>;
    using H3 = test::stack3<eviction::lru, posenc::decoupled_rope, truncation::drop_oldest, saving::sync_save>;
    backend::cpu_backend b(model::model_config::tiny(), 7);
    const int sessions = 6, rounds = test::quick() ? 3 : 5;
    test::temp_dir d1("save-wb"), d2("save-async"), d3("save-sync");
    H1 h1(small_tiers<H1>(b, d1.path()), b.geometry(), b.weights_id());
    H2 h2(small_tiers<H2>(b, d2.path()), b.geometry(), b.weights_id());
    H3 h3(small_tiers<H3>(b, d3.path()), b.geometry(), b.weights_id());
    const auto wb = run_queue<saving::write_back>(h1, b, sessions, rounds, 11);
    const auto as = run_queue<saving::async_save>(h2, b, sessions, rounds, 11);
    const auto sy = run_queue<saving::sync_save>(h3, b, sessions, rounds, 11);
    REQUIRE(wb.size() == as.size());
    REQUIRE(wb.size() == sy.size());
    std::size_t hits = 0, saved_wb = 0, saved_as = 0, saved_sy = 0;
    for (std::size_t i = 0; i < wb.size(); ++i) {
        CHECK(wb[i].session == as[i].session);
        CHECK(wb[i].hit_tier == as[i].hit_tier);
        CHECK(wb[i].hit_tier == sy[i].hit_tier);
        CHECK(wb[i].generated == as[i].generated);
        CHECK(wb[i].generated == sy[i].generated);
        CHECK(wb[i].logits == as[i].logits);  // bit for bit: the same KV, whichever path it took
        CHECK(wb[i].logits == sy[i].logits);
        hits += wb[i].hit_tier.has_value();
        saved_wb += wb[i].bytes_saved;
        saved_as += as[i].bytes_saved;
        saved_sy += sy[i].bytes_saved;
    }
    CHECK(hits > 0);
    CHECK(saved_wb == 0);
    CHECK(saved_as > 0);
    CHECK(saved_as == saved_sy);  // the same bytes leave the device, only when differs
    // The same tiers, the same moves; but with a saved copy, demotions skip the device read.
    CHECK(h1.stats().demotions == h2.stats().demotions);
    CHECK(h1.stats().demotions[0] > 0);
    CHECK(h1.stats().saved_demotions == 0);
    CHECK(h2.stats().saved_demotions > 0);
    CHECK(h3.stats().saved_demotions == h2.stats().saved_demotions);
    MESSAGE("device demotions " << h1.stats().demotions[0] << ", served by a saved copy (async) "
                                << h2.stats().saved_demotions);
}

TEST_CASE("saving: only the new tokens leave the device once a saved copy exists") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 3);
    test::temp_dir dir("save-new");
    H h(test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b);
    const std::vector<token_id> in(20, 5);
    const auto t1 = eng.run_turn(session_id{1}, in, 4);
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    CHECK(t1.metrics.bytes_saved == (20 + 3) * per_token);  // the last token is never fed back
    const auto t2 = eng.run_turn(session_id{1}, in, 4);
    CHECK(t2.metrics.hit_tier == std::optional<std::size_t>(0));
    CHECK(t2.metrics.bytes_saved == (1 + 20 + 3) * per_token);  // the previous last token, then new
    // Without the previous copy (discarded), the whole session is saved again.
    eng.synchronize();
    h.copies().discard(session_id{1});
    const auto t3 = eng.run_turn(session_id{1}, in, 4);
    CHECK(t3.metrics.bytes_saved == h.device().meta(session_id{1}).tokens.size() * per_token);
}

TEST_CASE("pre-loading: the next job's KV starts loading while the current job runs") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 5);
    const std::size_t block = b.geometry().block_bytes();
    for (bool ahead : {true, false}) {
        test::temp_dir dir("preload-next");
        // Two sessions fit the device tier, three do not: each turn's session is in DRAM.
        H h(test::capacities<H>(6 * block, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());
        engine eng(h, b, {.record_logits = true, .preload_next_job = ahead});
        std::mt19937_64 rng(1);
        std::map<std::uint64_t, std::vector<std::vector<token_id>>> inputs;
        for (int r = 0; r < 6; ++r)
            for (std::uint64_t s = 1; s <= 3; ++s) {
                inputs[s].push_back(test::random_tokens(rng, 8, b.vocab()));
                eng.submit({session_id{s}, inputs[s].back(), 3});
            }
        std::map<std::uint64_t, std::vector<token_id>> hist;
        std::map<std::uint64_t, std::size_t> turn;
        std::size_t preloaded = 0, lower_hits = 0;
        for (const auto& jr : eng.drain()) {
            auto& hs = hist[jr.session.value];
            const auto& in = inputs[jr.session.value][turn[jr.session.value]++];
            hs.insert(hs.end(), in.begin(), in.end());
            CHECK(test::rel_error(jr.result.first_logits, test::reference_logits(b, hs)) < 1e-4);
            hs.insert(hs.end(), jr.result.generated.begin(), jr.result.generated.end());
            const auto& m = jr.result.metrics;
            preloaded += m.preloaded_ahead;
            lower_hits += m.hit_tier.value_or(0) > 0;
            if (m.preloaded_ahead) CHECK(m.hit_tier.value_or(0) > 0);
            h.check_invariants();
        }
        if (ahead) CHECK(preloaded > 0);
        else CHECK(preloaded == 0);
        MESSAGE("preload_next_job=" << ahead << ": " << preloaded << " of " << lower_hits
                                    << " hits from DRAM/SSD were loaded during the previous job");
    }
}

TEST_CASE("pre-loading: a pre-load whose session is moved before its turn completes, and the turn stays exact") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 9);
    test::temp_dir dir("preload-moved");
    const std::size_t block = b.geometry().block_bytes();
    H h(test::capacities<H>(3 * block, 1 << 20, 1 << 20, dir.path()), b.geometry(), b.weights_id());
    engine eng(h, b, {.record_logits = true, .preload_buffer_layers = 0});
    const std::vector<token_id> a{1, 2, 3, 4, 5, 6};
    const std::vector<token_id> big(40, 7), small{9, 10, 11, 12, 13};
    eng.run_turn(session_id{1}, a, 2);
    eng.run_turn(session_id{2}, big, 2);  // 3 blocks: evicts 1 to DRAM
    REQUIRE(h.locate(session_id{1}) == std::optional<std::size_t>(1));
    eng.submit({session_id{3}, small, 2});
    eng.submit({session_id{1}, a, 2});
    auto r = eng.step();  // runs 3's turn (evicting 2) and starts loading 1 into the device tier
    REQUIRE(r.size() == 1);
    CHECK(h.locate(session_id{1}) == std::optional<std::size_t>(0));
    h.demote(session_id{1});  // moved before its turn: the load must finish first, then it goes down
    CHECK(h.locate(session_id{1}) == std::optional<std::size_t>(1));
    h.check_invariants();
    r = eng.step();
    REQUIRE(r.size() == 1);
    CHECK_FALSE(r[0].result.metrics.preloaded_ahead);
    CHECK(r[0].result.metrics.hit_tier == std::optional<std::size_t>(1));
    const auto& full = eng.history(session_id{1});
    std::vector<token_id> hist(full.begin(), full.begin() + 8);
    hist.insert(hist.end(), a.begin(), a.end());
    CHECK(test::rel_error(r[0].result.first_logits, test::reference_logits(b, hist)) < 1e-4);
    // And the same once more with the pre-load used.
    h.demote(session_id{1});
    eng.submit({session_id{3}, small, 2});
    eng.submit({session_id{1}, a, 2});
    eng.step();
    r = eng.step();
    CHECK(r[0].result.metrics.preloaded_ahead);
    hist.assign(full.begin(), full.begin() + 16);
    hist.insert(hist.end(), a.begin(), a.end());
    CHECK(test::rel_error(r[0].result.first_logits, test::reference_logits(b, hist)) < 1e-4);
}

TEST_CASE("emulated link: copies over the device link take bytes / bandwidth") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 1);
    test::temp_dir dir("link");
    auto c = test::capacities<H>(1 << 20, 1 << 20, 1 << 20, dir.path());
    const std::size_t block = b.geometry().block_bytes();
    std::get<0>(c.tiers).link_bytes_per_s = static_cast<double>(block) * 100;  // 10 ms per block
    H h(c, b.geometry(), b.weights_id());
    kv_entry e;
    e.meta.session = session_id{1};
    e.meta.tokens.assign(static_cast<std::size_t>(b.geometry().block_tokens) * 3, 1);  // 3 blocks
    e.data.assign(3 * block, std::byte{1});
    const auto t0 = std::chrono::steady_clock::now();
    h.device().put(std::move(e));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(s >= 0.029);
    test::temp_dir other("link-bad");
    auto bad = test::capacities<H>(1 << 20, 1 << 20, 1 << 20, other.path());
    std::get<0>(bad.tiers).link_bytes_per_s = -1;
    CHECK_THROWS_AS(H(bad, b.geometry(), b.weights_id()), config_error);
}

namespace {

/// A fence the test opens by hand: the device's write of a layer, still running.
class gate_fence final : public device_fence {
public:
    void wait() const override { done_.wait(); }
    void open() { p_.set_value(); }

private:
    std::promise<void> p_;
    std::shared_future<void> done_ = p_.get_future().share();
};

}  // namespace

TEST_CASE("asynchronous saving copies a layer only once the fence of its write completes") {
    // The cuda backend hands the saver an event for each layer's new K/V and goes on queueing
    // while the GPU writes them: the save thread must wait for the event, not copy at once.
    const model_geometry g = model::model_config::tiny().geometry();
    tier::device_tier dev({.capacity_bytes = 16 * g.block_bytes()}, {g, 1});
    saved_copies copies;
    saving::async_save::writer<tier::device_tier> w(saving::save_context<tier::device_tier>{dev, copies, g});
    const session_id s{1};
    const std::int64_t n = 20;
    dev.create(s);
    dev.reserve(s, static_cast<std::size_t>(n));
    const auto view = dev.view(s);
    auto fill = [&](float x) {
        for (int l = 0; l < g.layers; ++l)
            for (int h = 0; h < g.kv_heads; ++h)
                for (std::int64_t t = 0; t < n; ++t) {
                    std::fill_n(view.k(l, h, t), g.head_dim, x);
                    std::fill_n(view.v(l, h, t), g.head_dim, x);
                }
    };
    fill(1.0f);  // what the blocks held before
    turn_metrics m;
    w.begin(s, 0, nullptr, m);
    auto written = std::make_shared<gate_fence>();
    w.layer_done(0, static_cast<std::size_t>(n), m, written);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a saver that did not wait has copied by now
    fill(2.0f);  // the device writes the layer
    written->open();
    dev.commit(s, std::vector<token_id>(static_cast<std::size_t>(n), 3));
    w.end(m);
    w.synchronize();
    const auto copy = copies.peek(s);
    REQUIRE(copy != nullptr);
    // The copy has the device's layout with the session's blocks in order.
    std::vector<std::int32_t> in_order(dev.block_ids(s).size());
    std::iota(in_order.begin(), in_order.end(), 0);
    const auto saved = paged_kv_view<float>::over(const_cast<std::byte*>(copy->data.data()), in_order, g, 0, n, false);
    std::size_t stale = 0;
    for (int h = 0; h < g.kv_heads; ++h)
        for (std::int64_t t = 0; t < n; ++t)
            for (int d = 0; d < g.head_dim; ++d) stale += (saved.k(0, h, t)[d] != 2.0f) + (saved.v(0, h, t)[d] != 2.0f);
    CHECK(stale == 0);
}
