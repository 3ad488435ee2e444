#pragma once
/// @file
/// @brief Host copies of device-resident sessions, and the copies in flight on their blocks.
///
/// Asynchronous saving (paper §3.3) copies each turn's new KV out of the device tier while the
/// model still runs, so that by the time the session must leave the device tier its KV is
/// already in host memory: demoting it then costs no device read. This is the bookkeeping for
/// that: one saved copy per device-resident session (valid only when its meta equals the
/// device entry's), and a count of copies in flight per session (pre-loads into its blocks,
/// saves out of them), so that nothing frees or rewrites a session's blocks under a copy.
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "cachedattn/core/kv_entry.hpp"

namespace cachedattn {

class saved_copies {
public:
    saved_copies() = default;
    saved_copies(const saved_copies&) = delete;
    saved_copies& operator=(const saved_copies&) = delete;

    // ---------------------------------------------------------------- copies in flight
    /// A copy touching `s`'s device blocks is about to be queued (caller's thread).
    void started(session_id s) {
        std::lock_guard lock(m_);
        ++slot(s).in_flight;
    }
    /// That copy has finished (any thread).
    void finished(session_id s) {
        {
            std::lock_guard lock(m_);
            auto it = state_.find(s);
            if (it != state_.end() && it->second.in_flight > 0 && --it->second.in_flight == 0) {
                if (it->second.copy) it->second.hurry = nullptr;
                else state_.erase(it);
            }
        }
        cv_.notify_all();
    }
    /// How to make a queued copy of `s` finish without waiting for compute (a pre-load of the
    /// next job waits for that job's layers to start; settle() lets it run to the end instead).
    void on_settle(session_id s, std::function<void()> hurry) {
        std::lock_guard lock(m_);
        slot(s).hurry = std::move(hurry);
    }
    /// Blocks until no copy touches `s`'s blocks. Call before freeing or rewriting them.
    void settle(session_id s) {
        std::unique_lock lock(m_);
        auto it = state_.find(s);
        if (it == state_.end() || it->second.in_flight == 0) return;
        if (auto hurry = std::move(it->second.hurry)) {
            it->second.hurry = nullptr;
            lock.unlock();
            hurry();
            lock.lock();
        }
        cv_.wait(lock, [&] {
            auto i = state_.find(s);
            return i == state_.end() || i->second.in_flight == 0;
        });
    }
    bool in_flight(session_id s) const {
        std::lock_guard lock(m_);
        auto it = state_.find(s);
        return it != state_.end() && it->second.in_flight > 0;
    }

    // ---------------------------------------------------------------- saved copies
    // Pre for all of these: settle(s) (no copy in flight writes the entry).
    /// Stores `copy` as `s`'s saved copy, replacing any other. Its meta is filled in when the
    /// copy completes; until then it never matches the device entry.
    void keep(session_id s, std::shared_ptr<kv_entry> copy) {
        std::lock_guard lock(m_);
        slot(s).copy = std::move(copy);
    }
    /// Removes and returns `s`'s saved copy, complete or not (a base for the next save).
    std::shared_ptr<kv_entry> release(session_id s) {
        std::lock_guard lock(m_);
        auto it = state_.find(s);
        if (it == state_.end()) return nullptr;
        auto c = std::move(it->second.copy);
        it->second.copy = nullptr;
        if (it->second.in_flight == 0) state_.erase(it);
        return c;
    }
    /// `s`'s saved copy if it holds exactly what the device holds (`device` is the device
    /// entry's meta, `bytes` its payload size); it is removed either way.
    std::optional<kv_entry> claim(session_id s, const kv_meta& device, std::size_t bytes) {
        auto c = release(s);
        if (!c || c->data.size() != bytes || c->meta.tokens != device.tokens ||
            c->meta.first_offset != device.first_offset || c->meta.rope_base != device.rope_base ||
            c->meta.session != device.session)
            return std::nullopt;
        if (c.use_count() == 1) return std::move(*c);
        return *c;  // a finished task may still hold a reference: copy rather than steal
    }
    void discard(session_id s) { release(s); }
    /// `s`'s saved copy, complete or not, left in place (tests and tools).
    std::shared_ptr<const kv_entry> peek(session_id s) const {
        std::lock_guard lock(m_);
        auto it = state_.find(s);
        return it == state_.end() ? nullptr : it->second.copy;
    }
    /// Sessions with a saved copy.
    std::size_t size() const {
        std::lock_guard lock(m_);
        std::size_t n = 0;
        for (const auto& [s, st] : state_) n += st.copy != nullptr;
        return n;
    }

private:
    struct state {
        int in_flight = 0;
        std::function<void()> hurry;
        std::shared_ptr<kv_entry> copy;
    };
    state& slot(session_id s) { return state_[s]; }

    mutable std::mutex m_;
    std::condition_variable cv_;
    std::unordered_map<session_id, state> state_;
};

}  // namespace cachedattn
