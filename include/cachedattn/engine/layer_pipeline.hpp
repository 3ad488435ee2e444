#pragma once
/// @file
/// @brief Layer-wise pre-loading's ordering (paper §3.2), backend-neutral: layer l may compute
/// only once its history KV is resident, and the loader may run at most `1 + read_buffer`
/// layers ahead of the layer being computed (the read buffer holds the extra layers). The cpu
/// backend drives it from an I/O thread; the cuda backend maps `loaded`/`begin_layer` to events
/// on a copy stream; the sim backend replays the same rule on timelines.
#include <condition_variable>
#include <mutex>

namespace cachedattn {

class layer_pipeline {
public:
    /// @param layers model layers; @param read_buffer extra layers the loader may run ahead
    layer_pipeline(int layers, int read_buffer) : layers_(layers), buffer_(read_buffer < 0 ? 0 : read_buffer) {}

    // ---- loader side
    /// Blocks until layer l may be loaded: l <= started + 1 + read_buffer (started = -1 before
    /// compute begins). Returns false when the pipeline was aborted.
    bool wait_for_slot(int l) {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return aborted_ || released_ || l <= started_ + 1 + buffer_; });
        return !aborted_;
    }
    /// Layer l's history KV is resident. Layers complete in order.
    void loaded(int l) {
        {
            std::lock_guard lock(m_);
            loaded_ = l + 1;
        }
        cv_.notify_all();
    }

    // ---- compute side
    /// Compute is about to use layer l's history KV: record progress (frees a buffer slot) and
    /// block until the layer is resident.
    void begin_layer(int l) {
        std::unique_lock lock(m_);
        started_ = l;
        cv_.notify_all();
        cv_.wait(lock, [&] { return aborted_ || loaded_ > l; });
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
    int started_ = -1;
    int loaded_ = 0;
    bool aborted_ = false;
    bool released_ = false;
};

}  // namespace cachedattn
