// The only translation unit that includes Boost.Asio (its headers cost seconds to compile).
#include "cachedattn/io/file_io.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/random_access_file.hpp>
#include <boost/asio/read_at.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write_at.hpp>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <fmt/std.h>

#include "cachedattn/core/error.hpp"

namespace cachedattn::io {
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace {

[[noreturn]] void throw_errno(const char* what, const fs::path& p, int err) {
    throw std::system_error(err, std::generic_category(), fmt::format("{} {}", what, p));
}

fs::path temp_path(const fs::path& p) {
    fs::path t = p;
    t += ".tmp";
    return t;
}

/// fsync the directory so the rename itself is durable.
void sync_directory(const fs::path& file) {
    const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // best effort: some file systems refuse directory fds
    ::fsync(fd);
    ::close(fd);
}

/// Runs `f`, turning any exception into a failed status (on the thread that threw it).
template <class F>
io_status guarded(F&& f) noexcept {
    try {
        f();
        return {};
    } catch (const std::exception& e) {
        return {false, e.what()};
    } catch (...) {
        return {false, "unknown I/O failure"};
    }
}

void publish(const fs::path& tmp, const fs::path& path) {
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw std::system_error(ec, fmt::format("rename {} -> {}", tmp, path));
    sync_directory(path);
}

// ---------------------------------------------------------------- thread pool (pread/pwrite)
class pool_file_io final : public file_io {
public:
    explicit pool_file_io(unsigned threads) : pool_(threads == 0 ? 1 : threads) {}
    ~pool_file_io() override { pool_.join(); }

    std::string_view backend() const noexcept override { return "thread_pool"; }

    std::future<io_status> write_atomic(fs::path path, std::vector<std::byte> data) override {
        auto task = std::make_shared<std::packaged_task<io_status()>>(
            [path = std::move(path), data = std::move(data)] {
                return guarded([&] { write_file(path, data); });
            });
        auto fut = task->get_future();
        asio::post(pool_, [task] { (*task)(); });
        return fut;
    }

    std::future<read_result> read_all(fs::path path) override {
        auto task = std::make_shared<std::packaged_task<read_result()>>([path = std::move(path)] {
            read_result r;
            r.status = guarded([&] { r.data = read_file(path); });
            return r;
        });
        auto fut = task->get_future();
        asio::post(pool_, [task] { (*task)(); });
        return fut;
    }

private:
    static void write_file(const fs::path& path, const std::vector<std::byte>& data) {
        const fs::path tmp = temp_path(path);
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw_errno("open", tmp, errno);
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                                       static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int err = n < 0 ? errno : EIO;
                ::close(fd);
                ::unlink(tmp.c_str());
                throw_errno("write", tmp, err);
            }
            done += static_cast<std::size_t>(n);
        }
        if (::fsync(fd) != 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw_errno("fsync", tmp, err);
        }
        ::close(fd);
        try {
            publish(tmp, path);
        } catch (...) {
            ::unlink(tmp.c_str());  // a failed rename must not leave the unfinished file behind
            throw;
        }
    }

    static std::vector<std::byte> read_file(const fs::path& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw_errno("open", path, errno);
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const int err = errno;
            ::close(fd);
            throw_errno("stat", path, err);
        }
        std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
        std::size_t done = 0;
        while (done < out.size()) {
            const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                const int err = errno;
                ::close(fd);
                throw_errno("read", path, err);
            }
            if (n == 0) break;  // shrank under us: the decoder sees the short file
            done += static_cast<std::size_t>(n);
        }
        out.resize(done);
        ::close(fd);
        return out;
    }

    asio::thread_pool pool_;
};

// ---------------------------------------------------------------- io_uring (Asio files)
class uring_file_io final : public file_io {
public:
    uring_file_io() : guard_(asio::make_work_guard(ctx_)), thread_([this] { ctx_.run(); }) {}
    ~uring_file_io() override {
        guard_.reset();  // run() returns once the queued operations have finished
        thread_.join();
    }

    std::string_view backend() const noexcept override { return "io_uring"; }

    std::future<io_status> write_atomic(fs::path path, std::vector<std::byte> data) override {
        auto st = std::make_shared<write_op>(std::move(path), std::move(data));
        auto fut = st->done.get_future();
        asio::post(ctx_, [this, st] { start_write(st); });
        return fut;
    }

    std::future<read_result> read_all(fs::path path) override {
        auto st = std::make_shared<read_op>(std::move(path));
        auto fut = st->done.get_future();
        asio::post(ctx_, [this, st] { start_read(st); });
        return fut;
    }

private:
    struct write_op {
        write_op(fs::path p, std::vector<std::byte> d) : path(std::move(p)), tmp(temp_path(path)), data(std::move(d)) {}
        fs::path path, tmp;
        std::vector<std::byte> data;
        std::optional<asio::random_access_file> file;
        std::promise<io_status> done;
    };
    struct read_op {
        explicit read_op(fs::path p) : path(std::move(p)) {}
        fs::path path;
        std::vector<std::byte> data;
        std::optional<asio::random_access_file> file;
        std::promise<read_result> done;
    };

    void start_write(const std::shared_ptr<write_op>& st) {
        const io_status opened = guarded([&] {
            st->file.emplace(ctx_, st->tmp.string(),
                             asio::file_base::write_only | asio::file_base::create | asio::file_base::truncate);
        });
        if (!opened.ok) return finish_write(*st, opened);
        // Asio creates files 0777 & ~umask; the thread-pool backend 0644: one mode for both.
        ::fchmod(st->file->native_handle(), 0644);
        asio::async_write_at(*st->file, 0, asio::buffer(st->data), [st](boost::system::error_code ec, std::size_t) {
            finish_write(*st, guarded([&] {
                if (ec) throw boost::system::system_error(ec, "write " + st->tmp.string());
                st->file->sync_all();
                st->file->close();
                publish(st->tmp, st->path);
            }));
        });
    }
    static void finish_write(write_op& st, io_status status) {
        if (!status.ok) {
            boost::system::error_code ignored;
            if (st.file && st.file->is_open()) st.file->close(ignored);
            ::unlink(st.tmp.c_str());
        }
        st.done.set_value(std::move(status));
    }

    void start_read(const std::shared_ptr<read_op>& st) {
        const io_status opened = guarded([&] {
            st->file.emplace(ctx_, st->path.string(), asio::file_base::read_only);
            st->data.resize(static_cast<std::size_t>(st->file->size()));
        });
        if (!opened.ok) return st->done.set_value(read_result{opened, {}});
        asio::async_read_at(*st->file, 0, asio::buffer(st->data), [st](boost::system::error_code ec, std::size_t n) {
            read_result r;
            if (ec && ec != asio::error::eof) {
                r.status = {false, "read " + st->path.string() + ": " + ec.message()};
            } else {
                st->data.resize(n);  // a short read: the decoder rejects it
                r.data = std::move(st->data);
            }
            st->done.set_value(std::move(r));
        });
    }

    asio::io_context ctx_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::thread thread_;
};

}  // namespace

bool io_uring_available() noexcept {
    io_uring ring{};
    if (io_uring_queue_init(4, &ring, 0) != 0) return false;
    io_uring_queue_exit(&ring);
    return true;
}

std::unique_ptr<file_io> make_file_io(io_mode mode, unsigned threads) {
    if (mode == io_mode::automatic) {
        if (const char* env = std::getenv("CACHEDATTN_IO")) {
            const std::string v = env;
            if (v == "thread_pool") mode = io_mode::thread_pool;
            else if (v == "io_uring") mode = io_mode::io_uring;
            else if (!v.empty() && v != "auto")
                throw config_error(fmt::format(
                    "CACHEDATTN_IO='{}': expected auto, io_uring or thread_pool", v));
        }
    }
    if (mode == io_mode::thread_pool) return std::make_unique<pool_file_io>(threads);
    if (io_uring_available()) return std::make_unique<uring_file_io>();
    if (mode == io_mode::io_uring)
        throw config_error("io_mode::io_uring requested but io_uring cannot be set up here "
                           "(kernel.io_uring_disabled or a seccomp filter?); use thread_pool");
    return std::make_unique<pool_file_io>(threads);
}

}  // namespace cachedattn::io
