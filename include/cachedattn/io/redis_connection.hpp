#pragma once
/// @file
/// @brief One synchronous connection to a Redis server (hiredis), for the remote tier: every
/// wait is bounded and every failure is a value, so a down or stalled server costs at most a
/// timeout per call and never hangs or kills the process.
///
/// - Connecting waits at most `connect_timeout_ms`, a command at most `command_timeout_ms`
///   (hiredis sets SO_RCVTIMEO/SO_SNDTIMEO; a send of a large value may take that long per
///   write call, so size the command timeout for the largest value).
/// - After a failed command the connection is closed: a reply that arrives late would otherwise
///   be read as the answer to the next command. The next call reconnects once; if that fails,
///   calls within `retry_after_ms` fail at once instead of waiting on the connect timeout again.
/// - A write to a server that went away raises SIGPIPE, whose default action ends the process;
///   commands run with SIGPIPE blocked in the calling thread and a pending one is consumed.
///
/// hiredis stays out of this header (the tier header compiles without it); a caller that reads
/// reply fields includes <hiredis/hiredis.h>. One connection is used by one thread at a time.
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

struct redisContext;
struct redisReply;

namespace cachedattn::io {

/// @brief Where the server is and how long to wait for it.
struct redis_endpoint {
    std::string host = "127.0.0.1";
    int port = 6379;
    int connect_timeout_ms = 200;
    int command_timeout_ms = 2000;  ///< a 64 MiB value takes ~0.1 s on loopback
    int retry_after_ms = 1000;      ///< after a failed connect, calls within this fail at once
};

struct redis_reply_deleter {
    void operator()(redisReply* r) const noexcept;
};
/// @brief A reply owned by the caller (freed with freeReplyObject).
using redis_reply = std::unique_ptr<redisReply, redis_reply_deleter>;

class redis_connection {
public:
    /// Connects now; a failure is counted and retried by the next command, not thrown.
    explicit redis_connection(redis_endpoint e);
    redis_connection(redis_connection&& o) noexcept;
    redis_connection& operator=(redis_connection&& o) noexcept;
    redis_connection(const redis_connection&) = delete;
    redis_connection& operator=(const redis_connection&) = delete;
    ~redis_connection();

    /// Sends one command (each argument binary-safe) and waits for its reply. nullptr when the
    /// server cannot be reached, does not answer in time, or answers with an error (the reason
    /// is in last_error()); never throws for the server's sake.
    redis_reply command(std::span<const std::string_view> args);
    redis_reply command(std::initializer_list<std::string_view> args) {
        return command(std::span<const std::string_view>(args.begin(), args.size()));
    }

    bool connected() const noexcept { return ctx_ != nullptr; }
    const redis_endpoint& endpoint() const noexcept { return ep_; }
    std::size_t connect_failures() const noexcept { return connect_failures_; }
    /// Commands that failed: no reply in time, connection lost, or an error reply.
    std::size_t command_errors() const noexcept { return command_errors_; }
    const std::string& last_error() const noexcept { return last_error_; }

private:
    bool ensure_connected();
    void disconnect() noexcept;

    redis_endpoint ep_;
    redisContext* ctx_ = nullptr;
    std::chrono::steady_clock::time_point next_try_{};  ///< no connect attempt before this
    std::size_t connect_failures_ = 0;
    std::size_t command_errors_ = 0;
    std::string last_error_;
};

}  // namespace cachedattn::io
