#pragma once
/// @file
/// @brief An emulated host<->device link for the CPU build, where the "device" tier is host
/// memory and copies cost a memcpy. With a bandwidth set, every copy over the link also takes
/// bytes / bandwidth of wall time, and copies in one direction queue behind each other (one
/// DMA engine per direction, as PCIe). This makes load/save overlap measurable on CPU; the
/// default (0) leaves copies at memcpy speed.
#include <chrono>
#include <mutex>
#include <thread>

namespace cachedattn::tier::detail {

class link_model {
public:
    using clock = std::chrono::steady_clock;
    explicit link_model(double bytes_per_s = 0) : rate_(bytes_per_s) {}
    link_model(const link_model& o) : rate_(o.rate_) {}

    bool emulated() const noexcept { return rate_ > 0; }
    /// Blocks the calling thread until `bytes` would have crossed the link in that direction.
    void host_to_device(std::size_t bytes) { transfer(h2d_, bytes); }
    void device_to_host(std::size_t bytes) { transfer(d2h_, bytes); }

private:
    struct lane {
        std::mutex m;
        clock::time_point busy_until{};
    };
    void transfer(lane& l, std::size_t bytes) {
        if (rate_ <= 0 || bytes == 0) return;
        const auto cost = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double>(static_cast<double>(bytes) / rate_));
        clock::time_point done;
        {
            std::lock_guard lock(l.m);
            const auto start = std::max(clock::now(), l.busy_until);
            done = start + cost;
            l.busy_until = done;
        }
        std::this_thread::sleep_until(done);
    }
    double rate_;
    lane h2d_, d2h_;
};

}  // namespace cachedattn::tier::detail
