#pragma once
/// @file
/// @brief IEEE binary16 (f16) and bfloat16 (bf16) to and from float on the host, bit-exact:
/// round to nearest even, subnormals kept, overflow to infinity, NaN kept NaN (its payload
/// too, so a 16-bit value read as float and written back is the same bits). Checkpoints store
/// weights in these types; the CPU reference widens them, the CUDA backend narrows its f32
/// weights to them before upload.
#include <bit>
#include <cmath>
#include <cstdint>

#include "cachedattn/core/geometry.hpp"

namespace cachedattn {

inline float f16_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
        const float v = std::ldexp(static_cast<float>(man), -24);
        return sign ? -v : v;
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf / NaN
    return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));       // rebias 15 -> 127
}

inline std::uint16_t float_to_f16(float f) noexcept {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
    const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) {  // NaN: keep the top payload bits, never turn it into infinity
        std::uint32_t m = (abs >> 13) & 0x3ffu;
        if (m == 0) m = 0x200u;
        return static_cast<std::uint16_t>(sign | 0x7c00u | m);
    }
    // 65520 is halfway between the largest f16 (65504, odd mantissa) and 2^16: it and all
    // above round to infinity.
    if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (abs < 0x38800000u) {  // below 2^-14: an f16 subnormal (or zero), q = round(|f| * 2^24)
        const std::uint32_t e = abs >> 23;
        if (e < 102) return sign;  // |f| < 2^-25 rounds to zero (2^-25 itself ties to even 0)
        const std::uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126 - e;  // |f| * 2^24 = m * 2^-(126 - e), shift in [14, 24]
        std::uint32_t q = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;  // q == 1024 encodes 2^-14: still right
        return static_cast<std::uint16_t>(sign | q);
    }
    std::uint32_t r = (abs >> 13) - (112u << 10);  // rebias 127 -> 15, drop 13 mantissa bits
    const std::uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is right
    return static_cast<std::uint16_t>(sign | r);
}

inline float bf16_to_float(std::uint16_t h) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

inline std::uint16_t float_to_bf16(float f) noexcept {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: truncate, but keep a mantissa bit set
        auto r = static_cast<std::uint16_t>(bits >> 16);
        if ((r & 0x7fu) == 0) r |= 0x40u;
        return r;
    }
    return static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

/// `f` rounded to `t` and widened back (the value a model stored in `t` computes with).
inline float round_to(dtype t, float f) noexcept {
    switch (t) {
        case dtype::f16: return f16_to_float(float_to_f16(f));
        case dtype::bf16: return bf16_to_float(float_to_bf16(f));
        case dtype::f32: break;
    }
    return f;
}

}  // namespace cachedattn
