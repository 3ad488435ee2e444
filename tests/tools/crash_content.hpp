#pragma once
// The crash test's content rule, shared by the writer and the checker.
#include <cachedattn/core/kv_entry.hpp>
#include <cstdint>

namespace crash {
inline const cachedattn::model_geometry G{2, 4, 2, 8, cachedattn::dtype::f32, 4};
inline constexpr std::uint64_t fingerprint = 0xc4a54;
inline constexpr std::uint64_t sessions = 6;

/// Version n of session s: n + 1 tokens; every byte follows from (s, n, position).
inline cachedattn::kv_entry entry(std::uint64_t s, std::uint64_t n) {
    cachedattn::kv_entry e;
    e.meta.session = cachedattn::session_id{s};
    for (std::uint64_t i = 0; i <= n; ++i) e.meta.tokens.push_back(static_cast<cachedattn::token_id>(s * 1000 + n));
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>((i * 13 + s * 7 + n) & 0xff);
    return e;
}
}  // namespace crash
