#include "cachedattn/tier/redis_tier.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "cachedattn/core/error.hpp"
#include "cachedattn/io/kv_file_format.hpp"

namespace cachedattn::tier {
namespace {

// Each script changes a value and the prefix's byte counter together (Redis runs a script
// atomically), so concurrent processes never see one without the other; every script returns
// the counter after it ran. The KV bytes never pass through a script: a put uploads them to a
// private staging key in slices and a script then renames it into place, and a take renames
// the value to a staging key and downloads it from there. hiredis 0.14 grows its buffers in
// 1 MiB steps and moves the unsent rest after every write, so one 64 MiB command costs it
// quadratic copying; 1 MiB slices measured 2-3x faster than whole values (bench/tier).
constexpr std::size_t slice_bytes = std::size_t{1} << 20;
/// A staging key left by a crash or a lost connection expires on its own; the counter never
/// counted it.
constexpr std::string_view staging_ttl_ms = "60000";

/// KEYS[1] staged value, KEYS[2] session key, KEYS[3] counter; ARGV[1] capacity, ARGV[2] the
/// value's size -> {1 stored | 0 refused | 2 the staged value is not whole (it expired during a
/// slow upload and a later slice recreated it), used}. Replacing a value (the same session put
/// by another process) charges the difference.
constexpr std::string_view put_script = R"lua(
local size = redis.call('STRLEN', KEYS[1])
local old = redis.call('STRLEN', KEYS[2])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if size ~= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {2, used}
end
if used - old + size > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {0, used}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
return {1, redis.call('INCRBY', KEYS[3], size - old)}
)lua";

/// KEYS[1] session key, KEYS[2] counter, KEYS[3] staging key; ARGV[1] staging TTL, ARGV[2] the
/// header of the value this tier holds -> {used, bytes}; bytes 0: that value is gone (another
/// process took it, or replaced it with a newer one, which stays for its owner).
constexpr std::string_view take_script = R"lua(
local n = redis.call('STRLEN', KEYS[1])
if n == 0 or redis.call('GETRANGE', KEYS[1], 0, #ARGV[2] - 1) ~= ARGV[2] then
  return {tonumber(redis.call('GET', KEYS[2]) or '0'), 0}
end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return {redis.call('DECRBY', KEYS[2], n), n}
)lua";

/// KEYS[1] session key, KEYS[2] counter; ARGV[1] the header of the value this tier holds -> used.
/// A value another process replaced is not this tier's to delete.
constexpr std::string_view erase_script = R"lua(
local n = redis.call('STRLEN', KEYS[1])
if n > 0 and redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return redis.call('DECRBY', KEYS[2], n)
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
)lua";

/// The file header of an encoded value: names the value (its payload checksum included), so a
/// tier deletes or takes only the value it put or adopted.
std::string header_of(std::span<const std::byte> encoded) {
    return {reinterpret_cast<const char*>(encoded.data()), std::min(encoded.size(), io::kv_file_header_bytes)};
}

std::size_t as_size(const redisReply* r) {
    if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? static_cast<std::size_t>(r->integer) : 0;
    std::size_t v = 0;
    if (r->type == REDIS_REPLY_STRING) std::from_chars(r->str, r->str + r->len, v);
    return v;
}

std::span<const std::byte> as_bytes(const redisReply* r) {
    return {reinterpret_cast<const std::byte*>(r->str), r->len};
}

bool same_meta(const kv_meta& a, const kv_meta& b) {
    return a.session == b.session && a.tokens == b.tokens && a.first_offset == b.first_offset &&
           a.rope_base == b.rope_base;
}

/// SCAN's MATCH is a glob: a prefix with *, ?, [ or \ must match only itself.
std::string glob_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

io::redis_endpoint endpoint_of(const redis_tier::config& c) {
    return {c.host, c.port, c.connect_timeout_ms, c.command_timeout_ms, c.retry_after_ms};
}

const redis_tier::config& validated(const redis_tier::config& c) {
    if (c.capacity_bytes == 0) throw config_error("redis_tier: capacity_bytes must be > 0");
    if (c.host.empty()) throw config_error("redis_tier: host must be set");
    if (c.port <= 0 || c.port > 65535) throw config_error("redis_tier: port must be in 1..65535");
    if (c.key_prefix.empty()) throw config_error("redis_tier: key_prefix must be set");
    if (c.connect_timeout_ms <= 0 || c.command_timeout_ms <= 0 || c.retry_after_ms < 0)
        throw config_error("redis_tier: timeouts must be > 0 ms (a zero timeout would wait forever)");
    return c;
}

}  // namespace

redis_tier::redis_tier(const config& c, const tier_init& init)
    : g_(init.geometry), fingerprint_(init.fingerprint), cfg_(validated(c)), conn_(endpoint_of(c)),
      nonce_([] {
          std::random_device rd;
          return (std::uint64_t{rd()} << 32) ^ rd();
      }()) {
    g_.validate();
    if (!conn_.connected()) last_error_ = conn_.last_error();
    if (cfg_.adopt_existing) refresh();
}

std::size_t redis_tier::free_bytes() const noexcept {
    return cfg_.capacity_bytes - std::min(cfg_.capacity_bytes, std::max(used_, shared_used_));
}

std::size_t redis_tier::charge(const kv_meta& m) const noexcept { return io::kv_file_size(m, g_); }

std::string redis_tier::key_of(session_id s) const { return cfg_.key_prefix + ":session:" + std::to_string(s.value); }

void redis_tier::note_failure() { last_error_ = conn_.last_error(); }

void redis_tier::put(kv_entry&& e) {
    const session_id s = e.meta.session;
    const std::size_t bytes = charge(e.meta);
    if (contains(s)) throw error("redis_tier: put of a session already stored");
    if (bytes > cfg_.capacity_bytes - used_)
        throw error("redis_tier: put over capacity (the hierarchy must make room first)");
    if (e.data.size() != e.meta.blocks(g_) * g_.block_bytes())
        throw error("redis_tier: put of an entry with a malformed payload");
    const auto encoded = io::encode_kv_file(e, g_, fingerprint_);
    const std::string key = key_of(s), staged = staging_key();
    const auto reply = upload(staged, encoded)
                           ? conn_.command({"EVAL", put_script, "3", staged, key, used_key(),
                                            std::to_string(cfg_.capacity_bytes), std::to_string(encoded.size())})
                           : io::redis_reply{};
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        ++stats_.puts_failed;  // dropped, like a file tier's failed write: a miss at take
        note_failure();
    } else {
        shared_used_ = as_size(reply->element[1]);
        if (as_size(reply->element[0]) == 2) {
            ++stats_.puts_failed;
            last_error_ = "put of session " + std::to_string(s.value) + " failed: the staged value expired mid-upload";
        } else if (as_size(reply->element[0]) != 1) {
            ++stats_.puts_refused;
            last_error_ = "put of session " + std::to_string(s.value) + " refused: " + std::to_string(shared_used_) +
                          " of " + std::to_string(cfg_.capacity_bytes) + " bytes used under '" + cfg_.key_prefix + "'";
        }
    }
    // Indexed whatever happened: the concept's postcondition is contains(s).
    used_ += bytes;
    index_.insert_or_assign(s, record{std::move(e.meta), bytes, false, header_of(encoded)});
}

std::optional<kv_entry> redis_tier::take(session_id s) {
    auto it = index_.find(s);
    if (it == index_.end()) throw error("redis_tier: session not stored");
    const std::string staged = staging_key();
    const auto reply =
        conn_.command({"EVAL", take_script, "3", key_of(s), used_key(), staged, staging_ttl_ms, it->second.header});
    std::optional<kv_entry> out;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        ++stats_.take_failures;
        note_failure();
    } else if (shared_used_ = as_size(reply->element[0]); as_size(reply->element[1]) == 0) {
        ++stats_.missing;
        last_error_ = "session " + std::to_string(s.value) + " is not in the store, or holds a value this tier did not put (taken or replaced elsewhere)";
    } else if (const auto bytes = download(staged, as_size(reply->element[1]))) {
        auto res = io::decode_kv_file(*bytes, g_, fingerprint_, s);
        if (res.status != io::decode_status::ok) last_error_ = std::string(io::to_string(res.status));
        else if (!same_meta(res.entry->meta, it->second.meta))
            last_error_ = "holds different tokens than were stored (overwritten?)";
        else out = std::move(res.entry);
        if (!out) ++stats_.damaged;
    } else {
        ++stats_.take_failures;  // the staging key expires by itself
        note_failure();
    }
    forget(it);
    return out;
}

void redis_tier::erase(session_id s) {
    auto it = index_.find(s);
    if (it == index_.end()) throw error("redis_tier: session not stored");
    const std::string key = key_of(s), used = used_key();
    if (const auto reply = conn_.command({"EVAL", erase_script, "2", key, used, it->second.header}))
        shared_used_ = as_size(reply.get());
    else note_failure();  // the value stays on the server, still a valid cache for the session
    forget(it);
}

std::string redis_tier::staging_key() {
    return cfg_.key_prefix + ":staging:" + std::to_string(nonce_) + "-" + std::to_string(++staged_);
}

bool redis_tier::upload(const std::string& staged, std::span<const std::byte> bytes) {
    const auto slice = [&](std::size_t off) {
        const auto n = std::min(slice_bytes, bytes.size() - off);
        return std::string_view(reinterpret_cast<const char*>(bytes.data()) + off, n);
    };
    const auto put_slice = [&](std::size_t off) {
        return conn_.command({"SETRANGE", staged, std::to_string(off), slice(off)}) != nullptr;
    };
    if (!conn_.command({"SET", staged, slice(0), "PX", staging_ttl_ms})) return false;
    // The last slice first: the server sizes the string once. Appending in order makes it
    // grow by 1 MiB at a time, copying the whole value each time (measured 3x slower at 64 MiB).
    const std::size_t last = (bytes.size() - 1) / slice_bytes * slice_bytes;
    if (last > 0 && !put_slice(last)) return false;
    for (std::size_t off = slice_bytes; off < last; off += slice_bytes)
        if (!put_slice(off)) return false;
    return true;
}

std::optional<std::vector<std::byte>> redis_tier::download(const std::string& staged, std::size_t size) {
    std::vector<std::byte> out;
    out.reserve(size);
    for (std::size_t off = 0; off < size; off += slice_bytes) {
        const auto last = std::min(size, off + slice_bytes) - 1;
        const auto part = conn_.command({"GETRANGE", staged, std::to_string(off), std::to_string(last)});
        if (!part || part->type != REDIS_REPLY_STRING) return std::nullopt;
        const auto b = as_bytes(part.get());
        out.insert(out.end(), b.begin(), b.end());
    }
    conn_.command({"DEL", staged});  // best effort: it expires anyway
    return out;
}

void redis_tier::forget(std::unordered_map<session_id, record>::iterator it) {
    used_ -= it->second.bytes;
    index_.erase(it);
}

const redis_tier::record& redis_tier::get(session_id s) const {
    auto it = index_.find(s);
    if (it == index_.end()) throw error("redis_tier: session not stored");
    return it->second;
}

std::optional<redis_tier::record> redis_tier::read_index_entry(const std::string& key, session_id s) {
    const std::string last = std::to_string(io::kv_file_header_bytes - 1);
    const auto head = conn_.command({"GETRANGE", key, "0", last});
    if (!head || head->type != REDIS_REPLY_STRING) return std::nullopt;
    const auto h = io::decode_kv_header(as_bytes(head.get()), g_, fingerprint_);
    if (h.status != io::decode_status::ok || h.header.session != s) return std::nullopt;
    record r;
    r.meta.session = s;
    r.meta.first_offset = h.header.first_offset;
    r.meta.rope_base = h.header.rope_base;
    r.bytes = h.header.file_bytes;
    r.adopted = true;
    r.header.assign(head->str, head->len);
    if (h.header.tokens > 0) {
        const std::size_t first = io::kv_file_header_bytes, n = h.header.tokens * sizeof(token_id);
        const auto toks = conn_.command({"GETRANGE", key, std::to_string(first), std::to_string(first + n - 1)});
        if (!toks || toks->type != REDIS_REPLY_STRING || toks->len != n) return std::nullopt;
        r.meta.tokens.resize(h.header.tokens);
        std::memcpy(r.meta.tokens.data(), toks->str, n);
    }
    return r;
}

bool redis_tier::adopt(session_id s) {
    if (index_.contains(s)) return false;
    auto rec = read_index_entry(key_of(s), s);
    if (!rec || rec->bytes > cfg_.capacity_bytes - used_) return false;
    used_ += rec->bytes;
    index_.emplace(s, std::move(*rec));
    ++stats_.adopted;
    return true;
}

std::vector<session_id> redis_tier::held() const {
    std::vector<session_id> out;
    out.reserve(index_.size());
    for (const auto& [s, r] : index_) out.push_back(s);
    return out;
}

redis_tier::refresh_result redis_tier::refresh() {
    refresh_result out;
    const std::string session_prefix = cfg_.key_prefix + ":session:";
    const std::string pattern = glob_escape(session_prefix) + "*";
    std::unordered_set<session_id> seen;
    std::string cursor = "0";
    do {
        const auto page = conn_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[1]->type != REDIS_REPLY_ARRAY) {
            out.complete = false;
            note_failure();
            return out;  // a partial scan forgets nothing: absence was not observed
        }
        cursor.assign(page->element[0]->str, page->element[0]->len);
        const redisReply* keys = page->element[1];
        for (std::size_t i = 0; i < keys->elements; ++i) {
            const redisReply* k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len <= session_prefix.size()) continue;
            const std::string key(k->str, k->len);
            std::uint64_t id = 0;
            const char* digits = key.data() + session_prefix.size();
            const auto [end, ec] = std::from_chars(digits, key.data() + key.size(), id);
            if (ec != std::errc{} || end != key.data() + key.size()) continue;  // not a name this tier writes
            const session_id s{id};
            seen.insert(s);
            auto it = index_.find(s);
            if (it != index_.end() && !it->second.adopted) continue;  // ours: the caller tracks it
            auto rec = read_index_entry(key, s);
            if (!rec && !conn_.connected()) {  // the server failed: every further key would wait too
                out.complete = false;
                note_failure();
                return out;
            }
            if (it != index_.end() && rec && same_meta(rec->meta, it->second.meta)) continue;  // unchanged
            if (it != index_.end()) {
                forget(it);  // rewritten by another process (or now unreadable): re-adopt below
                ++out.forgotten;
            }
            if (!rec || rec->bytes > cfg_.capacity_bytes - used_) {
                ++out.skipped;
                continue;
            }
            used_ += rec->bytes;
            index_.emplace(s, std::move(*rec));
            ++out.adopted;
            ++stats_.adopted;
        }
    } while (cursor != "0");
    for (auto it = index_.begin(); it != index_.end();) {
        auto next = std::next(it);
        if (it->second.adopted && !seen.contains(it->first)) {
            forget(it);
            ++out.forgotten;
        }
        it = next;
    }
    if (const auto used = conn_.command({"GET", used_key()})) shared_used_ = as_size(used.get());
    return out;
}

}  // namespace cachedattn::tier
