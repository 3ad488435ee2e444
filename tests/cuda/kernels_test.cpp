// Every kernel against an f64 host reference on fresh random inputs, outputs poisoned first.
#include "cuda_support.hpp"

using namespace cudatest;

namespace {

struct attn_case {
    std::vector<std::pair<std::int64_t, int>> seqs;  // (base, n) per sequence
    int heads, kv_heads, head_dim;
    bool pre_rope;  // keys stored before RoPE (decoupled) or rotated (coupled)
    int splits = 1;
    k::attention_args::path path = k::attention_args::path::automatic;
    float theta = 10000.0f;  // the RoPE table's base: every kernel must follow the table it is given
};

/// Runs the fused attention on a scrambled paged pool and returns rel L2 error vs f64.
double run_attention(ca::dtype t, const attn_case& c, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int bt = 16, layers = 2, layer = 1, hd = c.head_dim;
    const ca::rope_table rope(hd, 4096, {c.theta});
    const std::size_t block_elems = static_cast<std::size_t>(2 * layers * c.kv_heads * bt * hd);
    std::int64_t tokens = 0;
    std::size_t blocks_needed = 0;
    std::vector<int> offsets;
    for (auto [base, n] : c.seqs) {
        offsets.push_back(static_cast<int>(rng() % bt));
        blocks_needed += static_cast<std::size_t>((offsets.back() + base + n + bt - 1) / bt);
        tokens += n;
    }
    const std::size_t pool_blocks = blocks_needed + 7;
    auto pool = random_buffer(t, pool_blocks * block_elems, rng());
    auto q = random_buffer(t, static_cast<std::size_t>(tokens) * c.heads * hd, rng());
    cu::device_buffer o(static_cast<std::size_t>(tokens) * c.heads * hd * 2);
    k::fill_nan(t, o.get(), static_cast<std::size_t>(tokens) * c.heads * hd, nullptr);

    // Disjoint scrambled tables for the sequences.
    auto all = scrambled_table(blocks_needed, pool_blocks, rng);
    std::vector<std::vector<std::int32_t>> tables;
    std::vector<cu::device_buffer> dtables;
    std::vector<k::attn_seq> seqs;
    std::size_t used = 0;
    std::int64_t row = 0;
    int max_new = 0;
    for (std::size_t s = 0; s < c.seqs.size(); ++s) {
        const auto [base, n] = c.seqs[s];
        const std::size_t nb = static_cast<std::size_t>((offsets[s] + base + n + bt - 1) / bt);
        tables.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(used), all.begin() + static_cast<std::ptrdiff_t>(used + nb));
        used += nb;
        dtables.push_back(upload(tables.back()));
        seqs.push_back({dtables.back().as<std::int32_t>(), base, n, offsets[s], row});
        row += n;
        max_new = std::max(max_new, n);
    }
    auto dseqs = upload(seqs);
    cu::device_buffer cosb = upload(rope.cos_table()), sinb = upload(rope.sin_table());
    cu::device_buffer work(k::attention_workspace_floats(c.splits, tokens, c.heads, hd) * 4 + 4);

    k::attention_args a;
    a.type = t;
    a.q = q.get();
    a.o = o.get();
    a.tokens = tokens;
    a.pool = pool.get();
    a.block_elems = block_elems;
    a.layer = layer;
    a.heads = c.heads;
    a.kv_heads = c.kv_heads;
    a.head_dim = hd;
    a.block_tokens = bt;
    a.seqs = dseqs.as<k::attn_seq>();
    a.batch = static_cast<int>(seqs.size());
    a.max_new = max_new;
    a.rope_cos = cosb.as<float>();
    a.rope_sin = sinb.as<float>();
    a.rope_q = true;
    a.rope_k = c.pre_rope;
    a.splits = c.splits;
    a.workspace = work.as<float>();
    a.kernel = c.path;
    k::attention(a, nullptr);
    cu::check(cudaDeviceSynchronize(), "attention");

    const auto hp = download(t, pool.get(), pool_blocks * block_elems);
    const auto hq = download(t, q.get(), static_cast<std::size_t>(tokens) * c.heads * hd);
    const auto ho = download(t, o.get(), static_cast<std::size_t>(tokens) * c.heads * hd);
    std::vector<double> ref(ho.size());
    const int group = c.heads / c.kv_heads;
    for (std::size_t s = 0; s < c.seqs.size(); ++s) {
        const auto [base, n] = c.seqs[s];
        const std::int64_t keys = base + n;
        auto at = [&](std::int64_t tok, int kv, int h) {
            const std::int64_t slot = offsets[s] + tok;
            return static_cast<std::size_t>(tables[s][static_cast<std::size_t>(slot / bt)]) * block_elems +
                   ((static_cast<std::size_t>(layer) * 2 + kv) * c.kv_heads + h) * bt * hd +
                   static_cast<std::size_t>(slot % bt) * hd;
        };
        for (int h = 0; h < c.heads; ++h) {
            const int g = h / group;
            std::vector<double> K(static_cast<std::size_t>(keys) * hd), V(K.size());
            for (std::int64_t j = 0; j < keys; ++j)
                for (int d = 0; d < hd; ++d) {
                    K[static_cast<std::size_t>(j) * hd + d] = hp[at(j, 0, g) + d];
                    V[static_cast<std::size_t>(j) * hd + d] = hp[at(j, 1, g) + d];
                }
            if (c.pre_rope)
                for (std::int64_t j = 0; j < keys; ++j) rotate(K, static_cast<std::size_t>(j) * hd, hd, rope, j);
            for (int i = 0; i < n; ++i) {
                const std::size_t qo = (static_cast<std::size_t>(seqs[s].q_row + i) * c.heads + h) * hd;
                std::vector<double> qq(hq.begin() + static_cast<std::ptrdiff_t>(qo), hq.begin() + static_cast<std::ptrdiff_t>(qo + hd));
                rotate(qq, 0, hd, rope, base + i);
                const std::int64_t vis = base + i + 1;
                std::vector<double> sc(static_cast<std::size_t>(vis));
                double mx = -INFINITY;
                for (std::int64_t j = 0; j < vis; ++j) {
                    double d = 0;
                    for (int x = 0; x < hd; ++x) d += qq[x] * K[static_cast<std::size_t>(j) * hd + x];
                    sc[static_cast<std::size_t>(j)] = d / std::sqrt(static_cast<double>(hd));
                    mx = std::max(mx, sc[static_cast<std::size_t>(j)]);
                }
                double sum = 0;
                for (auto& v : sc) sum += (v = std::exp(v - mx));
                for (int x = 0; x < hd; ++x) {
                    double acc = 0;
                    for (std::int64_t j = 0; j < vis; ++j) acc += sc[static_cast<std::size_t>(j)] * V[static_cast<std::size_t>(j) * hd + x];
                    ref[qo + x] = acc / sum;
                }
            }
        }
    }
    return rel_l2(ho, ref);
}

}  // namespace

TEST_CASE("fused paged attention equals the f64 reference (f16/bf16, head_dim 64/128, GQA, RoPE on stored keys)") {
    using path = k::attention_args::path;
    std::uint64_t seed = 1000;
    for (ca::dtype t : {ca::dtype::f16, ca::dtype::bf16})
        for (int hd : {64, 128})
            for (auto [heads, kvh] : {std::pair{4, 4}, std::pair{4, 2}, std::pair{8, 2}, std::pair{16, 2}})
                for (bool pre : {true, false}) {
                    std::vector<attn_case> cases;
                    // Prefill through the 16-rows-per-warp kernel (automatic), the 32-rows one and the
                    // key-splitting one (16 rows per CTA).
                    for (path p : {path::automatic, path::wide, path::split_keys}) {
                        cases.push_back({{{0, 77}}, heads, kvh, hd, pre, 1, p});                     // from nothing
                        cases.push_back({{{37, 130}}, heads, kvh, hd, pre, 1, p});                   // over a cached prefix
                        cases.push_back({{{300, 64}, {5, 3}, {0, 20}}, heads, kvh, hd, pre, 1, p});  // a batch
                        cases.push_back({{{190, 40}}, heads, kvh, hd, pre, 3, p});                   // split-KV
                        cases.push_back({{{1500, 300}}, heads, kvh, hd, pre, 1, p, 500000.0f});     // LLaMA-3 table
                    }
                    // Decode (n <= 1 everywhere) through every kernel.
                    for (path p : {path::decode, path::tensor_core, path::split_keys}) {
                        cases.push_back({{{0, 1}}, heads, kvh, hd, pre, 1, p});  // first token
                        cases.push_back({{{100, 1}}, heads, kvh, hd, pre, 1, p});
                        cases.push_back({{{700, 1}, {250, 1}, {3, 1}}, heads, kvh, hd, pre, 4, p});  // split-KV decode
                        cases.push_back({{{1000, 1}, {63, 1}}, heads, kvh, hd, pre, 1, p});
                        // An empty batch slot (n = 0) shares its q_row with the next sequence:
                        // only that sequence may write the row.
                        cases.push_back({{{100, 1}, {50, 0}, {30, 1}}, heads, kvh, hd, pre, 1, p});
                        // Keys rotated by a table with another base: decode once computed its own
                        // angles from a theta it was told separately.
                        cases.push_back({{{3000, 1}, {17, 1}}, heads, kvh, hd, pre, 1, p, 500000.0f});
                    }
                    for (const auto& c : cases) {
                        const double err = run_attention(t, c, ++seed);
                        const std::string tname = ca::to_string(t);
                        CAPTURE(tname);
                        CAPTURE(hd);
                        CAPTURE(heads);
                        CAPTURE(kvh);
                        CAPTURE(pre);
                        CAPTURE(c.seqs[0].first);
                        CAPTURE(c.seqs[0].second);
                        CAPTURE(c.splits);
                        CAPTURE(c.theta);
                        const int kernel = static_cast<int>(c.path);
                        CAPTURE(kernel);
                        CHECK(err <= 1e-2);
                    }
                }
}

TEST_CASE("append_kv writes pre-RoPE keys verbatim and rotates them in coupled mode") {
    for (ca::dtype t : {ca::dtype::f16, ca::dtype::bf16})
        for (bool pre : {true, false}) {
            std::mt19937_64 rng(77 + static_cast<int>(t) + pre);
            const int bt = 16, layers = 3, layer = 2, kvh = 2, hd = 128, n = 45;
            const std::int64_t base = 21;
            const int first_offset = 5;
            const ca::rope_table rope(hd, 1024, {});
            const std::size_t block_elems = static_cast<std::size_t>(2 * layers * kvh * bt * hd);
            const std::size_t nb = static_cast<std::size_t>((first_offset + base + n + bt - 1) / bt), pool_blocks = nb + 3;
            auto table = scrambled_table(nb, pool_blocks, rng);
            auto dtable = upload(table);
            auto pool = random_buffer(t, pool_blocks * block_elems, rng());
            auto kk = random_buffer(t, static_cast<std::size_t>(n) * kvh * hd, rng());
            auto vv = random_buffer(t, static_cast<std::size_t>(n) * kvh * hd, rng());
            cu::device_buffer cosb = upload(rope.cos_table()), sinb = upload(rope.sin_table());
            const auto before = download(t, pool.get(), pool_blocks * block_elems);
            k::append_args a;
            a.type = t;
            a.k = kk.get();
            a.v = vv.get();
            a.pool = pool.get();
            a.block_elems = block_elems;
            a.table = dtable.as<std::int32_t>();
            a.first_offset = first_offset;
            a.base = base;
            a.n = n;
            a.layer = layer;
            a.kv_heads = kvh;
            a.head_dim = hd;
            a.block_tokens = bt;
            a.rope_cos = cosb.as<float>();
            a.rope_sin = sinb.as<float>();
            a.keys_pre_rope = pre;
            k::append_kv(a, nullptr);
            cu::check(cudaDeviceSynchronize(), "append");
            const auto after = download(t, pool.get(), pool_blocks * block_elems);
            const auto hk = download(t, kk.get(), static_cast<std::size_t>(n) * kvh * hd);
            const auto hv = download(t, vv.get(), hk.size());
            std::vector<double> expect(before.begin(), before.end());
            for (int i = 0; i < n; ++i)
                for (int h = 0; h < kvh; ++h) {
                    const std::int64_t slot = first_offset + base + i;
                    const std::size_t off = static_cast<std::size_t>(table[static_cast<std::size_t>(slot / bt)]) * block_elems +
                                            static_cast<std::size_t>(slot % bt) * hd;
                    std::vector<double> key(hk.begin() + (static_cast<std::size_t>(i) * kvh + h) * hd,
                                            hk.begin() + (static_cast<std::size_t>(i) * kvh + h + 1) * hd);
                    if (!pre) rotate(key, 0, hd, rope, base + i);
                    for (int d = 0; d < hd; ++d) {
                        expect[off + ((static_cast<std::size_t>(layer) * 2) * kvh + h) * bt * hd + d] = key[static_cast<std::size_t>(d)];
                        expect[off + ((static_cast<std::size_t>(layer) * 2 + 1) * kvh + h) * bt * hd + d] =
                            hv[(static_cast<std::size_t>(i) * kvh + h) * hd + d];
                    }
                }
            CAPTURE(pre);
            CHECK(rel_l2(after, expect) <= (pre ? 0.0 : 1e-2));
        }
}

TEST_CASE("rope_inplace, rmsnorm, swiglu and embedding equal the host reference") {
    std::mt19937_64 rng(5);
    for (ca::dtype t : {ca::dtype::f16, ca::dtype::bf16}) {
        const std::string tname = ca::to_string(t);
        CAPTURE(tname);
        {  // RoPE in place
            const int n = 33, heads = 6, hd = 64;
            const std::int64_t base = 17;
            const ca::rope_table rope(hd, 512, {});
            cu::device_buffer cosb = upload(rope.cos_table()), sinb = upload(rope.sin_table());
            auto x = random_buffer(t, static_cast<std::size_t>(n) * heads * hd, rng());
            auto in = download(t, x.get(), static_cast<std::size_t>(n) * heads * hd);
            k::rope_inplace(t, x.get(), n, heads, hd, base, cosb.as<float>(), sinb.as<float>(), nullptr);
            std::vector<double> ref(in.begin(), in.end());
            for (int i = 0; i < n; ++i)
                for (int h = 0; h < heads; ++h) rotate(ref, (static_cast<std::size_t>(i) * heads + h) * hd, hd, rope, base + i);
            CHECK(rel_l2(download(t, x.get(), in.size()), ref) <= 1e-2);
        }
        {  // RMSNorm: f32 in, weights f32, out in t
            const int n = 9, dim = 1000;
            auto x = random_buffer(ca::dtype::f32, static_cast<std::size_t>(n) * dim, rng());
            auto w = random_buffer(ca::dtype::f32, dim, rng());
            cu::device_buffer out(static_cast<std::size_t>(n) * dim * 2);
            k::fill_nan(t, out.get(), static_cast<std::size_t>(n) * dim, nullptr);
            k::rmsnorm(t, x.as<float>(), w.as<float>(), out.get(), n, dim, 1e-5f, nullptr);
            const auto hx = download(ca::dtype::f32, x.get(), static_cast<std::size_t>(n) * dim);
            const auto hw = download(ca::dtype::f32, w.get(), dim);
            std::vector<double> ref(hx.size());
            for (int i = 0; i < n; ++i) {
                double ss = 0;
                for (int d = 0; d < dim; ++d) ss += static_cast<double>(hx[i * dim + d]) * hx[i * dim + d];
                const double r = 1.0 / std::sqrt(ss / dim + 1e-5);
                for (int d = 0; d < dim; ++d) ref[static_cast<std::size_t>(i * dim + d)] = hx[i * dim + d] * r * hw[d];
            }
            CHECK(rel_l2(download(t, out.get(), ref.size()), ref) <= 1e-2);
        }
        {  // SwiGLU
            const std::size_t n = 12345;
            auto g = random_buffer(t, n, rng()), u = random_buffer(t, n, rng());
            cu::device_buffer out(n * 2);
            k::fill_nan(t, out.get(), n, nullptr);
            k::swiglu(t, g.get(), u.get(), out.get(), static_cast<std::int64_t>(n), nullptr);
            const auto hg = download(t, g.get(), n), hu = download(t, u.get(), n);
            std::vector<double> ref(n);
            for (std::size_t j = 0; j < n; ++j) ref[j] = hg[j] / (1.0 + std::exp(-static_cast<double>(hg[j]))) * hu[j];
            CHECK(rel_l2(download(t, out.get(), n), ref) <= 1e-2);
        }
        {  // Embedding gather
            const int vocab = 300, dim = 96, n = 50;
            auto table = random_buffer(t, static_cast<std::size_t>(vocab) * dim, rng());
            std::vector<std::int32_t> toks(n);
            for (auto& x : toks) x = static_cast<std::int32_t>(rng() % vocab);
            auto dt = upload(toks);
            cu::device_buffer out(static_cast<std::size_t>(n) * dim * 4);
            k::fill_nan(ca::dtype::f32, out.get(), static_cast<std::size_t>(n) * dim, nullptr);
            k::embedding(t, dt.as<std::int32_t>(), n, table.get(), dim, out.as<float>(), nullptr);
            const auto ht = download(t, table.get(), static_cast<std::size_t>(vocab) * dim);
            std::vector<double> ref(static_cast<std::size_t>(n) * dim);
            for (int i = 0; i < n; ++i)
                for (int d = 0; d < dim; ++d) ref[static_cast<std::size_t>(i * dim + d)] = ht[static_cast<std::size_t>(toks[i]) * dim + d];
            CHECK(rel_l2(download(ca::dtype::f32, out.get(), ref.size()), ref) == 0.0);
        }
    }
}

TEST_CASE("fill_uniform reproduces model::weights::random bit for bit (f32)") {
    const auto cfg = ca::model::model_config::tiny();
    const auto w = ca::model::weights::random(cfg, 42);
    // Streams: 1 embedding, then per layer attn_norm (2), wq (3), ...
    cu::device_buffer e(w.embedding.size() * 4), wq(w.layers[0].wq.size() * 4), n0(w.layers[0].attn_norm.size() * 4);
    const float sd = std::sqrt(3.0f / static_cast<float>(cfg.dim));
    k::fill_uniform(ca::dtype::f32, e.get(), w.embedding.size(), 42, 1, 1.0f, 0.0f, nullptr);
    k::fill_uniform(ca::dtype::f32, n0.get(), w.layers[0].attn_norm.size(), 42, 2, 0.1f, 1.0f, nullptr);
    k::fill_uniform(ca::dtype::f32, wq.get(), w.layers[0].wq.size(), 42, 3, sd, 0.0f, nullptr);
    CHECK(download(ca::dtype::f32, e.get(), w.embedding.size()) == w.embedding);
    CHECK(download(ca::dtype::f32, n0.get(), w.layers[0].attn_norm.size()) == w.layers[0].attn_norm);
    CHECK(download(ca::dtype::f32, wq.get(), w.layers[0].wq.size()) == w.layers[0].wq);
}

TEST_CASE("kernel launchers reject impossible configurations with a clear error") {
    k::attention_args a;
    a.head_dim = 96;
    a.heads = 4;
    a.kv_heads = 2;
    CHECK_THROWS_WITH_AS(k::attention(a, nullptr), doctest::Contains("head_dim must be 64 or 128"), ca::config_error);
    a.head_dim = 64;
    a.kv_heads = 3;
    CHECK_THROWS_AS(k::attention(a, nullptr), ca::config_error);
    a.kv_heads = 2;
    a.type = ca::dtype::f32;
    a.batch = 1;
    a.max_new = 1;
    a.rope_q = a.rope_k = false;
    CHECK_THROWS_WITH_AS(k::attention(a, nullptr), doctest::Contains("f16 or bf16"), ca::config_error);
}
