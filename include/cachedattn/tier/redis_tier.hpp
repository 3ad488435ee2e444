#pragma once
/// @file
/// @brief The remote tier: sessions' KV in a Redis server, shared by every engine process that
/// uses the same server and key prefix (the "remote store" row of the tier table in DESIGN.md).
/// Not in the umbrella header: include it and link `cachedattn::redis` (hiredis).
///
/// Storage. Session s is one string value at `<prefix>:session:<s>`, encoded exactly like a
/// file_tier file (io/kv_file_format.hpp: header, fingerprint, checksums), so a damaged, stale
/// or foreign value is a miss (`take` returns nullopt, counted), never wrong data.
///
/// Capacity across processes. `<prefix>:used` on the server counts the bytes of every value
/// under the prefix; put, take and erase are small Lua scripts that change a value and the
/// counter atomically, and put refuses (counted in `puts_refused`) when the counter would pass
/// this tier's capacity. The KV bytes travel in 1 MiB slices through a private staging key
/// (`<prefix>:staging:...`, with a TTL) that a script renames into or out of place, so the
/// scripts stay small and the client avoids hiredis 0.14's slow path for large values; a value
/// in transit is not counted yet (or any more). Locally the tier keeps the concept's accounting: `used_bytes()` is the sum
/// of what it holds (what it put and what it adopted), and `put` throws only when that local
/// precondition is broken. `free_bytes()` is also lowered by what the server last said is used,
/// so a hierarchy makes room for other processes' sessions too.
///
/// Sharing. On construction (and on `refresh()`) the tier scans the prefix, reads only each
/// value's header and token ids (GETRANGE), and adopts the sessions written for the same
/// fingerprint, so a session one process put can be taken by another. `take` removes the value
/// from the server: a session another process already took is a miss (`missing`). Session ids
/// name one conversation across all processes under a prefix; give disjoint id spaces their own
/// prefixes. Inside a `kv_hierarchy` (this is a tier::shared_tier) the sessions held at
/// construction enter the hierarchy's directory, and on a miss the engine asks `adopt(s)`, so
/// one engine process serves a turn from KV another one stored (engine::resume gives it the
/// conversation so far).
///
/// Failures. A down, unreachable or stalled server is a miss: every call waits at most the
/// connect plus the command timeout (io/redis_connection.hpp), the next call reconnects, and
/// failures are counted (`connect_failures`, `command_errors`). A put that does not reach the
/// server is kept in the index and becomes a miss at `take`, exactly like file_tier's failed
/// write (disk full): the concept's postcondition `contains(s)` holds and the hierarchy counts a
/// damaged copy. Values are never given a TTL: a value left by a crashed process stays until
/// some tier takes or erases it (it is still a valid cache for that session).
///
/// Threads: like file_tier, one thread at a time (the engine's); the hierarchy never calls tiers
/// from its copy streams.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/io/redis_connection.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn::tier {

/// @brief What went wrong or was shared, since construction.
struct redis_tier_stats {
    std::size_t puts_refused = 0;  ///< put refused: the shared counter would pass the capacity
    std::size_t puts_failed = 0;   ///< put that did not reach the server (dropped, a miss later)
    std::size_t missing = 0;       ///< take found no value (taken elsewhere, refused or failed put)
    std::size_t damaged = 0;       ///< take found a value that failed a check
    std::size_t take_failures = 0; ///< take that could not reach the server (a miss)
    std::size_t adopted = 0;       ///< sessions another process put, adopted by refresh()
};

class redis_tier {
public:
    struct config {
        std::string host = "127.0.0.1";
        int port = 6379;
        std::string key_prefix = "cachedattn";  ///< tiers with the same server and prefix share sessions
        std::size_t capacity_bytes = 0;         ///< of the whole prefix, enforced on the server
        int connect_timeout_ms = 200;
        int command_timeout_ms = 2000;  ///< covers the largest value (~0.1 s for 64 MiB on loopback)
        int retry_after_ms = 1000;      ///< after a failed connect, calls within this are misses at once
        bool adopt_existing = true;     ///< refresh() on construction
    };
    static constexpr std::string_view name = "redis";

    /// Throws config_error for a bad config; an unreachable server is not an error (misses).
    redis_tier(const config& c, const tier_init& init);

    std::size_t capacity_bytes() const noexcept { return cfg_.capacity_bytes; }
    std::size_t used_bytes() const noexcept { return used_; }
    std::size_t free_bytes() const noexcept;
    bool contains(session_id s) const { return index_.contains(s); }
    std::size_t sessions() const noexcept { return index_.size(); }
    std::size_t charge(const kv_meta& m) const noexcept;
    std::size_t stored_bytes(session_id s) const { return get(s).bytes; }
    const kv_meta& meta(session_id s) const { return get(s).meta; }

    void put(kv_entry&& e);
    std::optional<kv_entry> take(session_id s);
    void erase(session_id s);

    /// What one refresh changed.
    struct refresh_result {
        std::size_t adopted = 0;    ///< sessions newly visible (or rewritten) under the prefix
        std::size_t forgotten = 0;  ///< adopted sessions whose value is gone (taken elsewhere)
        std::size_t skipped = 0;    ///< values of another fingerprint, damaged, or over capacity
        bool complete = true;       ///< false when the server failed mid-scan
    };
    /// Re-reads the prefix's index from the server: adopts sessions other processes put,
    /// forgets adopted ones that are gone. Sessions this tier put itself are left alone (the
    /// caller placed them; a value gone from under them is a miss at take).
    refresh_result refresh();

    /// Adopts session `s` if another process stored it under the prefix (one lookup; what a
    /// hierarchy asks on a miss). False when absent, already held, of another model, damaged,
    /// over capacity, or when the server is down.
    bool adopt(session_id s);
    /// The sessions held now: what a hierarchy built over this tier places in its directory.
    std::vector<session_id> held() const;

    const redis_tier_stats& stats() const noexcept { return stats_; }
    std::size_t connect_failures() const noexcept { return conn_.connect_failures(); }
    std::size_t command_errors() const noexcept { return conn_.command_errors(); }
    /// Why the last failed command, refused put or damaged take went wrong.
    const std::string& last_error() const noexcept { return last_error_; }
    /// The server's byte counter for the prefix, as the last command saw it.
    std::size_t shared_used_bytes() const noexcept { return shared_used_; }
    bool connected() const noexcept { return conn_.connected(); }
    std::string key_of(session_id s) const;
    std::string used_key() const { return cfg_.key_prefix + ":used"; }

private:
    struct record {
        kv_meta meta;
        std::size_t bytes = 0;
        bool adopted = false;  ///< put by another process, found by refresh()
        std::string header;    ///< the value's file header: take and erase act only on this value
    };
    std::optional<record> read_index_entry(const std::string& key, session_id s);
    /// A key no other tier uses, for a value on its way in or out.
    std::string staging_key();
    /// Writes `bytes` to `staged` in slices (with a TTL); false when the server failed.
    bool upload(const std::string& staged, std::span<const std::byte> bytes);
    /// Reads `size` bytes of `staged` in slices and deletes it; nullopt when the server failed.
    std::optional<std::vector<std::byte>> download(const std::string& staged, std::size_t size);
    void note_failure();
    void forget(std::unordered_map<session_id, record>::iterator it);
    const record& get(session_id s) const;

    model_geometry g_;
    std::uint64_t fingerprint_;
    config cfg_;
    io::redis_connection conn_;
    std::unordered_map<session_id, record> index_;
    std::size_t used_ = 0;
    std::size_t shared_used_ = 0;
    redis_tier_stats stats_;
    std::string last_error_;
    std::uint64_t nonce_ = 0;   ///< random per tier: staging keys of two processes never meet
    std::uint64_t staged_ = 0;  ///< staging keys made so far
};
static_assert(shared_tier<redis_tier>);

}  // namespace cachedattn::tier
