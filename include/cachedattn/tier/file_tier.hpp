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
///
/// After a crash: a tier opens its directory empty. Files a dead process left there (`.tmp`
/// files of unfinished writes, `.kv` files no index knows) are deleted when the tier opens and
/// counted (`stale_files_removed`, `stale_bytes_removed`): the hierarchy that placed them is
/// gone, so nothing could find them, and they would otherwise hold disk the capacity does not
/// count. `keep_files` leaves a clean shutdown's files for inspection; the next open removes them.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
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
        /// Makes the I/O engine instead of `io` (a seam for other storage and for fault
        /// injection in tests); empty: io::make_file_io(io).
        std::function<std::unique_ptr<io::file_io>()> make_io{};
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
        probe_writable(c.directory);
        // One tier per directory: a second one would overwrite and delete this one's files.
        const auto lock_path = c.directory / ".cachedattn.lock";
        lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            if (lock_fd_ >= 0) ::close(lock_fd_);
            throw io_error("file_tier: cache directory '" + c.directory.string() +
                           "' is in use by another file_tier (give each its own directory)");
        }
        remove_stale_files();
        io_ = c.make_io ? c.make_io() : io::make_file_io(c.io);
        if (!io_) throw config_error("file_tier: make_io returned no I/O engine");
    }
    file_tier(const file_tier&) = delete;
    file_tier& operator=(const file_tier&) = delete;
    file_tier(file_tier&& o) noexcept
        : g_(o.g_), fingerprint_(o.fingerprint_), cfg_(std::move(o.cfg_)), io_(std::move(o.io_)),
          index_(std::exchange(o.index_, {})), used_(std::exchange(o.used_, 0)),
          damaged_(o.damaged_), last_damage_(std::move(o.last_damage_)), lock_fd_(std::exchange(o.lock_fd_, -1)),
          stale_files_(o.stale_files_), stale_bytes_(o.stale_bytes_), unremoved_(o.unremoved_) {}
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
    /// Files a previous process left in the directory, deleted when this tier opened.
    std::size_t stale_files_removed() const noexcept { return stale_files_; }
    std::size_t stale_bytes_removed() const noexcept { return stale_bytes_; }
    /// Files taken or erased whose removal failed (e.g. the directory turned read-only): the
    /// next tier to open the directory deletes them.
    std::size_t files_not_removed() const noexcept { return unremoved_; }
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
        if (ec && ec != std::errc::no_such_file_or_directory) {
            ++unremoved_;
            last_damage_ = "cannot remove " + path_of(s).string() + ": " + ec.message();
        }
    }
    /// Writes and removes a probe file, so an unusable directory fails here with the reason
    /// (read-only, no space left), not as damaged reads later.
    static void probe_writable(const std::filesystem::path& dir) {
        const auto probe = dir / ".cachedattn-write-probe";
        const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int err = fd < 0 ? errno : 0;
        if (fd >= 0) {
            static constexpr char bytes[] = "probe";
            if (::write(fd, bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) err = errno ? errno : EIO;
            if (err == 0 && ::fsync(fd) != 0) err = errno;
            ::close(fd);
            ::unlink(probe.c_str());
        }
        if (err != 0)
            throw io_error("file_tier: cannot write in cache directory '" + dir.string() +
                           "': " + std::generic_category().message(err));
    }
    /// Deletes what a dead process left: unfinished writes (.tmp) and session files (.kv).
    void remove_stale_files() {
        std::error_code ec;
        for (std::filesystem::directory_iterator it(cfg_.directory, ec), end; !ec && it != end; it.increment(ec)) {
            const auto& p = it->path();
            const std::string name = p.filename().string();
            const bool ours = name.rfind("session-", 0) == 0 &&
                              (p.extension() == ".kv" || p.extension() == ".tmp");
            if (!ours) continue;
            std::error_code e2;
            const auto size = std::filesystem::file_size(p, e2);
            if (std::filesystem::remove(p, e2)) {
                ++stale_files_;
                stale_bytes_ += e2 ? 0 : static_cast<std::size_t>(size);
            }
        }
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
    std::size_t stale_files_ = 0, stale_bytes_ = 0, unremoved_ = 0;
};
static_assert(tier<file_tier>);

}  // namespace cachedattn::tier
