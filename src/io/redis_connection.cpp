#include "cachedattn/io/redis_connection.hpp"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <ctime>
#include <utility>
#include <vector>

namespace cachedattn::io {
namespace {

timeval to_timeval(int ms) {
    timeval tv{};
    tv.tv_sec = ms / 1000;
    tv.tv_usec = static_cast<suseconds_t>(ms % 1000) * 1000;
    return tv;
}

/// Blocks SIGPIPE in this thread for one command and swallows one it raised: hiredis 0.14
/// writes with write(2), not send(MSG_NOSIGNAL), and a library must not change the process's
/// signal dispositions.
class sigpipe_guard {
public:
    sigpipe_guard() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~sigpipe_guard() {
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            const timespec zero{0, 0};
            sigtimedwait(&pipe_, nullptr, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    sigpipe_guard(const sigpipe_guard&) = delete;
    sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
};

}  // namespace

void redis_reply_deleter::operator()(redisReply* r) const noexcept { freeReplyObject(r); }

redis_connection::redis_connection(redis_endpoint e) : ep_(std::move(e)) { ensure_connected(); }

redis_connection::redis_connection(redis_connection&& o) noexcept
    : ep_(std::move(o.ep_)), ctx_(std::exchange(o.ctx_, nullptr)), next_try_(o.next_try_),
      connect_failures_(o.connect_failures_), command_errors_(o.command_errors_),
      last_error_(std::move(o.last_error_)) {}

redis_connection& redis_connection::operator=(redis_connection&& o) noexcept {
    if (this != &o) {
        disconnect();
        ep_ = std::move(o.ep_);
        ctx_ = std::exchange(o.ctx_, nullptr);
        next_try_ = o.next_try_;
        connect_failures_ = o.connect_failures_;
        command_errors_ = o.command_errors_;
        last_error_ = std::move(o.last_error_);
    }
    return *this;
}

redis_connection::~redis_connection() { disconnect(); }

void redis_connection::disconnect() noexcept {
    if (ctx_) redisFree(ctx_);
    ctx_ = nullptr;
}

bool redis_connection::ensure_connected() {
    if (ctx_) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_try_) return false;  // the last attempt failed recently: fail fast
    redisContext* c = redisConnectWithTimeout(ep_.host.c_str(), ep_.port, to_timeval(ep_.connect_timeout_ms));
    const bool ok = c != nullptr && c->err == 0 && redisSetTimeout(c, to_timeval(ep_.command_timeout_ms)) == REDIS_OK;
    if (!ok) {
        last_error_ = "cannot connect to redis at " + ep_.host + ":" + std::to_string(ep_.port) + ": " +
                      (c ? std::string(c->errstr) : std::string("out of memory"));
        if (c) redisFree(c);
        ++connect_failures_;
        next_try_ = now + std::chrono::milliseconds(ep_.retry_after_ms);
        return false;
    }
    ctx_ = c;
    return true;
}

redis_reply redis_connection::command(std::span<const std::string_view> args) {
    if (!ensure_connected()) return nullptr;
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (std::string_view a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    redisReply* r = nullptr;
    {
        sigpipe_guard guard;
        r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    }
    if (r == nullptr) {
        // Timed out or lost: the stream's state is unknown, so this connection is done. The
        // next call reconnects at once (the server may have restarted).
        last_error_ = "redis command failed: " + std::string(ctx_->errstr);
        ++command_errors_;
        disconnect();
        return nullptr;
    }
    redis_reply reply(r);
    if (r->type == REDIS_REPLY_ERROR) {
        last_error_ = "redis error reply: " + std::string(r->str, r->len);
        ++command_errors_;
        return nullptr;
    }
    return reply;
}

}  // namespace cachedattn::io
