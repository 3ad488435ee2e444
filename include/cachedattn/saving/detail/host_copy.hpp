#pragma once
/// @file
/// @brief The mechanism under every saving policy that keeps a host copy: a turn's copy of the
/// device entry, built from a host base (the entry just loaded, or the previous turn's copy)
/// plus the tokens only the device has, and sealed when the turn ends. Each step runs on the
/// save stream (asynchronous saving) or right away (synchronous); the policies decide when.
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "cachedattn/core/fence.hpp"
#include "cachedattn/core/geometry.hpp"
#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/engine/turn.hpp"
#include "cachedattn/hierarchy/saved_copies.hpp"
#include "cachedattn/io/copy_stream.hpp"
#include "cachedattn/saving/concept.hpp"

namespace cachedattn::saving {

namespace detail {

template <class Device>
class host_copy {
public:
    host_copy(const save_context<Device>& c, bool on_stream) : c_(c) {
        if (on_stream) stream_.emplace();
    }

    /// Starts this turn's copy of `session` (its device entry now holds `kv_len` cached tokens).
    /// Older tokens come from a host copy that holds exactly the device's KV now (`loaded`, the
    /// entry just loaded, or the previous turn's saved copy), else the device supplies them all.
    void begin(session_id session, std::size_t kv_len, std::shared_ptr<kv_entry> loaded) {
        job j;
        j.session = session;
        j.blocks = c_.device.block_ids(session);
        j.first_offset = c_.device.meta(session).first_offset;
        j.copy = std::make_shared<kv_entry>(kv_entry{{}, std::pmr::vector<std::byte>(c_.device.host_resource())});
        j.copy->meta.session = session;
        const bool shared = loaded != nullptr;
        j.base = shared ? std::move(loaded) : c_.copies.release(session);
        const kv_meta& now = c_.device.meta(session);
        if (!(j.base && j.base->meta.tokens == now.tokens && j.base->meta.first_offset == now.first_offset &&
              j.base->meta.rope_base == now.rope_base))
            j.base.reset();
        j.steal = j.base && !shared;  // the previous saved copy is ours; a loading entry is shared
        j.from = j.base ? kv_len : 0;
        c_.copies.keep(session, j.copy);
        job_ = std::move(j);
    }
    bool active() const noexcept { return job_.has_value(); }
    /// First token the device must supply (older ones come from the host base).
    std::size_t from() const { return job_->from; }

    /// Fills the copy's older tokens from the host base (no device read) and sizes it.
    void copy_base() {
        auto& j = *job_;
        const std::size_t bytes = j.blocks.size() * c_.device.block_bytes();
        run([copy = j.copy, base = std::move(j.base), bytes, steal = j.steal]() mutable {
            if (base) copy->data = steal ? std::move(base->data) : base->data;
            copy->data.resize(bytes);
            base.reset();
            copy.reset();
        });
    }
    /// Copies tokens [first, last) of layers [layer_begin, layer_end) out of the device, once
    /// `written` (the device's work that wrote them) completes.
    void save(int layer_begin, int layer_end, std::size_t first, std::size_t last, turn_metrics& m,
              fence written = {}) {
        if (first >= last) return;
        const auto& j = *job_;
        m.bytes_saved += (last - first) * c_.geometry.kv_bytes_per_token() *
                         static_cast<std::size_t>(layer_end - layer_begin) / static_cast<std::size_t>(c_.geometry.layers);
        run([&dev = c_.device, copy = j.copy, blocks = j.blocks, off = j.first_offset, layer_begin, layer_end, first,
             last, written = std::move(written)]() mutable {
            wait(written);
            for (int l = layer_begin; l < layer_end; ++l) dev.save_tokens(blocks, *copy, l, off, first, last);
            copy.reset();
        });
    }
    /// Marks the copy complete: from now on it equals the device entry (until the next turn).
    void seal() {
        run([copy = job_->copy, meta = c_.device.meta(job_->session),
             bytes = c_.device.stored_bytes(job_->session)]() mutable {
            copy->data.resize(bytes);
            copy->meta = std::move(meta);
            copy.reset();
        });
        job_.reset();
    }
    /// Forgets a turn that failed (its copy was never sealed; the hierarchy discards it).
    void cancel() noexcept { job_.reset(); }
    void synchronize() {
        if (stream_) stream_->synchronize();
    }

private:
    struct job {
        session_id session;
        std::shared_ptr<kv_entry> copy;
        std::vector<std::int32_t> blocks;
        std::size_t first_offset = 0;
        std::size_t from = 0;
        std::shared_ptr<kv_entry> base;  ///< host copy of tokens [0, from), if any
        bool steal = false;              ///< base may be moved from (nobody else reads it)
    };
    /// Runs a step on the save stream (counted in flight for the session) or right here.
    template <class F>
    void run(F&& f) {
        if (!stream_) {
            f();
            return;
        }
        const session_id s = job_->session;
        c_.copies.started(s);
        stream_->post([f = std::forward<F>(f), &copies = c_.copies, s]() mutable {
            f();
            copies.finished(s);
        });
    }

    save_context<Device> c_;
    std::optional<job> job_;
    std::optional<io::copy_stream> stream_;  // last: joined first, while what its copies touch exists
};

}  // namespace detail
}  // namespace cachedattn::saving
