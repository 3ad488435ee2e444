#pragma once
/// @file
/// @brief The small CUDA runtime pieces the backend is built from: error checks, owned device
/// and pinned buffers, streams and events, and the device tier's HBM pool memory.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <string>
#include <utility>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/fence.hpp"
#include "cachedattn/tier/pool_memory.hpp"

namespace cachedattn::cuda {

/// Throws cachedattn::error naming `what` and the CUDA error.
void check(cudaError_t e, const char* what);
/// GPUs usable by this process (0 without a driver or device: GPU tests then skip).
int device_count() noexcept;
/// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" for reports.
std::string device_description(int device = 0);

/// An owned cudaMalloc allocation.
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(std::size_t bytes);
    ~device_buffer();
    device_buffer(device_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    device_buffer& operator=(device_buffer&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    void* get() const noexcept { return p_; }
    template <class T>
    T* as() const noexcept { return static_cast<T*>(p_); }
    std::size_t size() const noexcept { return n_; }
    /// Grows (contents lost) so that at least `bytes` fit.
    void reserve(std::size_t bytes);

private:
    void* p_ = nullptr;
    std::size_t n_ = 0;
};

/// An owned cudaHostAlloc (pinned) allocation: host memory the copy engines read directly.
class pinned_buffer {
public:
    pinned_buffer() = default;
    explicit pinned_buffer(std::size_t bytes);
    ~pinned_buffer();
    pinned_buffer(pinned_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    pinned_buffer& operator=(pinned_buffer&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    std::byte* data() const noexcept { return static_cast<std::byte*>(p_); }
    std::size_t size() const noexcept { return n_; }

private:
    void* p_ = nullptr;
    std::size_t n_ = 0;
};

/// An owned non-blocking stream (it never synchronises with the legacy default stream).
class stream {
public:
    stream();
    ~stream();
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    cudaStream_t get() const noexcept { return s_; }
    void synchronize() const;

private:
    cudaStream_t s_ = nullptr;
};

/// An owned event without timing (cheap to record and wait on).
class event {
public:
    explicit event(bool timing = false);
    ~event();
    event(const event&) = delete;
    event& operator=(const event&) = delete;
    cudaEvent_t get() const noexcept { return e_; }
    void record(cudaStream_t s);
    void synchronize() const;

private:
    cudaEvent_t e_ = nullptr;
};

/// A fence that is a CUDA event recorded on a stream when the fence is made: what the compute
/// stream waits on for a layer's copy, and an I/O thread for a layer's new KV.
class event_fence final : public device_fence {
public:
    explicit event_fence(cudaStream_t s) { e_.record(s); }
    void wait() const override { e_.synchronize(); }
    cudaEvent_t get() const noexcept { return e_.get(); }

private:
    event e_;
};
/// Makes stream `s` wait for `f` without blocking the host when `f` is an event; any other
/// fence is waited for here. Empty fences are complete.
void wait_on(const fence& f, cudaStream_t s);

/// Pinned (page-locked) host memory for KV entries: what the copy engines read and write at
/// full link speed (pageable memory is staged by the driver at a fraction of it). Page-locking
/// costs about as much as the copy it speeds up, so freed buffers are kept by exact size and
/// reused (KV entries come in whole blocks, so sizes repeat), up to `cache_bytes`.
class pinned_memory_resource final : public std::pmr::memory_resource {
public:
    explicit pinned_memory_resource(std::size_t cache_bytes = std::size_t{8} << 30);
    ~pinned_memory_resource() override;
    std::size_t cached_bytes() const;

private:
    void* do_allocate(std::size_t bytes, std::size_t alignment) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }

    struct state;
    std::size_t cache_limit_;
    std::unique_ptr<state> st_;
};
/// The process-wide pinned resource the device pool hands to host copies.
pinned_memory_resource& pinned_memory();

/// The device tier's pool in HBM. Copies run on the calling thread's own stream
/// (cudaStreamPerThread) and are waited for (except to_pool_async's), so the engine's loader and saver threads copy
/// concurrently with the compute stream and with each other.
class device_pool_memory final : public tier::pool_memory {
public:
    using tier::pool_memory::from_pool;
    using tier::pool_memory::to_pool;
    std::string_view name() const noexcept override { return "cuda"; }
    bool device_resident() const noexcept override { return true; }
    std::byte* allocate(std::size_t bytes) const override;
    void deallocate(std::byte* p) const noexcept override;
    void to_pool(std::byte* dst, const std::byte* src, std::size_t n) const override;
    void from_pool(std::byte* dst, const std::byte* src, std::size_t n) const override;
    void within_pool(std::byte* dst, const std::byte* src, std::size_t n) const override;
    void to_pool(std::span<const tier::copy_op> ops) const override;
    void from_pool(std::span<const tier::copy_op> ops) const override;
    /// Queued on the calling thread's stream; the fence is an event recorded after them.
    fence to_pool_async(std::span<const tier::copy_op> ops) const override;
    std::pmr::memory_resource* host_resource() const noexcept override { return &pinned_memory(); }
};

/// The shared instance to put in device_tier::config::memory.
std::shared_ptr<const tier::pool_memory> device_memory();

}  // namespace cachedattn::cuda
