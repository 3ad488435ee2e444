#include "cachedattn/io/kv_file_format.hpp"

#include <xxhash.h>

#include <bit>
#include <cstring>
#include <type_traits>

namespace cachedattn::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "kv files are little-endian; add byte swapping before porting to big-endian hosts");

constexpr std::uint32_t magic = 0x564b4143;  // "CAKV"

struct header {
    std::uint32_t magic;
    std::uint32_t version;
    std::uint64_t fingerprint;
    std::uint64_t session;
    std::uint64_t tokens;
    std::uint32_t first_offset;
    std::uint8_t dtype;
    std::uint8_t pad[3];
    std::int64_t rope_base;
    std::uint64_t blocks;
    std::uint64_t block_bytes;
    std::uint64_t payload_checksum;  // over token ids and blocks
    std::uint64_t header_checksum;   // over the bytes before this field
};
static_assert(sizeof(header) == kv_file_header_bytes && std::is_trivially_copyable_v<header>);
constexpr std::size_t header_checksum_span = offsetof(header, header_checksum);

}  // namespace

std::uint64_t checksum(std::span<const std::byte> bytes) noexcept {
    return XXH3_64bits(bytes.data(), bytes.size());
}

std::uint64_t cache_fingerprint(const model_geometry& g, std::uint64_t weights_id,
                                std::uint8_t posenc_tag) noexcept {
    const std::int64_t fields[] = {g.layers,       g.heads,    g.kv_heads,
                                   g.head_dim,     static_cast<std::int64_t>(g.type),
                                   g.block_tokens, static_cast<std::int64_t>(weights_id),
                                   posenc_tag,     kv_file_version};
    return XXH3_64bits(fields, sizeof(fields));
}

std::size_t kv_file_size(const kv_meta& m, const model_geometry& g) noexcept {
    return kv_file_header_bytes + m.tokens.size() * sizeof(token_id) + m.blocks(g) * g.block_bytes();
}

std::vector<std::byte> encode_kv_file(const kv_entry& e, const model_geometry& g,
                                      std::uint64_t fingerprint) {
    const std::size_t token_bytes = e.meta.tokens.size() * sizeof(token_id);
    std::vector<std::byte> out(kv_file_header_bytes + token_bytes + e.data.size());
    std::byte* payload = out.data() + kv_file_header_bytes;
    if (token_bytes) std::memcpy(payload, e.meta.tokens.data(), token_bytes);
    if (!e.data.empty()) std::memcpy(payload + token_bytes, e.data.data(), e.data.size());

    header h{};
    h.magic = magic;
    h.version = kv_file_version;
    h.fingerprint = fingerprint;
    h.session = e.meta.session.value;
    h.tokens = e.meta.tokens.size();
    h.first_offset = e.meta.first_offset;
    h.dtype = static_cast<std::uint8_t>(g.type);
    h.rope_base = e.meta.rope_base;
    h.blocks = e.meta.blocks(g);
    h.block_bytes = g.block_bytes();
    h.payload_checksum = checksum({payload, token_bytes + e.data.size()});
    h.header_checksum = XXH3_64bits(&h, header_checksum_span);
    std::memcpy(out.data(), &h, sizeof h);
    return out;
}

std::string_view to_string(decode_status s) noexcept {
    switch (s) {
        case decode_status::ok: return "ok";
        case decode_status::too_short: return "file shorter than its header";
        case decode_status::bad_magic: return "not a cachedattn KV file (bad magic)";
        case decode_status::bad_version: return "unsupported format version";
        case decode_status::bad_header_checksum: return "header checksum mismatch";
        case decode_status::foreign_fingerprint: return "written for another model or encoding";
        case decode_status::wrong_session: return "holds another session's KV";
        case decode_status::bad_layout: return "layout does not match the model geometry";
        case decode_status::bad_size: return "file size does not match its header (truncated?)";
        case decode_status::bad_payload_checksum: return "payload checksum mismatch";
    }
    return "?";
}

header_result decode_kv_header(std::span<const std::byte> bytes, const model_geometry& g,
                               std::uint64_t fingerprint) {
    if (bytes.size() < kv_file_header_bytes) return {decode_status::too_short, {}};
    header h{};
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.magic != magic) return {decode_status::bad_magic, {}};
    if (h.version != kv_file_version) return {decode_status::bad_version, {}};
    if (h.header_checksum != XXH3_64bits(&h, header_checksum_span))
        return {decode_status::bad_header_checksum, {}};
    if (h.fingerprint != fingerprint) return {decode_status::foreign_fingerprint, {}};
    if (h.dtype != static_cast<std::uint8_t>(g.type) || h.block_bytes != g.block_bytes() ||
        h.first_offset >= static_cast<std::uint64_t>(g.block_tokens) ||
        h.tokens > (std::uint64_t{1} << 40) || h.blocks != g.blocks_for(h.tokens, h.first_offset))
        return {decode_status::bad_layout, {}};
    kv_file_header out;
    out.session = session_id{h.session};
    out.tokens = h.tokens;
    out.first_offset = h.first_offset;
    out.rope_base = h.rope_base;
    out.file_bytes = kv_file_header_bytes + h.tokens * sizeof(token_id) + h.blocks * h.block_bytes;
    return {decode_status::ok, out};
}

decode_result decode_kv_file(std::span<const std::byte> bytes, const model_geometry& g,
                             std::uint64_t fingerprint, session_id expected) {
    const header_result hr = decode_kv_header(bytes, g, fingerprint);
    if (hr.status != decode_status::ok) return {hr.status, {}};
    const kv_file_header& h = hr.header;
    if (h.session != expected) return {decode_status::wrong_session, {}};
    if (bytes.size() != h.file_bytes) return {decode_status::bad_size, {}};
    header raw{};
    std::memcpy(&raw, bytes.data(), sizeof raw);
    const std::size_t token_bytes = h.tokens * sizeof(token_id);
    const std::byte* payload = bytes.data() + kv_file_header_bytes;
    if (checksum({payload, h.file_bytes - kv_file_header_bytes}) != raw.payload_checksum)
        return {decode_status::bad_payload_checksum, {}};

    kv_entry e;
    e.meta.session = expected;
    e.meta.tokens.resize(h.tokens);
    if (token_bytes) std::memcpy(e.meta.tokens.data(), payload, token_bytes);
    e.meta.first_offset = h.first_offset;
    e.meta.rope_base = h.rope_base;
    e.data.assign(payload + token_bytes, bytes.data() + h.file_bytes);
    return {decode_status::ok, std::move(e)};
}

}  // namespace cachedattn::io
