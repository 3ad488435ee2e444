#pragma once
/// @file
/// @brief The on-disk format of one session's KV, and the cache fingerprint.
///
/// A file is an 80-byte header, the session's token ids (int32) and its KV blocks. The header
/// carries a magic, a format version, the fingerprint (model geometry + weights identity +
/// positional encoding mode), the session id, the layout, an xxHash3 checksum of the payload
/// and one of the header. Decoding checks all of them against what the reader expects, so a
/// corrupt, truncated, stale or foreign file is reported (and treated as a miss), never
/// returned as data.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/kv_entry.hpp"

namespace cachedattn::io {

inline constexpr std::uint32_t kv_file_version = 1;
inline constexpr std::size_t kv_file_header_bytes = 80;

/// @brief Identity of a KV cache's meaning: two caches with different fingerprints must never
/// be mixed. `weights_id` is the weights seed or a hash of the weights file.
std::uint64_t cache_fingerprint(const model_geometry& g, std::uint64_t weights_id,
                                std::uint8_t posenc_tag) noexcept;

/// @brief xxHash3-64 of a byte range.
std::uint64_t checksum(std::span<const std::byte> bytes) noexcept;

/// @brief Bytes of the file that stores an entry with this meta.
std::size_t kv_file_size(const kv_meta& m, const model_geometry& g) noexcept;

/// @brief Serialises an entry. Pre: `e.data.size() == e.meta.blocks(g) * g.block_bytes()`.
std::vector<std::byte> encode_kv_file(const kv_entry& e, const model_geometry& g,
                                      std::uint64_t fingerprint);

enum class decode_status {
    ok,
    too_short,
    bad_magic,
    bad_version,
    bad_header_checksum,
    foreign_fingerprint,
    wrong_session,
    bad_layout,
    bad_size,
    bad_payload_checksum,
};
std::string_view to_string(decode_status s) noexcept;

struct decode_result {
    decode_status status = decode_status::ok;
    std::optional<kv_entry> entry;
};

/// @brief What a file's header says, once verified: enough to index a stored session (its
/// tokens follow the header) without reading its KV.
struct kv_file_header {
    session_id session{};
    std::uint64_t tokens = 0;        ///< token ids right after the header (int32 each)
    std::uint32_t first_offset = 0;
    std::int64_t rope_base = 0;
    std::size_t file_bytes = 0;      ///< the whole file's size as the header describes it
};
struct header_result {
    decode_status status = decode_status::ok;
    kv_file_header header;
};

/// @brief Verifies the first `kv_file_header_bytes` of a file (magic, version, header checksum,
/// fingerprint, layout); the payload is not looked at. A remote tier indexes a store with it.
header_result decode_kv_header(std::span<const std::byte> bytes, const model_geometry& g,
                               std::uint64_t fingerprint);

/// @brief Parses and verifies a file's bytes against the expected fingerprint and session.
decode_result decode_kv_file(std::span<const std::byte> bytes, const model_geometry& g,
                             std::uint64_t fingerprint, session_id expected);

}  // namespace cachedattn::io
