#pragma once
// A real redis-server for one test or benchmark: started as a child process on a free loopback
// port with persistence off and its files in a scratch directory, ready once PING answers, and
// killed and reaped when the object goes away. Tests and benchmarks share it, so it throws
// (std::runtime_error) instead of using doctest.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <cachedattn/io/redis_connection.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace test {

class redis_server {
public:
    /// Starts a server on a free port (or on `port`: a restart keeps its clients' address).
    explicit redis_server(int port = 0) : port_(port ? port : free_port()) {
        char tmpl[] = "/tmp/cachedattn-redis-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("redis_server: cannot create a scratch directory");
        dir_ = tmpl;
        // Another test process (ctest -j) may take the free port first: then ours exits at
        // start, and a new free port is tried.
        for (int attempt = 0;; ++attempt) {
            try {
                start();
                return;
            } catch (const std::runtime_error&) {
                if (port != 0 || attempt == 4) throw;
                port_ = free_port();
            }
        }
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;
    ~redis_server() {
        kill();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    int port() const noexcept { return port_; }
    /// Ends the server at once (SIGKILL), as a crash would; a no-op when it is not running.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);  // a stopped process dies on SIGKILL too, but be explicit
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    /// Freezes the server (SIGSTOP): it accepts connections but never answers, like a hung host.
    void freeze() const { ::kill(pid_, SIGSTOP); }
    void thaw() const { ::kill(pid_, SIGCONT); }
    /// Kills the server and starts an empty one on the same port.
    void restart() {
        kill();
        start();
    }
    cachedattn::io::redis_endpoint endpoint() const { return {"127.0.0.1", port_, 500, 2000, 0}; }

private:
    /// The kernel picks a port no one is listening on; the server binds it right after (a race
    /// with other processes that is harmless in practice and shows as a clear start failure).
    static int free_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            if (fd >= 0) ::close(fd);
            throw std::runtime_error("redis_server: cannot find a free port");
        }
        ::close(fd);
        return ntohs(a.sin_port);
    }

    void start() {
        std::vector<std::string> args{"redis-server",   "--port",       std::to_string(port_),
                                      "--bind",         "127.0.0.1",    "--save",
                                      "",               "--appendonly", "no",
                                      "--dir",          dir_.string(),  "--logfile",
                                      (dir_ / "redis.log").string(),    "--daemonize",
                                      "no"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = ::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ);
        if (rc != 0) {
            pid_ = -1;
            throw std::runtime_error(
                "redis_server: cannot start redis-server (" + std::string(std::strerror(rc)) +
                "); the Redis tier's tests need it: run scripts/install-deps.sh (Debian: redis-server)");
        }
        wait_ready();
    }

    /// Up to 10 s for our server to answer (INFO names its process: a server another test
    /// started on the same port does not count); a server that exited says why in its log.
    void wait_ready() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis_server: redis-server exited at start; see " +
                                         (dir_ / "redis.log").string());
            }
            cachedattn::io::redis_connection c(endpoint());
            if (const auto info = c.command({"INFO", "server"}); info && info->type == REDIS_REPLY_STRING &&
                std::string(info->str, info->len).find("process_id:" + std::to_string(pid_) + "\r") != std::string::npos)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        kill();
        throw std::runtime_error("redis_server: redis-server did not answer within 10 s");
    }

    int port_;
    std::filesystem::path dir_;
    pid_t pid_ = -1;
};

}  // namespace test
