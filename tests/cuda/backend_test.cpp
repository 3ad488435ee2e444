// The CUDA backend end to end: the same model as the CPU reference, and reuse equals recompute
// through the unchanged engine and hierarchy with the device tier's pool in HBM.
#include <cachedattn/backend/cuda_backend.hpp>

#include "../support.hpp"
#include "cuda_support.hpp"

using namespace cachedattn;

namespace {

model::model_config gpu_tiny(dtype t) {
    model::model_config c;
    c.name = "gpu-tiny";
    c.vocab = 512;
    c.dim = 256;
    c.layers = 3;
    c.heads = 8;
    c.kv_heads = 2;
    c.head_dim = 64;
    c.ffn_dim = 688;
    c.context_window = 1024;
    c.block_tokens = 16;
    c.type = t;
    return c;
}

/// A private KV pool in HBM with an identity block table (the recompute-from-scratch path).
struct device_scratch {
    model_geometry g;
    cuda::device_buffer pool;
    std::vector<std::int32_t> table;
    device_scratch(const model_geometry& geo, std::int64_t tokens) : g(geo) {
        table.resize(g.blocks_for(static_cast<std::size_t>(tokens)));
        std::iota(table.begin(), table.end(), 0);
        pool = cuda::device_buffer(table.size() * g.block_bytes());
    }
    paged_kv_view<float> view(std::int64_t tokens) const {
        return paged_kv_view<float>::over(static_cast<std::byte*>(pool.get()), table, g, 0, tokens, true);
    }
};

std::vector<float> cuda_recompute(backend::cuda_backend& b, const std::vector<token_id>& toks, bool pre) {
    device_scratch s(b.geometry(), static_cast<std::int64_t>(toks.size()));
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    b.forward(s.view(0), toks, pre, logits);
    return logits;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
    return cudatest::rel_l2(a, std::vector<double>(ref.begin(), ref.end()));
}

}  // namespace

TEST_CASE("cuda backend computes the CPU reference's model (same seed), prefill and over a cached prefix") {
    backend::cpu_backend cpu(gpu_tiny(dtype::f32), 7);
    std::mt19937_64 rng(3);
    const auto toks = test::random_tokens(rng, 300, 512);
    for (dtype t : {dtype::f16, dtype::bf16})
        for (bool pre : {true, false}) {
            backend::cuda_backend gpu(gpu_tiny(t), 7);
            CHECK(gpu.weights_id() == cpu.weights_id());
            const auto ref = test::reference_logits(cpu, toks, pre);
            // From scratch in one call.
            const double e1 = rel_l2(cuda_recompute(gpu, toks, pre), ref);
            // 200 tokens cached, then 99 more, then one decode step.
            device_scratch s(gpu.geometry(), 300);
            std::vector<float> logits(512);
            gpu.forward(s.view(0), std::span(toks).first(200), pre, logits);
            gpu.forward(s.view(200), std::span(toks).subspan(200, 99), pre, logits);
            gpu.forward(s.view(299), std::span(toks).subspan(299, 1), pre, logits);
            const double e2 = rel_l2(logits, ref);
            MESSAGE(std::string(to_string(t)) << std::string(pre ? " pre-RoPE" : " coupled") << ": rel L2 vs f32 CPU " << e1 << " (one call), "
                                 << e2 << " (cached prefix + decode)");
            const double tol = t == dtype::f16 ? 1e-2 : 3e-2;
            CHECK(e1 <= tol);
            CHECK(e2 <= tol);
        }
}

TEST_CASE("cuda backend rejects a host-memory KV pool and a wrong dtype") {
    backend::cuda_backend gpu(gpu_tiny(dtype::f16), 1);
    model::scratch_kv host(gpu.geometry(), 32);
    std::vector<token_id> toks{1, 2, 3};
    std::vector<float> logits(512);
    CHECK_THROWS_WITH_AS(gpu.forward(host.view(), toks, true, logits), doctest::Contains("device_memory"), config_error);
    CHECK_THROWS_WITH_AS(backend::cuda_backend(gpu_tiny(dtype::f32), 1), doctest::Contains("f16 or bf16"), config_error);
    auto bad = gpu_tiny(dtype::f16);
    bad.head_dim = 32;
    bad.dim = 256;
    CHECK_THROWS_WITH_AS(backend::cuda_backend(bad, 1), doctest::Contains("head_dim"), config_error);
}

namespace {

/// `buffer`: the engine's preload_buffer_layers (-1: whole loads before the prefill; 0 and up:
/// layer-wise loads whose per-layer events the compute stream waits on).
template <class PosEnc>
void reuse_equals_recompute_on_gpu(dtype t, std::uint64_t seed, int buffer = 1) {
    backend::cuda_backend b(gpu_tiny(t), seed);
    using H = test::stack3<eviction::lru, PosEnc>;
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    test::temp_dir dir("cuda-reuse");
    // As the CPU property test: device and DRAM hold 1-2 sessions each, 8 are live, the rest on SSD.
    auto cfg = test::capacities<H>(160 * per_token, 160 * per_token, 4000 * per_token, dir.path());
    std::get<0>(cfg.tiers).memory = cuda::device_memory();
    H h(cfg, b.geometry(), b.weights_id());
    engine eng(h, b, {.retain_across_turns = true, .record_logits = true, .preload_buffer_layers = buffer});
    std::mt19937_64 rng(seed);
    std::array<int, 4> hits{};
    double worst = 0;
    struct conv {
        session_id id;
        int left;
    };
    std::vector<conv> live;
    int started = 0;
    while (started < 24 || !live.empty()) {
        while (live.size() < 8 && started < 24) live.push_back({session_id{static_cast<std::uint64_t>(++started)}, 3});
        const std::size_t pick = rng() % live.size();
        auto& c = live[pick];
        const auto input = test::random_tokens(rng, 10 + rng() % 30, b.vocab());
        std::vector<token_id> full = eng.history(c.id);
        full.insert(full.end(), input.begin(), input.end());
        const auto r = eng.run_turn(c.id, input, 1 + static_cast<int>(rng() % 8));
        const double err = rel_l2(r.first_logits, cuda_recompute(b, full, PosEnc::keys_pre_rope));
        worst = std::max(worst, err);
        CAPTURE(c.id.value);
        CAPTURE(r.metrics.reused_tokens);
        CHECK(err <= 1e-2);
        ++hits[r.metrics.hit_tier ? *r.metrics.hit_tier : 3];
        h.check_invariants();
        if (--c.left == 0) {
            eng.end_session(c.id);
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
        }
    }
    eng.synchronize();
    MESSAGE(std::string(to_string(t)) << " " << std::string(PosEnc::name) << " buffer " << buffer << ": hits device/host/file/miss " << hits[0] << "/" << hits[1] << "/"
                         << hits[2] << "/" << hits[3] << ", worst rel L2 vs recompute " << worst);
    CHECK(hits[0] > 0);
    CHECK(hits[1] > 0);
    CHECK(hits[2] > 0);
}

}  // namespace

TEST_CASE("reuse equals recompute on the CUDA backend: HBM pool, async saving, hits from every tier") {
    reuse_equals_recompute_on_gpu<posenc::decoupled_rope>(dtype::f16, 11);
    reuse_equals_recompute_on_gpu<posenc::decoupled_rope>(dtype::bf16, 12);
    reuse_equals_recompute_on_gpu<posenc::coupled_rope>(dtype::f16, 13);
    // Layer-wise loading with no read buffer (the compute stream waits on every layer's event
    // right behind the copy) and whole loads first, for contrast.
    reuse_equals_recompute_on_gpu<posenc::decoupled_rope>(dtype::bf16, 14, 0);
    reuse_equals_recompute_on_gpu<posenc::decoupled_rope>(dtype::bf16, 14, -1);
}

TEST_CASE("entries leaving an HBM device tier are pinned host memory, reused by size, and load back exactly") {
    const model_geometry g = gpu_tiny(dtype::f16).geometry();
    tier::device_tier dev({.capacity_bytes = 64 * g.block_bytes(), .memory = cuda::device_memory()}, {g, 1});
    kv_entry e;
    e.meta.session = session_id{5};
    e.meta.tokens.assign(100, 3);
    e.data.resize(e.meta.blocks(g) * g.block_bytes());
    std::mt19937_64 rng(9);
    for (auto& b : e.data) b = static_cast<std::byte>(rng());
    const auto original = e.data;
    dev.put(std::move(e));
    auto back = dev.take(session_id{5});
    REQUIRE(back);
    CHECK(back->data == original);
    cudaPointerAttributes attr{};
    cuda::check(cudaPointerGetAttributes(&attr, back->data.data()), "cudaPointerGetAttributes");
    CHECK(attr.type == cudaMemoryTypeHost);  // page-locked, not pageable
    const void* first = back->data.data();
    const std::size_t cached = cuda::pinned_memory().cached_bytes();
    back.reset();  // the buffer goes back to the cache...
    CHECK(cuda::pinned_memory().cached_bytes() == cached + original.size());
    dev.put(kv_entry{{session_id{6}, std::vector<token_id>(100, 3)}, std::pmr::vector<std::byte>(original)});
    auto again = dev.take(session_id{6});
    CHECK(static_cast<const void*>(again->data.data()) == first);  // ...and serves the next entry of that size
    CHECK(again->data == original);
}
