// Device benchmark of the CUDA backend. Times, with CUDA events (median of repeats, inputs
// random, warm-up first), what issue 5 asks and writes them as JSON for bench/cuda/peers.py,
// which times the PyTorch peers in the same run and prints the ratios:
//   - the device-to-device copy bandwidth (the decode kernel's ceiling);
//   - fused prefill attention, 4K tokens causal, bf16, head_dim 128 (vs SDPA FA2 / cuDNN);
//   - 512 new tokens over a 4K and a 16K cached prefix with RoPE applied to the stored keys
//     in the kernel (vs SDPA plus a separate RoPE pass);
//   - batch decode, 64 sequences x 4K tokens (bytes read / time vs the copy bandwidth);
//   - host-to-device pre-load through the device tier's copy_layer vs one cudaMemcpyAsync;
//   - cache-hit prefill of LLaMA-2-13B shapes (random weights): layer-wise loading on a copy
//     stream, one event per layer that the compute stream waits on, vs max(load, compute);
//     then the same turn through the engine (cuda_backend, device + DRAM tiers), whose loader
//     does exactly that, against a whole load before the prefill and a resident history.
// Prefill attention is timed with the 16-rows-per-warp kernel (automatic) and the 32-rows one
// (path::wide) in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include <cachedattn/backend/cuda_backend.hpp>
#include <cachedattn/cachedattn.hpp>
#include <cachedattn/cuda/kernels.hpp>
#include <cachedattn/cuda/runtime.hpp>
#include <cachedattn/cuda/transformer.hpp>
#include <cachedattn/model/config.hpp>
#include <cachedattn/tier/device_tier.hpp>

namespace ca = cachedattn;
namespace cu = cachedattn::cuda;
namespace k = cachedattn::cuda::kernels;

namespace {

/// Median milliseconds of `fn` enqueued on `s` (events around each repeat).
double time_ms(cudaStream_t s, const std::function<void()>& fn, int warmup = 3, int reps = 15) {
    for (int i = 0; i < warmup; ++i) fn();
    cu::check(cudaStreamSynchronize(s), "warm-up");
    cu::event a(true), b(true);
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        a.record(s);
        fn();
        b.record(s);
        b.synchronize();
        float ms = 0;
        cu::check(cudaEventElapsedTime(&ms, a.get(), b.get()), "cudaEventElapsedTime");
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/// Median wall milliseconds of a host-synchronous `fn`.
double wall_ms(const std::function<void()>& fn, int warmup = 2, int reps = 9) {
    for (int i = 0; i < warmup; ++i) fn();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/// One layer of paged KV for `seqs` sequences of `keys` tokens each, identity-ordered blocks.
struct paged_layer {
    int heads, kv_heads, hd, bt = 16;
    std::size_t block_elems;
    cu::device_buffer pool, tables, seqs;
    std::vector<k::attn_seq> host_seqs;
    paged_layer(ca::dtype t, int heads_, int kv_heads_, int hd_, int batch, std::int64_t base, int n)
        : heads(heads_), kv_heads(kv_heads_), hd(hd_) {
        block_elems = static_cast<std::size_t>(2) * kv_heads * bt * hd;  // one layer
        const std::size_t per_seq = static_cast<std::size_t>((base + n + bt - 1) / bt);
        pool = cu::device_buffer(per_seq * batch * block_elems * 2);
        k::fill_random(t, pool.get(), per_seq * batch * block_elems, 99, nullptr);
        std::vector<std::int32_t> ids(per_seq * batch);
        std::iota(ids.begin(), ids.end(), 0);
        tables = cu::device_buffer(ids.size() * 4);
        cu::check(cudaMemcpy(tables.get(), ids.data(), ids.size() * 4, cudaMemcpyHostToDevice), "table");
        for (int b = 0; b < batch; ++b)
            host_seqs.push_back({tables.as<std::int32_t>() + per_seq * b, base, n, 0, static_cast<std::int64_t>(b) * n});
        seqs = cu::device_buffer(host_seqs.size() * sizeof(k::attn_seq));
        cu::check(cudaMemcpy(seqs.get(), host_seqs.data(), seqs.size(), cudaMemcpyHostToDevice), "seqs");
    }
};

struct results {
    std::vector<std::pair<std::string, double>> v;
    void add(const std::string& key, double x) {
        v.emplace_back(key, x);
        std::printf("  %-44s %12.4f\n", key.c_str(), x);
        std::fflush(stdout);
    }
    void write(const char* path, const std::string& device) const {
        FILE* f = std::fopen(path, "w");
        if (!f) return;
        std::fprintf(f, "{\n  \"device\": \"%s\"", device.c_str());
        for (const auto& [key, x] : v) std::fprintf(f, ",\n  \"%s\": %.6g", key.c_str(), x);
        std::fprintf(f, "\n}\n");
        std::fclose(f);
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (cu::device_count() == 0) {
        std::puts("device_bench: no CUDA device");
        return 77;
    }
    const char* out = argc > 1 ? argv[1] : "device_bench.json";
    const std::string device = cu::device_description();
    std::printf("device: %s\n", device.c_str());
    results r;
    cu::stream st;
    const cudaStream_t s = st.get();
    const ca::rope_table rope(128, 32768, {});
    cu::device_buffer cosb(rope.cos_table().size() * 4), sinb(rope.sin_table().size() * 4);
    cu::check(cudaMemcpy(cosb.get(), rope.cos_table().data(), cosb.size(), cudaMemcpyHostToDevice), "rope");
    cu::check(cudaMemcpy(sinb.get(), rope.sin_table().data(), sinb.size(), cudaMemcpyHostToDevice), "rope");

    // ---- device-to-device copy bandwidth (bytes read + written)
    {
        const std::size_t bytes = std::size_t{2} << 30;
        cu::device_buffer a(bytes), b(bytes);
        k::fill_random(ca::dtype::f32, a.get(), bytes / 4, 1, s);
        const double ms = time_ms(s, [&] { cu::check(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, s), "d2d"); });
        r.add("d2d_copy_GBps", 2.0 * bytes / ms / 1e6);
    }

    auto attention = [&](paged_layer& p, ca::dtype t, std::int64_t tokens, int max_new, bool rope_on, const void* q, void* o,
                         int splits, float* work, k::attention_args::path path = k::attention_args::path::automatic) {
        k::attention_args a;
        a.type = t;
        a.q = q;
        a.o = o;
        a.tokens = tokens;
        a.pool = p.pool.get();
        a.block_elems = p.block_elems;
        a.layer = 0;
        a.heads = p.heads;
        a.kv_heads = p.kv_heads;
        a.head_dim = p.hd;
        a.block_tokens = p.bt;
        a.seqs = p.seqs.as<k::attn_seq>();
        a.batch = static_cast<int>(p.host_seqs.size());
        a.max_new = max_new;
        a.rope_cos = cosb.as<float>();
        a.rope_sin = sinb.as<float>();
        a.rope_q = a.rope_k = rope_on;
        a.splits = splits;
        a.workspace = work;
        a.kernel = path;
        k::attention(a, s);
    };

    // ---- fused prefill attention: 4K tokens, causal, bf16, 32 heads x 128 (no RoPE: plain attention)
    {
        const int S = 4096, H = 32, D = 128;
        paged_layer p(ca::dtype::bf16, H, H, D, 1, 0, S);
        cu::device_buffer q(static_cast<std::size_t>(S) * H * D * 2), o(q.size());
        k::fill_random(ca::dtype::bf16, q.get(), q.size() / 2, 2, s);
        const double flops = 4.0 * S * S / 2 * D * H;
        const double ms = time_ms(s, [&] { attention(p, ca::dtype::bf16, S, S, false, q.get(), o.get(), 1, nullptr); });
        const double wide = time_ms(s, [&] {
            attention(p, ca::dtype::bf16, S, S, false, q.get(), o.get(), 1, nullptr, k::attention_args::path::wide);
        });
        r.add("prefill4k_ms", ms);
        r.add("prefill4k_TFLOPs", flops / ms / 1e9);
        r.add("prefill4k_wide_ms", wide);
        r.add("prefill4k_wide_TFLOPs", flops / wide / 1e9);
    }
    // ---- 512 new tokens over a cached prefix, RoPE applied to stored keys in the kernel
    for (int prefix : {4096, 16384}) {
        const int n = 512, H = 32, D = 128;
        paged_layer p(ca::dtype::bf16, H, H, D, 1, prefix, n);
        cu::device_buffer q(static_cast<std::size_t>(n) * H * D * 2), o(q.size());
        k::fill_random(ca::dtype::bf16, q.get(), q.size() / 2, 3, s);
        const double ms = time_ms(s, [&] { attention(p, ca::dtype::bf16, n, n, true, q.get(), o.get(), 1, nullptr); });
        const double wide = time_ms(s, [&] {
            attention(p, ca::dtype::bf16, n, n, true, q.get(), o.get(), 1, nullptr, k::attention_args::path::wide);
        });
        r.add("prefix" + std::to_string(prefix / 1024) + "k_new512_rope_ms", ms);
        r.add("prefix" + std::to_string(prefix / 1024) + "k_new512_rope_wide_ms", wide);
    }
    // ---- batch decode: 64 sequences x 4K tokens (13B: 40 heads MHA; 70B: 64 heads over 8 KV heads)
    for (auto [H, KVH, tag] : {std::tuple{40, 40, "mha40"}, std::tuple{32, 16, "gqa32x16"}, std::tuple{32, 8, "gqa32x8"},
                               std::tuple{64, 8, "gqa64x8"}}) {
        const int B = 64, D = 128;
        const std::int64_t ctx = 4096;
        paged_layer p(ca::dtype::bf16, H, KVH, D, B, ctx - 1, 1);
        cu::device_buffer q(static_cast<std::size_t>(B) * H * D * 2), o(q.size());
        k::fill_random(ca::dtype::bf16, q.get(), q.size() / 2, 4, s);
        const double ms = time_ms(s, [&] { attention(p, ca::dtype::bf16, B, 1, true, q.get(), o.get(), 1, nullptr); });
        const double bytes = static_cast<double>(B) * ctx * KVH * D * 2 * 2;
        r.add(std::string("decode64x4k_") + tag + "_ms", ms);
        r.add(std::string("decode64x4k_") + tag + "_GBps", bytes / ms / 1e6);
        // The same without RoPE (keys stored rotated): what the fused rotation costs.
        const double plain = time_ms(s, [&] { attention(p, ca::dtype::bf16, B, 1, false, q.get(), o.get(), 1, nullptr); });
        r.add(std::string("decode64x4k_") + tag + "_norope_GBps", bytes / plain / 1e6);
        // The tensor-core tiled kernel on the same decode.
        const double tc = time_ms(s, [&] {
            attention(p, ca::dtype::bf16, B, 1, true, q.get(), o.get(), 1, nullptr, k::attention_args::path::tensor_core);
        });
        r.add(std::string("decode64x4k_") + tag + "_tensorcore_GBps", bytes / tc / 1e6);
        const double cc = time_ms(s, [&] {
            attention(p, ca::dtype::bf16, B, 1, true, q.get(), o.get(), 1, nullptr, k::attention_args::path::decode);
        });
        r.add(std::string("decode64x4k_") + tag + "_cudacore_GBps", bytes / cc / 1e6);
        // The tiled kernel whose warps split each tile's keys (one 16-row tile per KV head).
        const double sk = time_ms(s, [&] {
            attention(p, ca::dtype::bf16, B, 1, true, q.get(), o.get(), 1, nullptr, k::attention_args::path::split_keys);
        });
        r.add(std::string("decode64x4k_") + tag + "_splitkeys_GBps", bytes / sk / 1e6);
    }

    // ---- host-to-device pre-load: the device tier's layer copies vs one cudaMemcpyAsync
    {
        ca::model_geometry g = ca::model::model_config::llama2_13b().geometry();
        const std::size_t tokens = 1024;
        ca::kv_entry e;
        e.meta.session = ca::session_id{1};
        e.meta.tokens.assign(tokens, 1);
        e.data.resize(e.meta.blocks(g) * g.block_bytes());
        for (std::size_t i = 0; i < e.data.size(); i += 4096) e.data[i] = std::byte{1};  // fault the pages in
        ca::tier::device_tier dev({.capacity_bytes = 2 * e.data.size(), .memory = cu::device_memory()}, {g, 0});
        dev.put_staged(e.meta);
        const auto blocks = dev.block_ids(e.meta.session);
        const double ours = wall_ms([&] {
            for (int l = 0; l < g.layers; ++l) dev.copy_layer(blocks, e, l);
        });
        // The same entry as the host tier holds it when it came from the device: pinned.
        ca::kv_entry pe{e.meta, std::pmr::vector<std::byte>(e.data.begin(), e.data.end(), dev.host_resource())};
        const double ours_pinned = wall_ms([&] {
            for (int l = 0; l < g.layers; ++l) dev.copy_layer(blocks, pe, l);
        });
        cu::device_buffer dst(e.data.size());
        const double plain = wall_ms([&] {
            cu::check(cudaMemcpyAsync(dst.get(), e.data.data(), e.data.size(), cudaMemcpyHostToDevice, s), "h2d");
            st.synchronize();
        });
        cu::pinned_buffer pinned(e.data.size());
        std::copy(e.data.begin(), e.data.end(), pinned.data());
        const double pinned_ms = wall_ms([&] {
            cu::check(cudaMemcpyAsync(dst.get(), pinned.data(), pinned.size(), cudaMemcpyHostToDevice, s), "h2d");
            st.synchronize();
        });
        r.add("preload_bytes_MB", e.data.size() / 1e6);
        r.add("preload_tier_layerwise_ms", ours);
        r.add("preload_plain_memcpy_pageable_ms", plain);
        r.add("preload_plain_memcpy_pinned_ms", pinned_ms);
        r.add("preload_ratio_vs_plain", plain / ours);
        r.add("preload_tier_layerwise_pinned_ms", ours_pinned);
        r.add("preload_ratio_vs_plain_pinned", pinned_ms / ours_pinned);
    }

    // ---- cache-hit prefill, LLaMA-2-13B shapes, random weights: 2048 cached + 256 new tokens
    {
        auto cfg = ca::model::model_config::llama2_13b();
        ca::backend::cuda_backend backend(cfg, 5);
        cu::transformer& model = backend.model();
        const ca::model_geometry g = cfg.geometry();
        const std::int64_t prefix = 2048, n = 256;
        const std::size_t blocks = g.blocks_for(static_cast<std::size_t>(prefix + n));
        const std::size_t prefix_blocks = g.blocks_for(static_cast<std::size_t>(prefix));
        cu::device_buffer pool(blocks * g.block_bytes());
        std::vector<std::int32_t> table(blocks);
        std::iota(table.begin(), table.end(), 0);
        cu::pinned_buffer host(prefix_blocks * g.block_bytes());
        k::fill_random(g.type, pool.get(), blocks * g.block_elems(), 6, s);
        cu::check(cudaMemcpy(host.data(), pool.get(), host.size(), cudaMemcpyDeviceToHost), "host copy");
        const auto v = ca::paged_kv_view<float>::over(static_cast<std::byte*>(pool.get()), table, g, 0, prefix, true);
        std::vector<ca::token_id> toks(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<ca::token_id>((i * 7919) % cfg.vocab);
        std::vector<float> logits(static_cast<std::size_t>(cfg.vocab));
        const std::size_t run = 2 * g.block_half_layer_elems() * ca::size_of(g.type);
        cu::stream copy;
        std::vector<std::unique_ptr<cu::event>> ready;
        for (int l = 0; l < g.layers; ++l) ready.push_back(std::make_unique<cu::event>());
        auto enqueue_load = [&] {  // one strided copy per layer: `run` bytes of every block
            for (int l = 0; l < g.layers; ++l) {
                const std::size_t off = static_cast<std::size_t>(l) * run;
                cu::check(cudaMemcpy2DAsync(static_cast<std::byte*>(pool.get()) + off, g.block_bytes(), host.data() + off,
                                            g.block_bytes(), run, prefix_blocks, cudaMemcpyHostToDevice, copy.get()),
                          "layer copy");
                ready[static_cast<std::size_t>(l)]->record(copy.get());
            }
        };
        const double compute = wall_ms([&] { model.forward(v, toks, true, logits); }, 1, 5);
        const double load = wall_ms([&] {
            enqueue_load();
            copy.synchronize();
        }, 1, 5);
        const double overlapped = wall_ms([&] {
            enqueue_load();
            model.forward(v, toks, true, logits, [&](int l, const ca::fence&) -> ca::fence {
                cu::check(cudaStreamWaitEvent(model.stream(), ready[static_cast<std::size_t>(l)]->get(), 0), "wait");
                return {};
            });
        }, 1, 5);
        const double load_first = wall_ms([&] {
            enqueue_load();
            copy.synchronize();
            model.forward(v, toks, true, logits);
        }, 1, 5);
        r.add("hit13b_compute_ms", compute);
        r.add("hit13b_load_ms", load);
        r.add("hit13b_layerwise_ms", overlapped);
        r.add("hit13b_load_then_compute_ms", load_first);
        r.add("hit13b_ratio_vs_max", overlapped / std::max(load, compute));

        // The same turn through the engine: a 2048-token history in DRAM (pinned: it left the
        // device tier), 256 new tokens; TTFT as the engine measures it (find, load, prefill).
        using H = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, ca::tier::host_tier>, ca::eviction::lru,
                                   ca::prefetch::none, ca::truncation::drop_oldest, ca::posenc::decoupled_rope>;
        typename H::config hc;
        std::get<0>(hc.tiers).capacity_bytes = 4 * g.blocks_for(4096) * g.block_bytes();
        std::get<0>(hc.tiers).memory = cu::device_memory();
        std::get<1>(hc.tiers).capacity_bytes = 8 * g.blocks_for(4096) * g.block_bytes();
        H kv(hc, g, backend.weights_id());
        std::vector<ca::token_id> history(static_cast<std::size_t>(prefix));
        for (std::size_t i = 0; i < history.size(); ++i) history[i] = static_cast<ca::token_id>((i * 31) % cfg.vocab);
        std::uint64_t next = 100;
        // buffer: preload_buffer_layers (-1: the whole load before the prefill); resident: no demotion.
        auto engine_ttft = [&](int buffer, bool resident) {
            std::vector<double> t;
            for (int rep = 0; rep < 6; ++rep) {
                ca::engine eng(kv, backend, {.preload_buffer_layers = buffer, .preload_next_job = false});
                const ca::session_id sid{next++};
                eng.run_turn(sid, history, 1);
                eng.synchronize();
                if (!resident) kv.demote(sid);
                const auto m = eng.run_turn(sid, toks, 1).metrics;
                if ((m.hit_tier ? *m.hit_tier : 9u) != (resident ? 0u : 1u))
                    throw ca::error("device bench: the engine turn did not hit the expected tier");
                eng.end_session(sid);
                eng.synchronize();
                if (rep > 0) t.push_back(m.ttft_s * 1e3);  // the first warms the pinned cache
            }
            std::sort(t.begin(), t.end());
            return t[t.size() / 2];
        };
        const double e_resident = engine_ttft(1, true);
        const double e_layerwise = engine_ttft(1, false);
        const double e_layerwise0 = engine_ttft(0, false);
        const double e_whole = engine_ttft(-1, false);
        r.add("hit13b_engine_resident_ms", e_resident);
        r.add("hit13b_engine_layerwise_ms", e_layerwise);
        r.add("hit13b_engine_layerwise_buffer0_ms", e_layerwise0);
        r.add("hit13b_engine_whole_load_first_ms", e_whole);
        r.add("hit13b_engine_ratio_vs_max", e_layerwise / std::max(load, e_resident));
    }
    r.write(out, device);
    std::printf("wrote %s\n", out);
    return 0;
}
