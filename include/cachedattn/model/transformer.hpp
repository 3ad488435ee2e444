#pragma once
/// @file
/// @brief The CPU reference transformer (LLaMA architecture, fp32): embedding, RMSNorm, RoPE,
/// grouped-query attention over a paged KV cache, SwiGLU MLP, output head; optional q/k/v
/// projection biases (Qwen2), added before RoPE as Hugging Face's models do.
///
/// `forward` runs new tokens over whatever prefix the paged view already holds: the new tokens
/// take positions `kv.tokens ..`, their K/V are written into the view, and the logits of the last
/// one come back. Prefill over a cached prefix and decode are the same call. Keys are written
/// before RoPE (`keys_pre_rope`, rotated at attention time with their current positions) or
/// after it. Every output element is produced by one thread in a fixed order, so results are
/// identical whatever the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/core/rope.hpp"
#include "cachedattn/model/config.hpp"
#include "cachedattn/model/ops.hpp"
#include "cachedattn/model/parallel.hpp"
#include "cachedattn/model/weights.hpp"

namespace cachedattn::model {

/// No per-layer hook.
struct no_layer_hook {
    void operator()(int) const noexcept {}
};

struct exec_config {
    int threads = 0;  ///< 0: all hardware threads
};

template <class Ops = simd_ops>
class transformer {
public:
    transformer(model_config c, weights w, exec_config e = {})
        : cfg_(std::move(c)), w_(std::move(w)), threads_(e.threads > 0 ? e.threads : default_threads()) {
        cfg_.validate();
        if (cfg_.type != dtype::f32)
            throw config_error("transformer: the CPU reference computes and stores f32 KV; model_config '" +
                               cfg_.name + "' asks for " + to_string(cfg_.type) +
                               " (use the sim backend for f16/bf16 shapes)");
        w_.check_shapes(cfg_);
        rope_.build(cfg_.head_dim, cfg_.context_window, cfg_.rope());
    }

    const model_config& config() const noexcept { return cfg_; }
    model_geometry geometry() const { return cfg_.geometry(); }
    std::uint64_t weights_id() const noexcept { return w_.seed; }
    const rope_table& rope() const noexcept { return rope_; }
    int threads() const noexcept { return threads_; }

    /// Runs `tokens` after the `kv.tokens` tokens already in `kv`, writes their K/V into `kv`
    /// (pre: `kv.capacity() >= kv.tokens + tokens.size()`) and stores the last token's logits in
    /// `logits` (size vocab). The caller commits the new tokens to its KV store afterwards.
    ///
    /// `before_layer(l)` runs before layer l first touches the KV store (after its Q/K/V
    /// projections): layer-wise pre-loading waits there until layer l's history is resident.
    template <class BeforeLayer = no_layer_hook>
    void forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                 std::span<float> logits, BeforeLayer&& before_layer = {}) const {
        const std::int64_t n = static_cast<std::int64_t>(tokens.size());
        if (n == 0) throw input_error("transformer::forward: no tokens");
        for (token_id t : tokens)
            if (t < 0 || t >= cfg_.vocab)
                throw input_error("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                  std::to_string(cfg_.vocab) + ") of model '" + cfg_.name + "'");
        if (logits.size() != static_cast<std::size_t>(cfg_.vocab))
            throw input_error("transformer::forward: logits span must hold vocab floats");
        const std::int64_t base = kv.tokens, total = base + n;
        if (total > cfg_.context_window)
            throw input_error("transformer::forward: " + std::to_string(total) +
                              " tokens exceed the context window of " + std::to_string(cfg_.context_window));
        if (kv.layers != cfg_.layers || kv.kv_heads != cfg_.kv_heads || kv.head_dim != cfg_.head_dim ||
            kv.block_bytes != cfg_.geometry().block_elems() * sizeof(float))
            throw config_error("transformer::forward: KV view geometry does not match the model");
        if (kv.capacity() < total) throw error("transformer::forward: KV view has no room; reserve first");

        const std::size_t D = static_cast<std::size_t>(cfg_.dim);
        const std::size_t hd = static_cast<std::size_t>(cfg_.head_dim);
        const std::size_t Q = static_cast<std::size_t>(cfg_.heads) * hd;
        const std::size_t KV = static_cast<std::size_t>(cfg_.kv_heads) * hd;
        const std::size_t F = static_cast<std::size_t>(cfg_.ffn_dim);
        const std::size_t N = static_cast<std::size_t>(n);

        std::vector<float> x(N * D), xn(N * D), q(N * Q), k(N * KV), v(N * KV), att(N * Q), tmp(N * D),
            gate(N * F), up(N * F);
        for (std::size_t i = 0; i < N; ++i)
            std::memcpy(&x[i * D], &w_.embedding[static_cast<std::size_t>(tokens[i]) * D], D * sizeof(float));

        for (int l = 0; l < cfg_.layers; ++l) {
            const layer_weights& lw = w_.layers[static_cast<std::size_t>(l)];
            rmsnorm(x.data(), lw.attn_norm.data(), xn.data(), N, D);
            matmul(xn.data(), N, D, lw.wq.data(), Q, q.data());
            matmul(xn.data(), N, D, lw.wk.data(), KV, k.data());
            matmul(xn.data(), N, D, lw.wv.data(), KV, v.data());
            add_bias(q.data(), N, lw.bq);
            add_bias(k.data(), N, lw.bk);
            add_bias(v.data(), N, lw.bv);
            before_layer(l);
            for (std::size_t i = 0; i < N; ++i) {
                const std::int64_t pos = base + static_cast<std::int64_t>(i);
                for (int h = 0; h < cfg_.heads; ++h) rope_.rotate(&q[i * Q + h * hd], pos);
                for (int h = 0; h < cfg_.kv_heads; ++h) {
                    float* kdst = kv.k(l, h, pos);
                    std::memcpy(kdst, &k[i * KV + h * hd], hd * sizeof(float));
                    if (!keys_pre_rope) rope_.rotate(kdst, pos);
                    std::memcpy(kv.v(l, h, pos), &v[i * KV + h * hd], hd * sizeof(float));
                }
            }
            attention(kv, l, q.data(), base, N, keys_pre_rope, att.data());
            matmul(att.data(), N, Q, lw.wo.data(), D, tmp.data());
            for (std::size_t i = 0; i < N * D; ++i) x[i] += tmp[i];

            rmsnorm(x.data(), lw.ffn_norm.data(), xn.data(), N, D);
            matmul(xn.data(), N, D, lw.w_gate.data(), F, gate.data());
            matmul(xn.data(), N, D, lw.w_up.data(), F, up.data());
            for (std::size_t i = 0; i < N * F; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
            matmul(gate.data(), N, F, lw.w_down.data(), D, tmp.data());
            for (std::size_t i = 0; i < N * D; ++i) x[i] += tmp[i];
        }
        rmsnorm(&x[(N - 1) * D], w_.final_norm.data(), xn.data(), 1, D);
        matmul(xn.data(), 1, D, w_.output.data(), static_cast<std::size_t>(cfg_.vocab), logits.data());
    }

private:
    void rmsnorm(const float* x, const float* w, float* out, std::size_t n, std::size_t d) const {
        for (std::size_t i = 0; i < n; ++i) {
            const float* xi = x + i * d;
            const float ms = Ops::dot(xi, xi, d) / static_cast<float>(d);
            const float r = 1.0f / std::sqrt(ms + cfg_.norm_eps);
            for (std::size_t j = 0; j < d; ++j) out[i * d + j] = xi[j] * r * w[j];
        }
    }

    /// y[i][o] += bias[o] for i < n (no-op for an empty bias: bias-free models are unchanged).
    static void add_bias(float* y, std::size_t n, const std::vector<float>& bias) {
        const std::size_t out = bias.size();
        for (std::size_t i = 0; i < n && out > 0; ++i)
            for (std::size_t o = 0; o < out; ++o) y[i * out + o] += bias[o];
    }

    /// y[i][o] = dot(W[o], x[i]) for i < n, o < out.
    void matmul(const float* x, std::size_t n, std::size_t in, const float* W, std::size_t out, float* y) const {
        parallel_for(static_cast<std::int64_t>(out), threads_, [&](std::int64_t o) {
            const float* row = W + static_cast<std::size_t>(o) * in;
            for (std::size_t i = 0; i < n; ++i) y[i * out + static_cast<std::size_t>(o)] = Ops::dot(row, x + i * in, in);
        });
    }

    /// Causal GQA over the view's tokens [0, base+n): query i (position base+i) sees tokens
    /// [0, base+i]. Keys stored pre-RoPE are rotated here, once per layer, at their positions.
    void attention(const paged_kv_view<float>& kv, int l, const float* q, std::int64_t base, std::size_t n,
                   bool keys_pre_rope, float* out) const {
        const std::size_t hd = static_cast<std::size_t>(cfg_.head_dim);
        const std::size_t Q = static_cast<std::size_t>(cfg_.heads) * hd;
        const std::int64_t total = base + static_cast<std::int64_t>(n);
        const std::size_t T = static_cast<std::size_t>(total);
        const int kvh = cfg_.kv_heads, group = cfg_.heads / cfg_.kv_heads;
        // [kv_head][token][head_dim]: contiguous keys (rotated) and values of this layer.
        std::vector<float> keys(static_cast<std::size_t>(kvh) * T * hd), vals(keys.size());
        parallel_for(static_cast<std::int64_t>(kvh) * total, threads_, [&](std::int64_t job) {
            const int h = static_cast<int>(job / total);
            const std::int64_t t = job % total;
            float* kd = &keys[(static_cast<std::size_t>(h) * T + static_cast<std::size_t>(t)) * hd];
            if (keys_pre_rope) rope_.rotate_into(kv.k(l, h, t), kd, t);
            else std::memcpy(kd, kv.k(l, h, t), hd * sizeof(float));
            std::memcpy(&vals[(static_cast<std::size_t>(h) * T + static_cast<std::size_t>(t)) * hd], kv.v(l, h, t),
                        hd * sizeof(float));
        });
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        parallel_for(static_cast<std::int64_t>(n) * cfg_.heads, threads_, [&](std::int64_t job) {
            const std::size_t i = static_cast<std::size_t>(job / cfg_.heads);
            const int h = static_cast<int>(job % cfg_.heads);
            const std::size_t g = static_cast<std::size_t>(h / group);
            const float* qi = q + i * Q + static_cast<std::size_t>(h) * hd;
            const std::size_t visible = static_cast<std::size_t>(base) + i + 1;
            thread_local std::vector<float> scores;
            scores.resize(visible);
            float mx = -std::numeric_limits<float>::infinity();
            for (std::size_t t = 0; t < visible; ++t) {
                scores[t] = Ops::dot(qi, &keys[(g * T + t) * hd], hd) * scale;
                mx = std::max(mx, scores[t]);
            }
            float sum = 0.0f;
            for (std::size_t t = 0; t < visible; ++t) {
                scores[t] = std::exp(scores[t] - mx);
                sum += scores[t];
            }
            float* o = out + i * Q + static_cast<std::size_t>(h) * hd;
            std::fill(o, o + hd, 0.0f);
            const float inv = 1.0f / sum;
            for (std::size_t t = 0; t < visible; ++t) Ops::axpy(scores[t] * inv, &vals[(g * T + t) * hd], o, hd);
        });
    }

    model_config cfg_;
    weights w_;
    int threads_;
    rope_table rope_;
};

}  // namespace cachedattn::model
