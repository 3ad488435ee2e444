#pragma once
/// @file
/// @brief `copy_stream`: an ordered queue of copies run by one I/O thread, the CPU build's
/// stand-in for a CUDA copy stream. Work posted to one stream runs in order; different
/// streams run concurrently. Layer-wise pre-loading posts host-to-device copies to one stream,
/// asynchronous saving posts device-to-host copies to another (paper §3.2, §3.3).
#include <functional>
#include <memory>

namespace cachedattn::io {

class copy_stream {
public:
    copy_stream();
    ~copy_stream();  ///< runs what is queued, then joins the thread
    copy_stream(const copy_stream&) = delete;
    copy_stream& operator=(const copy_stream&) = delete;

    /// Queues `work` behind everything posted before. `work` must not throw: an exception
    /// escaping it terminates the program (a copy that fails is a bug, not an I/O error).
    void post(std::function<void()> work);
    /// Blocks until everything posted before this call has run.
    void synchronize();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace cachedattn::io
