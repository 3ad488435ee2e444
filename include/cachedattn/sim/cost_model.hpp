#pragma once
/// @file
/// @brief The simulator's cost model: how long one layer of a prefill or a decode step takes on
/// a GPU profile (a roofline: the larger of FLOPs at the achieved FLOP rate and bytes at the
/// achieved HBM rate, split over the tensor-parallel GPUs, plus the two all-reduces of the
/// layer's activations that tensor parallelism needs), and how long KV copies take over the
/// host link and the SSDs. FLOPs and bytes are public so tests can check them by hand.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cachedattn/core/error.hpp"
#include "cachedattn/model/config.hpp"
#include "cachedattn/sim/gpu_profile.hpp"

namespace cachedattn::sim {

struct work {
    double flops = 0;
    double bytes = 0;
};

class cost_model {
public:
    cost_model(const model::model_config& m, const gpu_profile& p) : m_(m), p_(p) {
        m_.validate();
        p_.validate();
        const double d = m.dim, q = static_cast<double>(m.heads) * m.head_dim,
                     kv = static_cast<double>(m.kv_heads) * m.head_dim;
        layer_params_ = d * q + 2 * d * kv + q * d + 3 * d * m.ffn_dim;
        elem_ = static_cast<double>(size_of(m.type));
        kv_layer_token_ = 2 * kv * elem_;
        attn_width_ = q;
        act_row_bytes_ = d * elem_;
    }

    // ---------------------------------------------------------------- FLOPs and bytes
    /// One layer of prefilling `n` new tokens after `cached` tokens already in the KV cache
    /// (causal: new token i attends to cached + i + 1 keys).
    work prefill_layer(std::int64_t n, std::int64_t cached) const {
        const double nn = static_cast<double>(n), c = static_cast<double>(cached);
        const double pairs = nn * c + nn * (nn + 1) / 2;
        return {2 * nn * layer_params_ + 4 * attn_width_ * pairs,
                layer_params_ * elem_ + (c + nn) * kv_layer_token_ + nn * kv_layer_token_};
    }
    /// One layer of one decode step for `batch` sequences holding `context` tokens in total
    /// (each sequence's new token attends to its whole context, itself included).
    work decode_layer(std::int64_t batch, std::int64_t context) const {
        const double b = static_cast<double>(batch), t = static_cast<double>(context);
        return {2 * b * layer_params_ + 4 * attn_width_ * t, layer_params_ * elem_ + t * kv_layer_token_};
    }
    /// The output head for `rows` tokens (a prefill needs only its last token's logits).
    work head(std::int64_t rows) const {
        const double r = static_cast<double>(rows), v = static_cast<double>(m_.vocab) * m_.dim;
        return {2 * r * v, v * elem_};
    }

    // ---------------------------------------------------------------- seconds
    double seconds(const work& w) const {
        const double g = p_.gpus;
        return std::max(w.flops / (p_.peak_flops * p_.compute_efficiency * g),
                        w.bytes / (p_.hbm_bytes_per_s * p_.memory_efficiency * g));
    }
    /// The two all-reduces (attention output, MLP output) of one layer over `rows` tokens'
    /// activations with tensor parallelism: a ring moves 2 (g - 1) / g of the bytes over each
    /// GPU's interconnect, plus a fixed cost per all-reduce. 0 on one GPU. Not overlapped with
    /// compute (as in the serving engines of the paper's time).
    double allreduce_layer_s(std::int64_t rows) const {
        if (p_.gpus <= 1) return 0;
        const double g = p_.gpus, bytes = static_cast<double>(rows) * act_row_bytes_;
        return 2 * (p_.allreduce_latency_s + 2 * (g - 1) / g * bytes / p_.allreduce_bytes_per_s);
    }
    double prefill_layer_s(std::int64_t n, std::int64_t cached) const {
        return seconds(prefill_layer(n, cached)) + allreduce_layer_s(n);
    }
    /// A whole prefill: every layer plus the head for the last token.
    double prefill_s(std::int64_t n, std::int64_t cached) const {
        return m_.layers * prefill_layer_s(n, cached) + seconds(head(1));
    }
    double decode_step_s(std::int64_t batch, std::int64_t context) const {
        return m_.layers * (seconds(decode_layer(batch, context)) + allreduce_layer_s(batch)) + seconds(head(batch));
    }
    /// `steps` decode steps whose per-sequence contexts are first, first+1, ... (the batch's
    /// total context `batch` times that): the sum of decode_step_s in closed form.
    double decode_steps_s(std::int64_t batch, std::int64_t first, std::int64_t steps) const {
        return batch_steps_s(batch, batch * first, steps);
    }
    /// `steps` decode steps of a batch of `batch` sequences of any lengths whose contexts add up
    /// to `total` in the first step (each step adds one token to each): the sum of
    /// decode_step_s(batch, total + i * batch) for i < steps, in closed form. A layer's time is
    /// the larger of two lines in the total context (compute, memory), so the range splits at
    /// their crossing and each part is an arithmetic series. This makes a simulated decode O(1)
    /// in its length.
    double batch_steps_s(std::int64_t batch, std::int64_t total, std::int64_t steps) const {
        if (steps <= 0) return 0;
        const double b = static_cast<double>(batch), g = p_.gpus;
        const double fr = p_.peak_flops * p_.compute_efficiency * g, br = p_.hbm_bytes_per_s * p_.memory_efficiency * g;
        // time(t) = max(c0 + c1 t, m0 + m1 t) per layer, t = total context of a step
        const double c0 = 2 * b * layer_params_ / fr, c1 = 4 * attn_width_ / fr;
        const double m0 = layer_params_ * elem_ / br, m1 = kv_layer_token_ / br;
        const double t0 = static_cast<double>(total);
        auto series = [&](double a0, double a1, std::int64_t lo, std::int64_t hi) {  // steps [lo, hi)
            if (hi <= lo) return 0.0;
            const double n = static_cast<double>(hi - lo);
            const double mean_t = t0 + b * (static_cast<double>(lo) + static_cast<double>(hi - 1)) / 2;
            return n * (a0 + a1 * mean_t);
        };
        double layer_sum;
        if (c1 == m1) {
            layer_sum = c0 >= m0 ? series(c0, c1, 0, steps) : series(m0, m1, 0, steps);
        } else {
            // The first step index at which the total context reaches the lines' crossing.
            const double cross_t = (m0 - c0) / (c1 - m1);
            const auto split = static_cast<std::int64_t>(
                std::clamp(std::ceil((cross_t - t0) / b), 0.0, static_cast<double>(steps)));
            // compute >= memory above the crossing if c1 > m1, below it otherwise
            if (c1 > m1) layer_sum = series(m0, m1, 0, split) + series(c0, c1, split, steps);
            else layer_sum = series(c0, c1, 0, split) + series(m0, m1, split, steps);
        }
        return m_.layers * (layer_sum + static_cast<double>(steps) * allreduce_layer_s(batch)) +
               static_cast<double>(steps) * seconds(head(batch));
    }
    /// KV bytes of `tokens` tokens in one layer / in all layers.
    double kv_layer_bytes(std::int64_t tokens) const { return static_cast<double>(tokens) * kv_layer_token_; }
    double kv_bytes(std::int64_t tokens) const { return m_.layers * kv_layer_bytes(tokens); }
    /// Host<->device copy of one layer's KV for `tokens` tokens: every GPU moves its shard over
    /// its own link at the same time.
    double link_layer_s(std::int64_t tokens) const { return kv_layer_bytes(tokens) / (p_.link_bytes_per_s * p_.gpus); }
    double link_s(double bytes) const { return bytes / (p_.link_bytes_per_s * p_.gpus); }
    /// The SSDs are striped: a read or write uses all of them.
    double ssd_read_s(double bytes) const { return bytes / (p_.ssd_read_bytes_per_s * p_.ssds); }
    double ssd_write_s(double bytes) const { return bytes / (p_.ssd_write_bytes_per_s * p_.ssds); }

    const model::model_config& model() const noexcept { return m_; }
    const gpu_profile& profile() const noexcept { return p_; }
    double layer_params() const noexcept { return layer_params_; }
    /// Bytes of model weights per GPU (layers + embedding + head), for HBM budgeting.
    double weight_bytes_per_gpu() const {
        return (m_.layers * layer_params_ + 2.0 * m_.vocab * m_.dim) * elem_ / p_.gpus;
    }

private:
    model::model_config m_;
    gpu_profile p_;
    double layer_params_ = 0, elem_ = 0, kv_layer_token_ = 0, attn_width_ = 0, act_row_bytes_ = 0;
};

}  // namespace cachedattn::sim
