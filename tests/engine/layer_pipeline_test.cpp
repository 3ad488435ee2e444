// Layer-wise pre-loading's ordering: no layer computes before its KV is resident, and the
// loader never runs more than 1 + read_buffer layers ahead of compute.
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

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
            wait(pipe.begin_layer(l));
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
    wait(st->pipe.begin_layer(0));
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

namespace {

/// A fence on a copy still running on a thread of its own.
class future_fence final : public device_fence {
public:
    explicit future_fence(std::shared_future<void> f) : f_(std::move(f)) {}
    void wait() const override { f_.wait(); }

private:
    std::shared_future<void> f_;
};

/// Host memory whose layer-wise loads land late, as a GPU pool's queued copies do: each
/// to_pool_async returns at once and copies 2 ms later on another thread.
class late_pool_memory final : public tier::pool_memory {
public:
    using pool_memory::from_pool;
    using pool_memory::to_pool;
    std::string_view name() const noexcept override { return "late"; }
    bool device_resident() const noexcept override { return false; }
    std::byte* allocate(std::size_t bytes) const override { return host_.allocate(bytes); }
    void deallocate(std::byte* p) const noexcept override { host_.deallocate(p); }
    void to_pool(std::byte* dst, const std::byte* src, std::size_t n) const override { host_.to_pool(dst, src, n); }
    void from_pool(std::byte* dst, const std::byte* src, std::size_t n) const override { host_.from_pool(dst, src, n); }
    void within_pool(std::byte* dst, const std::byte* src, std::size_t n) const override {
        host_.within_pool(dst, src, n);
    }
    fence to_pool_async(std::span<const tier::copy_op> ops) const override {
        ++queued;
        std::vector<tier::copy_op> copy(ops.begin(), ops.end());
        return std::make_shared<const future_fence>(std::async(std::launch::async, [copy = std::move(copy)] {
                                                        std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                                        for (const auto& op : copy) std::memcpy(op.dst, op.src, op.n);
                                                    }).share());
    }
    mutable std::atomic<int> queued{0};

private:
    tier::host_pool_memory host_;
};

}  // namespace

TEST_CASE("layer-wise pre-loading through copies that land late: each layer waits on its fence") {
    // The engine's hook hands the backend each layer's fence; the cpu backend waits on it (a
    // GPU's compute stream would). A layer read before its copy landed would see whatever the
    // reused blocks held before, and the logits would differ from the synchronous pool's.
    using H = test::stack3<>;
    backend::cpu_backend b(model::model_config::tiny(), 77);
    const std::size_t pt = b.geometry().kv_bytes_per_token();
    std::vector<std::vector<float>> logits;
    for (bool late : {false, true})
        for (int buffer : {0, 2}) {
            CAPTURE(late);
            CAPTURE(buffer);
            test::temp_dir dir("latecopies");
            auto cfg = test::capacities<H>(64 * pt, 200 * pt, 4000 * pt, dir.path());
            auto pool = std::make_shared<late_pool_memory>();
            if (late) std::get<0>(cfg.tiers).memory = pool;
            H h(cfg, b.geometry(), b.weights_id());
            engine eng(h, b, {.record_logits = true, .preload_buffer_layers = buffer});
            std::mt19937_64 rng(9);
            std::vector<float> all;
            int loaded_hits = 0;
            for (int round = 0; round < 3; ++round)
                for (std::uint64_t s = 1; s <= 3; ++s) {
                    auto r = eng.run_turn(session_id{s}, test::random_tokens(rng, 12, b.vocab()), 3);
                    all.insert(all.end(), r.first_logits.begin(), r.first_logits.end());
                    if (r.metrics.hit_tier && *r.metrics.hit_tier > 0) ++loaded_hits;
                }
            CHECK(loaded_hits == 4);
            if (late) CHECK(pool->queued.load() == 4 * b.geometry().layers);
            logits.push_back(std::move(all));
        }
    for (std::size_t i = 1; i < logits.size(); ++i) CHECK(logits[i] == logits[0]);
}
