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
#include <string_view>
#include <vector>

namespace cachedattn::io {

/// @brief Which engine carries out file I/O.
enum class io_mode {
    automatic,    ///< io_uring if usable here, else the thread pool; env CACHEDATTN_IO overrides
    io_uring,     ///< io_uring or a clear error when the kernel refuses it
    thread_pool,  ///< blocking pread/pwrite on worker threads
};

class file_io {
public:
    virtual ~file_io() = default;
    /// "io_uring" or "thread_pool".
    virtual std::string_view backend() const noexcept = 0;
    /// Publishes `data` at `path` atomically: write `path`.tmp, fsync, rename over `path`, fsync
    /// the directory. Readers see the old file or the new one, never a torn one. The future
    /// carries any failure (ENOSPC, EIO...) as an exception.
    virtual std::future<void> write_atomic(std::filesystem::path path, std::vector<std::byte> data) = 0;
    /// Reads the whole file. Failures (missing file, I/O error) arrive as exceptions.
    virtual std::future<std::vector<std::byte>> read_all(std::filesystem::path path) = 0;
};

/// @brief True when io_uring can be set up in this process.
bool io_uring_available() noexcept;

/// @brief Makes the file I/O engine; `threads` sizes the fallback pool.
std::unique_ptr<file_io> make_file_io(io_mode mode = io_mode::automatic, unsigned threads = 2);

}  // namespace cachedattn::io
