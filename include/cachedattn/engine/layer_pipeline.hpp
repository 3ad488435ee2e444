#pragma once
/// @file
/// @brief Layer-wise pre-loading's ordering (paper §3.2), backend-neutral: layer l may compute
/// only once its history KV is resident, and the loader may run at most `1 + read_buffer`
/// layers ahead of the layer being computed (the read buffer holds the extra layers). The
/// loader marks a layer `loaded` once its copy is queued, with the copy's fence: the cpu
/// backend's copies are done by then (empty fences); the cuda backend's compute stream waits on
/// each layer's event, so the host thread never waits for a copy (only for it to be queued).
/// On the GPU the read-buffer window is therefore counted in queued layers. The sim backend
/// replays the same rule on timelines.
#include <condition_variable>
#include <mutex>
#include <vector>

#include "cachedattn/core/fence.hpp"

namespace cachedattn {

class layer_pipeline {
public:
    /// @param layers model layers; @param read_buffer extra layers the loader may run ahead
    layer_pipeline(int layers, int read_buffer)
        : layers_(layers), buffer_(read_buffer < 0 ? 0 : read_buffer), fences_(static_cast<std::size_t>(layers)) {}

    // ---- loader side
    /// Blocks until layer l may be loaded: l <= started + 1 + read_buffer (started = -1 before
    /// compute begins). Returns false when the pipeline was aborted.
    bool wait_for_slot(int l) {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return aborted_ || released_ || l <= started_ + 1 + buffer_; });
        return !aborted_;
    }
    /// Layer l's history KV is resident once `done` completes (empty: now). Layers are marked
    /// in order.
    void loaded(int l, fence done = {}) {
        {
            std::lock_guard lock(m_);
            fences_[static_cast<std::size_t>(l)] = std::move(done);
            loaded_ = l + 1;
        }
        cv_.notify_all();
    }

    // ---- compute side
    /// Compute is about to use layer l's history KV: record progress (frees a buffer slot),
    /// block until the layer's copy is queued, and return its fence, which compute must wait
    /// on before reading the layer (empty once aborted).
    [[nodiscard]] fence begin_layer(int l) {
        std::unique_lock lock(m_);
        started_ = l;
        cv_.notify_all();
        cv_.wait(lock, [&] { return aborted_ || loaded_ > l; });
        return loaded_ > l ? fences_[static_cast<std::size_t>(l)] : fence{};
    }
    /// Lifts the read-buffer limit: the loader runs to the last layer without waiting for
    /// compute (a pre-load for a job whose session must leave the device before it runs).
    void release() {
        {
            std::lock_guard lock(m_);
            released_ = true;
        }
        cv_.notify_all();
    }
    /// Stops the loader (compute failed): every wait returns.
    void abort() {
        {
            std::lock_guard lock(m_);
            aborted_ = true;
        }
        cv_.notify_all();
    }
    int layers() const noexcept { return layers_; }
    int loaded_layers() const {
        std::lock_guard lock(m_);
        return loaded_;
    }

private:
    mutable std::mutex m_;
    std::condition_variable cv_;
    int layers_;
    int buffer_;
    std::vector<fence> fences_;
    int started_ = -1;
    int loaded_ = 0;
    bool aborted_ = false;
    bool released_ = false;
};

}  // namespace cachedattn
