#pragma once
/// @file
/// @brief Where a device tier's block pool lives, and how bytes get in and out of it.
///
/// The CPU reference keeps the "device" pool in host memory (plain memcpy, the default). The
/// CUDA backend passes cuda::device_pool_memory (cudaMalloc'd HBM, copies on the calling
/// thread's stream). Copies are synchronous for the caller: when one returns the bytes are
/// there, which is what the hierarchy's bookkeeping assumes. The one exception is
/// `to_pool_async`, the layer loader's: it may return before the bytes land, with a fence.
#include <cstddef>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <span>
#include <string_view>

#include "cachedattn/core/fence.hpp"
#include "cachedattn/tier/detail/aligned_buffer.hpp"

namespace cachedattn::tier {

/// One contiguous copy.
struct copy_op {
    std::byte* dst;
    const std::byte* src;
    std::size_t n;
};

class pool_memory {
public:
    virtual ~pool_memory() = default;
    virtual std::string_view name() const noexcept = 0;
    /// True when the host must not dereference pool pointers (policies then skip in-place work).
    virtual bool device_resident() const noexcept = 0;
    virtual std::byte* allocate(std::size_t bytes) const = 0;
    virtual void deallocate(std::byte* p) const noexcept = 0;
    virtual void to_pool(std::byte* dst, const std::byte* src, std::size_t n) const = 0;
    virtual void from_pool(std::byte* dst, const std::byte* src, std::size_t n) const = 0;
    virtual void within_pool(std::byte* dst, const std::byte* src, std::size_t n) const = 0;
    /// Where host copies of pool contents are allocated (the host tier's entries, saved
    /// copies): pinned memory for a GPU pool, so copies back run at full link speed.
    virtual std::pmr::memory_resource* host_resource() const noexcept { return std::pmr::get_default_resource(); }
    /// Many copies in one go (one layer of every block of a session): a GPU implementation
    /// queues them all and waits once, instead of paying a round trip per block.
    virtual void to_pool(std::span<const copy_op> ops) const {
        for (const auto& op : ops) to_pool(op.dst, op.src, op.n);
    }
    virtual void from_pool(std::span<const copy_op> ops) const {
        for (const auto& op : ops) from_pool(op.dst, op.src, op.n);
    }
    /// As to_pool(ops), but may return once the copies are queued: the returned fence
    /// completes when they have landed (empty: they already have). The sources must stay
    /// alive and unchanged until then. A GPU pool records an event on the calling thread's
    /// stream, which the compute stream waits on in place of the host.
    virtual fence to_pool_async(std::span<const copy_op> ops) const {
        to_pool(ops);
        return {};
    }
};

/// Host memory, 64-byte aligned (the CPU reference's "device").
class host_pool_memory final : public pool_memory {
public:
    using pool_memory::from_pool;
    using pool_memory::to_pool;
    std::string_view name() const noexcept override { return "host"; }
    bool device_resident() const noexcept override { return false; }
    std::byte* allocate(std::size_t bytes) const override { return detail::aligned_bytes(bytes).release(); }
    void deallocate(std::byte* p) const noexcept override { detail::free_deleter{}(p); }
    void to_pool(std::byte* dst, const std::byte* src, std::size_t n) const override { std::memcpy(dst, src, n); }
    void from_pool(std::byte* dst, const std::byte* src, std::size_t n) const override { std::memcpy(dst, src, n); }
    void within_pool(std::byte* dst, const std::byte* src, std::size_t n) const override {
        std::memmove(dst, src, n);
    }
};

namespace detail {
/// Returns a pool to the memory it came from.
struct pool_deleter {
    const pool_memory* mem = nullptr;
    void operator()(std::byte* p) const noexcept {
        if (p) mem->deallocate(p);
    }
};
}  // namespace detail

inline std::shared_ptr<const pool_memory> host_memory() {
    static const auto m = std::make_shared<const host_pool_memory>();
    return m;
}

}  // namespace cachedattn::tier
