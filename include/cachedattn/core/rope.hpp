#pragma once
/// @file
/// @brief Rotary position embedding (RoPE, Su et al.) in the LLaMA "rotate half" pairing:
/// element i pairs with element i + head_dim/2 and rotates by pos * theta^(-2i/head_dim).
#include <cmath>
#include <cstdint>
#include <vector>

namespace cachedattn {

struct rope_params {
    float theta = 10000.0f;
};

/// @brief cos/sin of every (position, frequency) pair for positions [0, positions).
/// Rotation by a table entry is what both the model and re-rotation policies use, so the
/// numbers agree bit for bit.
class rope_table {
public:
    rope_table() = default;
    rope_table(int head_dim, std::int64_t positions, rope_params p) { build(head_dim, positions, p); }

    void build(int head_dim, std::int64_t positions, rope_params p) {
        half_ = head_dim / 2;
        params_ = p;
        cos_.resize(static_cast<std::size_t>(positions) * half_);
        sin_.resize(cos_.size());
        for (std::int64_t pos = 0; pos < positions; ++pos)
            for (int i = 0; i < half_; ++i) {
                const double inv_freq = std::pow(static_cast<double>(p.theta), -2.0 * i / head_dim);
                const double a = static_cast<double>(pos) * inv_freq;
                cos_[static_cast<std::size_t>(pos) * half_ + i] = static_cast<float>(std::cos(a));
                sin_[static_cast<std::size_t>(pos) * half_ + i] = static_cast<float>(std::sin(a));
            }
        positions_ = positions;
    }
    std::int64_t positions() const noexcept { return positions_; }

    /// Rotates `x[0, 2*half)` in place to position `pos` (pos may be negative: inverse rotation).
    void rotate(float* x, std::int64_t pos) const noexcept {
        const bool inverse = pos < 0;
        const std::size_t row = static_cast<std::size_t>(inverse ? -pos : pos) * half_;
        const float* c = cos_.data() + row;
        const float* s = sin_.data() + row;
        for (int i = 0; i < half_; ++i) {
            const float sn = inverse ? -s[i] : s[i];
            const float a = x[i], b = x[i + half_];
            x[i] = a * c[i] - b * sn;
            x[i + half_] = a * sn + b * c[i];
        }
    }
    /// Rotated copy: `out = rotate(in, pos)`.
    void rotate_into(const float* in, float* out, std::int64_t pos) const noexcept {
        const std::size_t row = static_cast<std::size_t>(pos) * half_;
        const float* c = cos_.data() + row;
        const float* s = sin_.data() + row;
        for (int i = 0; i < half_; ++i) {
            const float a = in[i], b = in[i + half_];
            out[i] = a * c[i] - b * s[i];
            out[i + half_] = a * s[i] + b * c[i];
        }
    }
    rope_params params() const noexcept { return params_; }
    /// The raw tables, `[position][head_dim/2]` (what GPU kernels upload).
    const std::vector<float>& cos_table() const noexcept { return cos_; }
    const std::vector<float>& sin_table() const noexcept { return sin_; }

private:
    int half_ = 0;
    std::int64_t positions_ = 0;
    rope_params params_{};
    std::vector<float> cos_, sin_;
};

}  // namespace cachedattn
