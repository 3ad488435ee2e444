#pragma once
/// @file
/// @brief Asynchronous whole-file I/O for the SSD tier: the one virtual seam on the storage
/// path (a run-time choice between io_uring and a thread pool is worth more than a virtual call
/// per multi-megabyte file).
///
/// The implementation (src/io/file_io.cpp) is Boost.Asio: `random_access_file` on io_uring when
/// the kernel allows it (probed at run time: sysctl or seccomp may forbid it), otherwise a thread
/// pool doing pread/pwrite. Asio stays out of this header (it costs seconds per translation unit).
#include <cstddef>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cachedattn::io {

/// @brief Which engine carries out file I/O.
enum class io_mode {
    automatic,    ///< io_uring if usable here, else the thread pool; env CACHEDATTN_IO overrides
    io_uring,     ///< io_uring or a clear error when the kernel refuses it
    thread_pool,  ///< blocking pread/pwrite on worker threads
};

/// @brief Outcome of one I/O request. Errors travel as values, not exceptions: an exception
/// object shared between the I/O thread and the caller through a future is refcounted inside
/// libstdc++, where ThreadSanitizer cannot see the synchronisation.
struct io_status {
    bool ok = true;
    std::string error;  ///< what failed, with the path and the errno text
};

struct read_result {
    io_status status;
    std::vector<std::byte> data;
};

class file_io {
public:
    virtual ~file_io() = default;
    /// "io_uring" or "thread_pool".
    virtual std::string_view backend() const noexcept = 0;
    /// Publishes `data` at `path` atomically: write `path`.tmp, fsync, rename over `path`, fsync
    /// the directory. Readers see the old file or the new one, never a torn one. Failures
    /// (ENOSPC, EIO...) come back in the status; the temporary file is removed.
    virtual std::future<io_status> write_atomic(std::filesystem::path path, std::vector<std::byte> data) = 0;
    /// Reads the whole file. Failures (missing file, I/O error) come back in the status.
    virtual std::future<read_result> read_all(std::filesystem::path path) = 0;
};

/// @brief True when io_uring can be set up in this process.
bool io_uring_available() noexcept;

/// @brief Makes the file I/O engine; `threads` sizes the fallback pool.
std::unique_ptr<file_io> make_file_io(io_mode mode = io_mode::automatic, unsigned threads = 2);

}  // namespace cachedattn::io
