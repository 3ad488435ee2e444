#pragma once
/// @file
/// @brief Completion of work a device queued without waiting for it: a layer's copy into the
/// device pool (layer-wise pre-loading) or a layer's new KV written by the model (asynchronous
/// saving). The GPU backend's fences are CUDA events, so its compute stream can wait for a
/// layer's copy while the host thread goes on queueing; the CPU reference copies and computes
/// synchronously, so its fences are empty, and an empty fence is complete.
#include <memory>

namespace cachedattn {

class device_fence {
public:
    virtual ~device_fence() = default;
    /// Blocks the calling thread until the work is done.
    virtual void wait() const = 0;
};
using fence = std::shared_ptr<const device_fence>;

/// Blocks the calling thread until `f` is complete (at once for an empty fence).
inline void wait(const fence& f) {
    if (f) f->wait();
}

}  // namespace cachedattn
