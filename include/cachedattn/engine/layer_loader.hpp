#pragma once
/// @file
/// @brief The load side of the engine's copy streams: layer-wise pre-loading (paper §3.2). A
/// hit from DRAM or below is staged in the device tier (blocks allocated) and copied layer by
/// layer on the load stream while the prefill runs, at most 1 + read_buffer layers ahead of
/// compute; the next queued job's load may start while the current job runs (`pending`).
/// Copies are queued (device_tier::copy_layer_async) and each layer is marked loaded with its
/// fence, so on a GPU the compute stream, not the host, waits for them; the last layer is
/// marked only once every copy has landed, so the load's times are final when compute sees it.
#include <chrono>
#include <memory>
#include <optional>
#include <unordered_map>

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/engine/layer_pipeline.hpp"
#include "cachedattn/hierarchy/saved_copies.hpp"
#include "cachedattn/io/copy_stream.hpp"

namespace cachedattn {

struct load_times {
    double total = 0, copying = 0;
};

/// @brief A layer-wise load: the loader copies `src` into the session's device blocks on the
/// load stream; `pipe` orders it against compute.
struct layer_load {
    std::shared_ptr<layer_pipeline> pipe;
    std::shared_ptr<kv_entry> src;
    /// Load duration (`total`) and the part spent copying (`copying`; the rest waited for a
    /// read-buffer slot), written before the last layer is marked loaded.
    std::shared_ptr<load_times> seconds;
    std::size_t from_tier = 0;
    double started_at = 0;          ///< simulated: when the copy could start (next-job pre-loading)
    std::size_t dropped_front = 0;  ///< oldest tokens cut before loading (a truncating turn)
};

template <class Device>
class layer_loader {
public:
    layer_loader(Device& dev, saved_copies& copies, int layers, int read_buffer)
        : dev_(dev), copies_(copies), layers_(layers), buffer_(read_buffer) {}

    /// Queues the layer-by-layer copy of `l.src` into `session`'s device blocks, ordered by a
    /// new pipeline with the read buffer.
    void start(session_id session, layer_load& l) {
        l.pipe = std::make_shared<layer_pipeline>(layers_, buffer_);
        l.seconds = std::make_shared<load_times>();
        copies_.started(session);
        copies_.on_settle(session, [p = l.pipe] { p->release(); });
        stream_.post([&dev = dev_, &copies = copies_, session, pipe = l.pipe, src = l.src, secs = l.seconds,
                      blocks = dev_.block_ids(session)]() mutable {
            using clock = std::chrono::steady_clock;
            using seconds = std::chrono::duration<double>;
            const auto start = clock::now();
            double waited = 0;  // for read-buffer slots, with nothing in flight: not copying
            fence last;         // copies land in order: the last one queued covers them all
            for (int layer = 0; layer < pipe->layers(); ++layer) {
                // The copies queued so far land first, so that time spent waiting for a slot is
                // idle link time (the copy rate the cost meter learns stays the link's). Only
                // this thread waits; compute waits on each layer's fence.
                wait(last);
                const auto w0 = clock::now();
                if (!pipe->wait_for_slot(layer)) break;
                waited += seconds(clock::now() - w0).count();
                last = dev.copy_layer_async(blocks, *src, layer);
                if (layer + 1 == pipe->layers()) {
                    wait(last);
                    secs->total = seconds(clock::now() - start).count();
                    secs->copying = secs->total - waited;
                }
                pipe->loaded(layer, last);
            }
            wait(last);  // an aborted load: nothing may still read `src` or write the blocks
            pipe.reset();
            src.reset();
            secs.reset();
            copies.finished(session);
        });
    }
    /// Stops a load that will not be used and waits until it no longer touches the blocks.
    void abort(session_id session, layer_load& l) {
        if (l.pipe) l.pipe->abort();
        copies_.settle(session);
    }

    // ---- loads started for jobs not running yet
    /// The load started early for `session`, if it is still staged in the device tier
    /// (`on_device`); forgotten either way.
    std::optional<layer_load> take_pending(session_id session, bool on_device) {
        std::optional<layer_load> out;
        if (auto it = pending_.find(session); it != pending_.end()) {
            if (on_device) out = std::move(it->second);
            pending_.erase(it);
        }
        return out;
    }
    bool has_pending(session_id s) const { return pending_.contains(s); }
    void add_pending(session_id s, layer_load l) { pending_.emplace(s, std::move(l)); }
    void forget(session_id s) { pending_.erase(s); }

    /// Lets every queued load run to the end, then waits for the stream.
    void synchronize() {
        for (auto& [s, p] : pending_)
            if (p.pipe) p.pipe->release();
        stream_.synchronize();
    }

private:
    Device& dev_;
    saved_copies& copies_;
    int layers_, buffer_;
    std::unordered_map<session_id, layer_load> pending_;
    io::copy_stream stream_;  // last: joined first, while everything its copies touch exists
};

}  // namespace cachedattn
