#pragma once
/// @file
/// @brief A 64-byte aligned byte buffer (cache lines; what vector loads want).
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace cachedattn::tier::detail {

struct free_deleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
};

inline std::unique_ptr<std::byte, free_deleter> aligned_bytes(std::size_t n) {
    const std::size_t rounded = (n + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) throw std::bad_alloc();
    return std::unique_ptr<std::byte, free_deleter>(static_cast<std::byte*>(p));
}

}  // namespace cachedattn::tier::detail
