// Layer-wise pre-loading's ordering: no layer computes before its KV is resident, and the
// loader never runs more than 1 + read_buffer layers ahead of compute.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "../support.hpp"

using namespace cachedattn;

TEST_CASE("layer_pipeline: compute waits for loads, loads wait for buffer room") {
    for (int buffer : {0, 1, 3, 40}) {
        CAPTURE(buffer);
        constexpr int layers = 40;
        layer_pipeline pipe(layers, buffer);
        std::atomic<int> started{-1};
        std::atomic<bool> loaded_too_early{false}, computed_too_early{false};
        std::atomic<int> loaded{0};
        std::thread loader([&] {
            for (int l = 0; l < layers; ++l) {
                if (!pipe.wait_for_slot(l)) return;  // never aborted here: the checks below would fail
                if (l > started.load() + 1 + buffer) loaded_too_early = true;
                std::this_thread::yield();
                loaded = l + 1;
                pipe.loaded(l);
            }
        });
        for (int l = 0; l < layers; ++l) {
            started = l;
            pipe.begin_layer(l);
            if (loaded.load() <= l) computed_too_early = true;
        }
        loader.join();
        CHECK_FALSE(loaded_too_early.load());
        CHECK_FALSE(computed_too_early.load());
        CHECK(pipe.loaded_layers() == layers);
    }
}

TEST_CASE("layer_pipeline: abort releases a loader waiting for room, within a time limit") {
    // Shared with the loader: if abort() were broken the thread would outlive this test.
    struct state {
        layer_pipeline pipe{8, 0};
        std::atomic<int> done{0};
        std::atomic<bool> refused{false};
    };
    auto st = std::make_shared<state>();
    std::promise<void> finished;
    auto fut = finished.get_future();
    std::thread loader([st, p = std::move(finished)]() mutable {
        for (int l = 0; l < 8; ++l) {
            if (!st->pipe.wait_for_slot(l)) {
                st->refused = true;
                break;
            }
            st->pipe.loaded(l);
            ++st->done;
        }
        p.set_value();
    });
    st->pipe.begin_layer(0);
    st->pipe.abort();  // compute failed after layer 0
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        loader.detach();
        FAIL("abort() did not release the loader within 10 s");
    }
    loader.join();
    CHECK(st->refused.load());     // released by the abort, not by running out of layers
    CHECK(st->done.load() <= 2);   // never more than 1 + read_buffer layers ahead of compute
}

TEST_CASE("layer-wise pre-loading gives the same logits as loading everything first, any buffer") {
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 77);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    std::vector<std::vector<float>> logits_by_mode;
    for (int buffer : {-1, 0, 2, 8}) {
        test::temp_dir dir("layerwise");
        // A device tier for one session: every returning turn loads from DRAM or SSD.
        H h(test::capacities<H>(64 * pt, 200 * pt, 4000 * pt, dir.path()), b.geometry(), b.weights_id());
        engine eng(h, b, {.record_logits = true, .preload_buffer_layers = buffer});
        std::mt19937_64 rng(9);
        std::vector<float> all;
        std::size_t loaded_hits = 0;
        for (int round = 0; round < 3; ++round)
            for (std::uint64_t s = 1; s <= 3; ++s) {
                auto r = eng.run_turn(session_id{s}, test::random_tokens(rng, 12, b.vocab()), 3);
                all.insert(all.end(), r.first_logits.begin(), r.first_logits.end());
                if (r.metrics.hit_tier && *r.metrics.hit_tier > 0) ++loaded_hits;
            }
        CHECK(loaded_hits >= 4);
        logits_by_mode.push_back(std::move(all));
    }
    for (std::size_t i = 1; i < logits_by_mode.size(); ++i) CHECK(logits_by_mode[i] == logits_by_mode[0]);
}
