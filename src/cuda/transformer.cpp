#include "cachedattn/cuda/transformer.hpp"

#include <cublas_v2.h>

#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/float16.hpp"
#include "cachedattn/cuda/kernels.hpp"
#include "cachedattn/cuda/runtime.hpp"

namespace cachedattn::cuda {
namespace {

void check_blas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw error(std::string("cublas: ") + what + ": " + cublasGetStatusString(s));
}

cudaDataType_t cuda_type(dtype t) {
    switch (t) {
        case dtype::f32: return CUDA_R_32F;
        case dtype::f16: return CUDA_R_16F;
        case dtype::bf16: return CUDA_R_16BF;
    }
    return CUDA_R_32F;
}

struct layer {
    device_buffer attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    device_buffer bq, bk, bv;  // q/k/v biases in the model's dtype; empty: none
};

/// `v` rounded to `t` and copied into a new device buffer (synchronous: `v` may go away).
device_buffer upload(const std::vector<float>& v, dtype t) {
    device_buffer b(v.size() * size_of(t));
    if (t == dtype::f32) {
        check(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "weight upload");
        return b;
    }
    std::vector<std::uint16_t> h(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) h[i] = t == dtype::f16 ? float_to_f16(v[i]) : float_to_bf16(v[i]);
    check(cudaMemcpy(b.get(), h.data(), h.size() * sizeof(std::uint16_t), cudaMemcpyHostToDevice), "weight upload");
    return b;
}

}  // namespace

struct transformer::impl {
    model::model_config cfg;
    transformer_options opt;
    rope_table rope;
    cuda::stream compute;
    cublasHandle_t blas = nullptr;
    device_buffer embedding, final_norm, output, rope_cos, rope_sin;
    device_buffer ones;  // [context_window] ones in the model's dtype: biases go in as a rank-1 GEMM
    std::vector<layer> layers;
    // Scratch, grown to the largest call.
    device_buffer x, xn, q, k, v, att, gate, up, tokens, table, seq, logits, work;
    int sms = 0;

    ~impl() {
        if (blas) cublasDestroy(blas);
    }

    std::size_t esize() const { return size_of(cfg.type); }

    /// Checks the config and sets up everything but the weights.
    void setup(model::model_config c, transformer_options o);
    /// Uploads the RoPE table and allocates the per-call state, after the weights.
    void finish();

    /// Y[n][out] += bias[out] for every row: a GEMM of ones[n][1] and bias[out][1], so no
    /// kernel of its own (one rounding more than the CPU's f32 add; within the f16 tolerance).
    void add_bias(const device_buffer& bias, void* Y, std::int64_t n, int out) {
        if (bias.size() == 0) return;
        gemm(ones.get(), bias, Y, n, 1, out, false, true);
    }

    /// Y[n][out] = X[n][in] . W[out][in]^T (+ Y when accumulate). Y is f32 when `y_f32`.
    void gemm(const void* X, const device_buffer& W, void* Y, std::int64_t n, int in, int out, bool y_f32,
              bool accumulate) {
        const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        const cudaDataType_t t = cuda_type(cfg.type);
        check_blas(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, static_cast<int>(n), in, &alpha, W.get(), t, in,
                                X, t, in, &beta, Y, y_f32 ? CUDA_R_32F : t, out, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
                   "cublasGemmEx");
    }
};

void transformer::impl::setup(model::model_config c, transformer_options o) {
    c.validate();
    if (c.type != dtype::f16 && c.type != dtype::bf16)
        throw config_error("cuda::transformer: model_config '" + c.name + "' has dtype " + to_string(c.type) +
                           "; the CUDA backend computes in f16 or bf16 (the CPU backend is the f32 reference)");
    if (c.head_dim != 64 && c.head_dim != 128)
        throw config_error("cuda::transformer: head_dim must be 64 or 128, got " + std::to_string(c.head_dim));
    if (device_count() == 0) throw error("cuda::transformer: no CUDA device");
    cfg = std::move(c);
    opt = o;
    rope.build(cfg.head_dim, cfg.context_window, cfg.rope());
    check_blas(cublasCreate(&blas), "cublasCreate");
    check_blas(cublasSetStream(blas, compute.get()), "cublasSetStream");
    int dev = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
}

void transformer::impl::finish() {
    const cudaStream_t s = compute.get();
    const auto& cs = rope.cos_table();
    const auto& sn = rope.sin_table();
    rope_cos = device_buffer(cs.size() * sizeof(float));
    rope_sin = device_buffer(sn.size() * sizeof(float));
    check(cudaMemcpyAsync(rope_cos.get(), cs.data(), cs.size() * sizeof(float), cudaMemcpyHostToDevice, s), "rope upload");
    check(cudaMemcpyAsync(rope_sin.get(), sn.data(), sn.size() * sizeof(float), cudaMemcpyHostToDevice, s), "rope upload");
    logits = device_buffer(static_cast<std::size_t>(cfg.vocab) * sizeof(float));
    seq = device_buffer(sizeof(kernels::attn_seq));
    compute.synchronize();
}

transformer::transformer(model::model_config c, std::uint64_t seed, transformer_options o)
    : p_(std::make_unique<impl>()) {
    impl& m = *p_;
    m.setup(std::move(c), o);
    const auto& cfg = m.cfg;

    const std::size_t d = static_cast<std::size_t>(cfg.dim);
    const std::size_t q = static_cast<std::size_t>(cfg.heads) * cfg.head_dim;
    const std::size_t kv = static_cast<std::size_t>(cfg.kv_heads) * cfg.head_dim;
    const std::size_t f = static_cast<std::size_t>(cfg.ffn_dim);
    const cudaStream_t s = m.compute.get();
    std::uint64_t stream_no = 0;  // the host generator's tensor order (model::weights::random)
    auto fill = [&](device_buffer& buf, std::size_t n, dtype t, float scale, float offset = 0.0f) {
        buf = device_buffer(n * size_of(t));
        kernels::fill_uniform(t, buf.get(), n, seed, ++stream_no, scale, offset, s);
    };
    const float sd = std::sqrt(3.0f / static_cast<float>(d));
    fill(m.embedding, static_cast<std::size_t>(cfg.vocab) * d, cfg.type, 1.0f);
    m.layers.resize(static_cast<std::size_t>(cfg.layers));
    for (auto& l : m.layers) {
        fill(l.attn_norm, d, dtype::f32, 0.1f, 1.0f);
        fill(l.wq, q * d, cfg.type, sd);
        fill(l.wk, kv * d, cfg.type, sd);
        fill(l.wv, kv * d, cfg.type, sd);
        fill(l.wo, d * q, cfg.type, std::sqrt(3.0f / static_cast<float>(q)));
        fill(l.ffn_norm, d, dtype::f32, 0.1f, 1.0f);
        fill(l.w_gate, f * d, cfg.type, sd);
        fill(l.w_up, f * d, cfg.type, sd);
        fill(l.w_down, d * f, cfg.type, std::sqrt(3.0f / static_cast<float>(f)));
    }
    fill(m.final_norm, d, dtype::f32, 0.1f, 1.0f);
    fill(m.output, static_cast<std::size_t>(cfg.vocab) * d, cfg.type, sd);
    m.finish();
}

transformer::transformer(model::model_config c, const model::weights& w, transformer_options o)
    : p_(std::make_unique<impl>()) {
    impl& m = *p_;
    m.setup(std::move(c), o);
    const auto& cfg = m.cfg;
    w.check_shapes(cfg);
    const dtype t = cfg.type;
    m.embedding = upload(w.embedding, t);
    m.layers.resize(static_cast<std::size_t>(cfg.layers));
    bool bias = false;
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
        const model::layer_weights& h = w.layers[i];
        layer& l = m.layers[i];
        l.attn_norm = upload(h.attn_norm, dtype::f32);  // norms are f32 on the GPU (kernels::rmsnorm)
        l.wq = upload(h.wq, t);
        l.wk = upload(h.wk, t);
        l.wv = upload(h.wv, t);
        l.wo = upload(h.wo, t);
        l.ffn_norm = upload(h.ffn_norm, dtype::f32);
        l.w_gate = upload(h.w_gate, t);
        l.w_up = upload(h.w_up, t);
        l.w_down = upload(h.w_down, t);
        if (!h.bq.empty()) {
            bias = true;
            l.bq = upload(h.bq, t);
            l.bk = upload(h.bk, t);
            l.bv = upload(h.bv, t);
        }
    }
    m.final_norm = upload(w.final_norm, dtype::f32);
    m.output = upload(w.output, t);
    if (bias) m.ones = upload(std::vector<float>(static_cast<std::size_t>(cfg.context_window), 1.0f), t);
    m.finish();
}

transformer::~transformer() = default;

const model::model_config& transformer::config() const noexcept { return p_->cfg; }
const rope_table& transformer::rope() const noexcept { return p_->rope; }
cudaStream_t transformer::stream() const noexcept { return p_->compute.get(); }
const float* transformer::rope_cos() const noexcept { return p_->rope_cos.as<float>(); }
const float* transformer::rope_sin() const noexcept { return p_->rope_sin.as<float>(); }

void transformer::forward(const paged_kv_view<float>& kv, std::span<const token_id> tokens, bool keys_pre_rope,
                          std::span<float> logits, const layer_hook& before_layer) {
    impl& m = *p_;
    const auto& cfg = m.cfg;
    const std::int64_t n = static_cast<std::int64_t>(tokens.size());
    if (n == 0) throw input_error("cuda::transformer::forward: no tokens");
    for (token_id t : tokens)
        if (t < 0 || t >= cfg.vocab)
            throw input_error("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                              std::to_string(cfg.vocab) + ") of model '" + cfg.name + "'");
    if (logits.size() != static_cast<std::size_t>(cfg.vocab))
        throw input_error("cuda::transformer::forward: logits span must hold vocab floats");
    const std::int64_t base = kv.tokens, total = base + n;
    if (total > cfg.context_window)
        throw input_error("cuda::transformer::forward: " + std::to_string(total) +
                          " tokens exceed the context window of " + std::to_string(cfg.context_window));
    const model_geometry g = cfg.geometry();
    if (kv.layers != cfg.layers || kv.kv_heads != cfg.kv_heads || kv.head_dim != cfg.head_dim ||
        kv.block_tokens != cfg.block_tokens || kv.block_bytes != g.block_bytes())
        throw config_error("cuda::transformer::forward: KV view geometry does not match the model");
    if (!kv.device_memory)
        throw config_error("cuda::transformer::forward: the KV pool is host memory; give the device tier "
                           "cuda::device_memory() (device_tier::config::memory)");
    if (kv.capacity() < total) throw error("cuda::transformer::forward: KV view has no room; reserve first");

    const cudaStream_t s = m.compute.get();
    const std::size_t e = m.esize();
    const std::size_t N = static_cast<std::size_t>(n), D = static_cast<std::size_t>(cfg.dim);
    const std::size_t Q = static_cast<std::size_t>(cfg.heads) * cfg.head_dim;
    const std::size_t KV = static_cast<std::size_t>(cfg.kv_heads) * cfg.head_dim;
    const std::size_t F = static_cast<std::size_t>(cfg.ffn_dim);
    m.x.reserve(N * D * sizeof(float));
    m.xn.reserve(N * D * e);
    m.q.reserve(N * Q * e);
    m.k.reserve(N * KV * e);
    m.v.reserve(N * KV * e);
    m.att.reserve(N * Q * e);
    m.gate.reserve(N * F * e);
    m.up.reserve(N * F * e);
    m.tokens.reserve(N * sizeof(std::int32_t));
    m.table.reserve(kv.table_size * sizeof(std::int32_t));
    // Decode of one sequence leaves most SMs idle: split its keys.
    int splits = 1;
    if (n == 1) {
        const int ctas = cfg.kv_heads;
        splits = m.opt.decode_splits > 0 ? m.opt.decode_splits
                                         : std::max(1, std::min<int>(static_cast<int>((total + 255) / 256),
                                                                     (2 * m.sms + ctas - 1) / ctas));
    }
    m.work.reserve(kernels::attention_workspace_floats(splits, n, cfg.heads, cfg.head_dim) * sizeof(float));

    static_assert(sizeof(token_id) == sizeof(std::int32_t));
    check(cudaMemcpyAsync(m.tokens.get(), tokens.data(), N * sizeof(std::int32_t), cudaMemcpyHostToDevice, s),
          "token upload");
    check(cudaMemcpyAsync(m.table.get(), kv.table, kv.table_size * sizeof(std::int32_t), cudaMemcpyHostToDevice, s),
          "block table upload");
    const kernels::attn_seq seq{m.table.as<std::int32_t>(), base, static_cast<std::int32_t>(n), kv.first_offset, 0};
    check(cudaMemcpyAsync(m.seq.get(), &seq, sizeof(seq), cudaMemcpyHostToDevice, s), "sequence upload");
    // The host structs above are read by the copies: finish them before they go out of scope.
    check(cudaStreamSynchronize(s), "upload");

    // The host queues layers without waiting for them: if a hook or launch throws, work that
    // reads the pool and the block table is still queued. Drain it before the caller may free
    // the session's blocks.
    struct drain_on_unwind {
        cudaStream_t s;
        int exceptions = std::uncaught_exceptions();
        ~drain_on_unwind() {
            if (std::uncaught_exceptions() > exceptions) (void)cudaStreamSynchronize(s);
        }
    } drain{s};
    kernels::embedding(cfg.type, m.tokens.as<std::int32_t>(), n, m.embedding.get(), cfg.dim, m.x.as<float>(), s);
    fence written;  // layer l-1's new K/V are in the pool
    for (int l = 0; l < cfg.layers; ++l) {
        layer& w = m.layers[static_cast<std::size_t>(l)];
        kernels::rmsnorm(cfg.type, m.x.as<float>(), w.attn_norm.as<float>(), m.xn.get(), n, cfg.dim, cfg.norm_eps, s);
        m.gemm(m.xn.get(), w.wq, m.q.get(), n, cfg.dim, static_cast<int>(Q), false, false);
        m.gemm(m.xn.get(), w.wk, m.k.get(), n, cfg.dim, static_cast<int>(KV), false, false);
        m.gemm(m.xn.get(), w.wv, m.v.get(), n, cfg.dim, static_cast<int>(KV), false, false);
        m.add_bias(w.bq, m.q.get(), n, static_cast<int>(Q));
        m.add_bias(w.bk, m.k.get(), n, static_cast<int>(KV));
        m.add_bias(w.bv, m.v.get(), n, static_cast<int>(KV));
        if (before_layer) {
            wait_on(before_layer(l, written), s);  // layer l's history copy, on the GPU
            written.reset();
        }
        kernels::append_args ap;
        ap.type = cfg.type;
        ap.k = m.k.get();
        ap.v = m.v.get();
        ap.pool = kv.pool;
        ap.block_elems = g.block_elems();
        ap.table = m.table.as<std::int32_t>();
        ap.first_offset = kv.first_offset;
        ap.base = base;
        ap.n = static_cast<int>(n);
        ap.layer = l;
        ap.kv_heads = cfg.kv_heads;
        ap.head_dim = cfg.head_dim;
        ap.block_tokens = cfg.block_tokens;
        ap.rope_cos = m.rope_cos.as<float>();
        ap.rope_sin = m.rope_sin.as<float>();
        ap.keys_pre_rope = keys_pre_rope;
        kernels::append_kv(ap, s);
        // What a saver of layer l's new K/V waits on (off this thread).
        if (before_layer) written = std::make_shared<const event_fence>(s);

        kernels::attention_args at;
        at.type = cfg.type;
        at.q = m.q.get();
        at.o = m.att.get();
        at.tokens = n;
        at.pool = kv.pool;
        at.block_elems = g.block_elems();
        at.layer = l;
        at.heads = cfg.heads;
        at.kv_heads = cfg.kv_heads;
        at.head_dim = cfg.head_dim;
        at.block_tokens = cfg.block_tokens;
        at.seqs = m.seq.as<kernels::attn_seq>();
        at.batch = 1;
        at.max_new = static_cast<int>(n);
        at.rope_cos = m.rope_cos.as<float>();
        at.rope_sin = m.rope_sin.as<float>();
        at.rope_q = true;
        at.rope_k = keys_pre_rope;
        at.splits = splits;
        at.workspace = m.work.as<float>();
        kernels::attention(at, s);
        m.gemm(m.att.get(), w.wo, m.x.get(), n, static_cast<int>(Q), cfg.dim, true, true);  // x += att . wo^T

        kernels::rmsnorm(cfg.type, m.x.as<float>(), w.ffn_norm.as<float>(), m.xn.get(), n, cfg.dim, cfg.norm_eps, s);
        m.gemm(m.xn.get(), w.w_gate, m.gate.get(), n, cfg.dim, cfg.ffn_dim, false, false);
        m.gemm(m.xn.get(), w.w_up, m.up.get(), n, cfg.dim, cfg.ffn_dim, false, false);
        kernels::swiglu(cfg.type, m.gate.get(), m.up.get(), m.gate.get(), n * cfg.ffn_dim, s);
        m.gemm(m.gate.get(), w.w_down, m.x.get(), n, cfg.ffn_dim, cfg.dim, true, true);
    }
    kernels::rmsnorm(cfg.type, m.x.as<float>() + (N - 1) * D, m.final_norm.as<float>(), m.xn.get(), 1, cfg.dim,
                     cfg.norm_eps, s);
    m.gemm(m.xn.get(), m.output, m.logits.get(), 1, cfg.dim, cfg.vocab, true, false);
    check(cudaMemcpyAsync(logits.data(), m.logits.get(), logits.size() * sizeof(float), cudaMemcpyDeviceToHost, s),
          "logits download");
    check(cudaStreamSynchronize(s), "forward");
}

}  // namespace cachedattn::cuda
