#pragma once
/// @file
/// @brief The file tier ("SSD"): one file per session in a directory, written and read through
/// the asynchronous I/O layer (io_uring or a thread pool), published atomically.
///
/// `put` encodes the entry and queues its write without waiting, so demotion to SSD does not
/// block the turn; `take` and `erase` first wait for that session's pending write. Capacity is
/// charged by exact file size (header + token ids + blocks). A file that fails to write, cannot
/// be read back, or fails any header/checksum/fingerprint check is counted in `damaged()` and
/// reported as a miss: `take` returns nullopt, never wrong data.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "cachedattn/core/error.hpp"
#include "cachedattn/io/file_io.hpp"
#include "cachedattn/io/kv_file_format.hpp"
#include "cachedattn/tier/concept.hpp"

namespace cachedattn::tier {

class file_tier {
public:
    struct config {
        std::filesystem::path directory;
        std::size_t capacity_bytes = 0;
        io::io_mode io = io::io_mode::automatic;
        bool keep_files = false;  ///< leave the files behind when the tier is destroyed
    };
    static constexpr std::string_view name = "file";

    file_tier(const config& c, const tier_init& init)
        : g_(init.geometry), fingerprint_(init.fingerprint), cfg_(c) {
        g_.validate();
        if (c.capacity_bytes == 0) throw config_error("file_tier: capacity_bytes must be > 0");
        if (c.directory.empty()) throw config_error("file_tier: directory must be set");
        std::error_code ec;
        std::filesystem::create_directories(c.directory, ec);
        if (ec || !std::filesystem::is_directory(c.directory))
            throw io_error("file_tier: cannot create cache directory '" + c.directory.string() +
                           "': " + (ec ? ec.message() : std::string("not a directory")));
        const auto probe = c.directory / ".cachedattn-write-probe";
        {
            std::ofstream f(probe, std::ios::binary | std::ios::trunc);
            f << "probe";
            f.flush();
            if (!f)
                throw io_error("file_tier: cache directory '" + c.directory.string() + "' is not writable");
        }
        std::filesystem::remove(probe, ec);
        // One tier per directory: a second one would overwrite and delete this one's files.
        const auto lock_path = c.directory / ".cachedattn.lock";
        lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            if (lock_fd_ >= 0) ::close(lock_fd_);
            throw io_error("file_tier: cache directory '" + c.directory.string() +
                           "' is in use by another file_tier (give each its own directory)");
        }
        io_ = io::make_file_io(c.io);
    }
    file_tier(const file_tier&) = delete;
    file_tier& operator=(const file_tier&) = delete;
    file_tier(file_tier&& o) noexcept
        : g_(o.g_), fingerprint_(o.fingerprint_), cfg_(std::move(o.cfg_)), io_(std::move(o.io_)),
          index_(std::exchange(o.index_, {})), used_(std::exchange(o.used_, 0)),
          damaged_(o.damaged_), last_damage_(std::move(o.last_damage_)), lock_fd_(std::exchange(o.lock_fd_, -1)) {}
    file_tier& operator=(file_tier&&) = delete;
    ~file_tier() {
        for (auto& [s, rec] : index_) {
            wait(rec);
            if (!cfg_.keep_files) remove_file(s);
        }
        if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
    }

    std::size_t capacity_bytes() const noexcept { return cfg_.capacity_bytes; }
    std::size_t used_bytes() const noexcept { return used_; }
    std::size_t free_bytes() const noexcept { return cfg_.capacity_bytes - used_; }
    bool contains(session_id s) const { return index_.contains(s); }
    std::size_t sessions() const noexcept { return index_.size(); }
    std::size_t charge(const kv_meta& m) const noexcept { return io::kv_file_size(m, g_); }
    std::size_t stored_bytes(session_id s) const { return get(s).bytes; }
    const kv_meta& meta(session_id s) const { return get(s).meta; }

    void put(kv_entry&& e) {
        const session_id s = e.meta.session;
        const std::size_t bytes = charge(e.meta);
        if (contains(s)) throw error("file_tier: put of a session already stored");
        if (bytes > free_bytes()) throw error("file_tier: put over capacity (the hierarchy must make room first)");
        if (e.data.size() != e.meta.blocks(g_) * g_.block_bytes())
            throw error("file_tier: put of an entry with a malformed payload");
        auto encoded = io::encode_kv_file(e, g_, fingerprint_);
        record rec;
        rec.bytes = bytes;
        rec.pending = io_->write_atomic(path_of(s), std::move(encoded)).share();
        rec.meta = std::move(e.meta);
        used_ += bytes;
        index_.emplace(s, std::move(rec));
    }

    std::optional<kv_entry> take(session_id s) {
        auto it = find(s);
        const bool written = wait(it->second);
        std::optional<kv_entry> out;
        if (written) {
            auto read = io_->read_all(path_of(s)).get();
            if (!read.status.ok) {
                last_damage_ = read.status.error;
            } else {
                auto res = io::decode_kv_file(read.data, g_, fingerprint_, s);
                if (res.status != io::decode_status::ok) last_damage_ = std::string(io::to_string(res.status));
                else if (!same_meta(res.entry->meta, it->second.meta))
                    last_damage_ = "holds different tokens than were stored (overwritten?)";
                else out = std::move(res.entry);
            }
        }
        if (!out) ++damaged_;
        remove_file(s);
        used_ -= it->second.bytes;
        index_.erase(it);
        return out;
    }

    void erase(session_id s) {
        auto it = find(s);
        wait(it->second);
        remove_file(s);
        used_ -= it->second.bytes;
        index_.erase(it);
    }

    /// Waits for every queued write (e.g. before inspecting files in a test).
    void flush() {
        for (auto& [s, rec] : index_) wait(rec);
    }
    /// Path of the file that holds (or will hold) a session's KV.
    std::filesystem::path path_of(session_id s) const {
        char name[40];
        std::snprintf(name, sizeof name, "session-%016llx.kv", static_cast<unsigned long long>(s.value));
        return cfg_.directory / name;
    }
    /// Reads that came back damaged or failed, since construction.
    std::size_t damaged() const noexcept { return damaged_; }
    /// Why the last damaged read was rejected.
    const std::string& last_damage() const noexcept { return last_damage_; }
    std::string_view io_backend() const noexcept { return io_->backend(); }

private:
    struct record {
        kv_meta meta;
        std::size_t bytes = 0;
        std::shared_future<io::io_status> pending;
        bool failed = false;
    };

    /// Waits for the session's write; false when it failed (the file is then not usable).
    bool wait(record& r) {
        if (r.pending.valid()) {
            const io::io_status st = r.pending.get();
            if (!st.ok) {
                r.failed = true;
                last_damage_ = st.error;
            }
            r.pending = {};
        }
        return !r.failed;
    }
    static bool same_meta(const kv_meta& a, const kv_meta& b) {
        return a.session == b.session && a.tokens == b.tokens && a.first_offset == b.first_offset &&
               a.rope_base == b.rope_base;
    }
    void remove_file(session_id s) {
        std::error_code ec;
        std::filesystem::remove(path_of(s), ec);
    }
    std::unordered_map<session_id, record>::iterator find(session_id s) {
        auto it = index_.find(s);
        if (it == index_.end()) throw error("file_tier: session not stored");
        return it;
    }
    const record& get(session_id s) const {
        auto it = index_.find(s);
        if (it == index_.end()) throw error("file_tier: session not stored");
        return it->second;
    }

    model_geometry g_;
    std::uint64_t fingerprint_;
    config cfg_;
    std::unique_ptr<io::file_io> io_;
    std::unordered_map<session_id, record> index_;
    std::size_t used_ = 0;
    std::size_t damaged_ = 0;
    std::string last_damage_;
    int lock_fd_ = -1;
};
static_assert(tier<file_tier>);

}  // namespace cachedattn::tier
