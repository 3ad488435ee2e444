#pragma once
/// @file
/// @brief A private, contiguous KV buffer with an identity block table: the "recompute from
/// scratch" path (references in tests, benchmarks) without going through any tier.
#include <numeric>
#include <vector>

#include "cachedattn/core/kv_entry.hpp"
#include "cachedattn/tier/detail/aligned_buffer.hpp"

namespace cachedattn::model {

class scratch_kv {
public:
    scratch_kv(const model_geometry& g, std::int64_t max_tokens) : g_(g) {
        g_.validate();
        const std::size_t blocks = g_.blocks_for(static_cast<std::size_t>(max_tokens));
        pool_ = tier::detail::aligned_bytes(blocks * g_.block_bytes());
        table_.resize(blocks);
        std::iota(table_.begin(), table_.end(), 0);
    }
    paged_kv_view<float> view() const {
        return paged_kv_view<float>::over(pool_.get(), table_, g_, first_offset_, tokens_);
    }
    /// Marks `n` more tokens as written (after a forward over the view).
    void commit(std::int64_t n) { tokens_ += n; }
    std::int64_t tokens() const noexcept { return tokens_; }
    /// Drops the oldest `n` tokens without touching the stored values (naive reuse).
    void drop_front(std::int64_t n) {
        const std::int64_t slot = first_offset_ + n;
        const std::int64_t blocks = slot / g_.block_tokens;
        table_.erase(table_.begin(), table_.begin() + blocks);
        first_offset_ = static_cast<int>(slot % g_.block_tokens);
        tokens_ -= n;
    }

private:
    model_geometry g_;
    std::unique_ptr<std::byte, tier::detail::free_deleter> pool_;
    std::vector<std::int32_t> table_;
    int first_offset_ = 0;
    std::int64_t tokens_ = 0;
};

}  // namespace cachedattn::model
