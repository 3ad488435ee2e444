#pragma once
/// @file
/// @brief The device tier ("HBM"): a block pool allocated once, with a block table per session.
///
/// In the CPU build the pool is host memory standing in for HBM; the CUDA tier has the same
/// interface over cudaMalloc'd memory. Capacity is whole blocks: `capacity / block_bytes`
/// blocks are usable and every resident session is charged for the blocks its table holds,
/// including blocks reserved for tokens the running turn has not produced yet.
#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/tier/concept.hpp"
#include "cachedattn/tier/detail/aligned_buffer.hpp"
#include "cachedattn/tier/pool_memory.hpp"
#include "cachedattn/tier/detail/link_model.hpp"

namespace cachedattn::tier {

class device_tier {
public:
    struct config {
        std::size_t capacity_bytes = 0;
        /// Emulated host<->device link bandwidth in bytes/s (0: copies run at memcpy speed).
        /// The CPU "device" is host memory; a bandwidth makes loads and saves cost what they
        /// would over PCIe, so overlap can be measured (see detail/link_model.hpp).
        double link_bytes_per_s = 0;
        /// Where the pool lives (null: host memory). The CUDA backend passes
        /// cuda::device_memory(): the pool is then HBM and every copy goes through the runtime.
        std::shared_ptr<const pool_memory> memory = nullptr;
    };
    static constexpr std::string_view name = "device";

    device_tier(const config& c, const tier_init& init) : device_tier(c, init, false) {}

protected:
    /// `accounting`: count blocks only, allocate no pool (sim_device_tier, the simulator's HBM
    /// at the paper's scale): block tables, charges and capacity behave as usual; views have no
    /// memory behind them, entries moved out carry no payload, and copies are not made.
    device_tier(const config& c, const tier_init& init, bool accounting)
        : g_(init.geometry), block_bytes_(init.geometry.block_bytes()), capacity_(c.capacity_bytes),
          link_(c.link_bytes_per_s) {
        if (!(c.link_bytes_per_s >= 0))
            throw config_error("device_tier: link_bytes_per_s must be >= 0 (0 = no emulated link)");
        g_.validate();
        if (c.capacity_bytes == 0) throw config_error("device_tier: capacity_bytes must be > 0");
        const std::size_t blocks = c.capacity_bytes / block_bytes_;
        if (blocks == 0)
            throw config_error("device_tier: capacity of " + std::to_string(c.capacity_bytes) +
                               " bytes holds no KV block (a block is " +
                               std::to_string(block_bytes_) + " bytes)");
        if (blocks > static_cast<std::size_t>(INT32_MAX))
            throw config_error("device_tier: more than 2^31 blocks; raise block_tokens");
        if (!accounting) {
            mem_ = c.memory ? c.memory : host_memory();
            pool_ = pool_ptr(mem_->allocate(blocks * block_bytes_), detail::pool_deleter{mem_.get()});
        }
        free_.resize(blocks);
        // Hand out low block numbers first (pop from the back).
        for (std::size_t i = 0; i < blocks; ++i) free_[i] = static_cast<std::int32_t>(blocks - 1 - i);
        total_blocks_ = blocks;
    }

public:
    std::size_t capacity_bytes() const noexcept { return capacity_; }
    std::size_t used_bytes() const noexcept { return (total_blocks_ - free_.size()) * block_bytes_; }
    std::size_t free_bytes() const noexcept { return free_.size() * block_bytes_; }
    bool contains(session_id s) const { return res_.contains(s); }
    std::size_t sessions() const noexcept { return res_.size(); }
    std::size_t charge(const kv_meta& m) const noexcept { return m.blocks(g_) * block_bytes_; }
    std::size_t stored_bytes(session_id s) const { return get(s).table.size() * block_bytes_; }
    const kv_meta& meta(session_id s) const { return get(s).meta; }

    void put(kv_entry&& e) {
        const std::size_t blocks = e.meta.blocks(g_);
        require(!contains(e.meta.session), "put of a session already resident");
        require(blocks <= free_.size(), "put over capacity (the hierarchy must make room first)");
        require(e.data.size() == (pool_ ? blocks * block_bytes_ : 0), "put of an entry with a malformed payload");
        resident r;
        r.table = allocate(blocks);
        if (pool_) {
            std::vector<copy_op> ops(blocks);
            for (std::size_t b = 0; b < blocks; ++b)
                ops[b] = {block(r.table[b]), e.data.data() + b * block_bytes_, block_bytes_};
            mem_->to_pool(ops);
        }
        link_.host_to_device(blocks * block_bytes_);
        r.meta = std::move(e.meta);
        const session_id s = r.meta.session;
        res_.emplace(s, std::move(r));
    }

    std::optional<kv_entry> take(session_id s) {
        auto it = find(s);
        kv_entry e = copy_out(it->second);
        release(it->second.table);
        res_.erase(it);
        return e;
    }

    /// Copy of a resident entry (blocks trimmed to the stored tokens).
    kv_entry read(session_id s) const { return copy_out(get(s)); }

    void erase(session_id s) {
        auto it = find(s);
        release(it->second.table);
        res_.erase(it);
    }

    // ---- staged (layer-wise) loading
    /// Allocates blocks for an entry with this meta without copying any KV; the caller fills
    /// them layer by layer with copy_layer. Pre: as put.
    void put_staged(kv_meta meta) {
        const std::size_t blocks = meta.blocks(g_);
        require(!contains(meta.session), "put of a session already resident");
        require(blocks <= free_.size(), "put over capacity (the hierarchy must make room first)");
        resident r;
        r.table = allocate(blocks);
        r.meta = std::move(meta);
        const session_id s = r.meta.session;
        res_.emplace(s, std::move(r));
    }
    /// The session's block ids now (a copy: later reserves may grow the table).
    std::vector<std::int32_t> block_ids(session_id s) const { return get(s).table; }
    /// Copies layer `layer` (K and V, one contiguous run per block) of `src` into `blocks`.
    /// Touches only those bytes, so it may run on another thread while the model computes
    /// other layers. Pre: blocks.size() >= src.meta.blocks(g).
    void copy_layer(const std::vector<std::int32_t>& blocks, const kv_entry& src, int layer) const {
        wait(copy_layer_async(blocks, src, layer));
    }
    /// The same, returning once the copy is queued (pool_memory::to_pool_async): the fence
    /// completes when the layer is resident; `src` must outlive it.
    fence copy_layer_async(const std::vector<std::int32_t>& blocks, const kv_entry& src, int layer) const {
        const std::size_t run = 2 * g_.block_half_layer_elems() * size_of(g_.type);
        const std::size_t off = static_cast<std::size_t>(layer) * run;
        const std::size_t n = src.meta.blocks(g_);
        fence done;
        if (pool_) {
            std::vector<copy_op> ops(n);
            for (std::size_t b = 0; b < n; ++b)
                ops[b] = {block(blocks[b]) + off, src.data.data() + b * block_bytes_ + off, run};
            done = mem_->to_pool_async(ops);
        }
        link_.host_to_device(n * run);
        return done;
    }

    // ---- saving (the reverse of copy_layer)
    /// Copies tokens [first, last) of layer `layer` (K and V) out of `blocks`, the session's
    /// table with its first token at slot `first_offset`, into the same slots of `dst`, whose
    /// payload has the device layout. Touches exactly those token slots, so it may run on an
    /// I/O thread while the model writes other tokens or layers of the same blocks.
    /// Pre: the slots exist in `blocks` and in `dst.data`.
    void save_tokens(const std::vector<std::int32_t>& blocks, kv_entry& dst, int layer, std::size_t first_offset,
                     std::size_t first, std::size_t last) const {
        const auto bt = static_cast<std::size_t>(g_.block_tokens);
        const std::size_t elem = size_of(g_.type);
        const std::size_t row = static_cast<std::size_t>(g_.head_dim) * elem;  // one token of one head
        const std::size_t head_run = bt * row;
        const std::size_t layer_off = static_cast<std::size_t>(layer) * 2 * g_.block_half_layer_elems() * elem;
        std::size_t bytes = 0;
        std::vector<copy_op> ops;
        for (std::size_t t = first; t < last && pool_;) {
            const std::size_t slot = first_offset + t;
            const std::size_t b = slot / bt, in = slot % bt;
            const std::size_t n = std::min(bt - in, last - t);  // tokens of this block
            for (std::size_t kvh = 0; kvh < 2 * static_cast<std::size_t>(g_.kv_heads); ++kvh) {
                const std::size_t off = b * block_bytes_ + layer_off + kvh * head_run + in * row;
                ops.push_back({dst.data.data() + off, block(blocks[b]) + (off - b * block_bytes_), n * row});
            }
            bytes += 2 * static_cast<std::size_t>(g_.kv_heads) * n * row;
            t += n;
        }
        if (!ops.empty()) mem_->from_pool(ops);
        link_.device_to_host(bytes);
    }

    // ---- device_tier_like
    void create(session_id s) {
        require(!contains(s), "create of a session already resident");
        resident r;
        r.meta.session = s;
        res_.emplace(s, std::move(r));
    }
    std::size_t reserve_charge(session_id s, std::size_t tokens) const {
        const resident& r = get(s);
        const std::size_t need = g_.blocks_for(tokens, r.meta.first_offset);
        return need > r.table.size() ? (need - r.table.size()) * block_bytes_ : 0;
    }
    void reserve(session_id s, std::size_t tokens) {
        resident& r = get(s);
        const std::size_t need = g_.blocks_for(tokens, r.meta.first_offset);
        if (need <= r.table.size()) return;
        require(need - r.table.size() <= free_.size(), "reserve over capacity");
        auto more = allocate(need - r.table.size());
        r.table.insert(r.table.end(), more.begin(), more.end());
    }
    paged_kv_view<float> view(session_id s) {
        resident& r = get(s);
        return paged_kv_view<float>::over(pool_.get(), r.table, g_, static_cast<int>(r.meta.first_offset),
                                          static_cast<std::int64_t>(r.meta.tokens.size()),
                                          mem_ && mem_->device_resident());
    }
    void commit(session_id s, std::span<const token_id> toks) {
        resident& r = get(s);
        require(g_.blocks_for(r.meta.tokens.size() + toks.size(), r.meta.first_offset) <= r.table.size(),
                "commit beyond the reserved blocks");
        r.meta.tokens.insert(r.meta.tokens.end(), toks.begin(), toks.end());
    }
    void truncate_front(session_id s, std::size_t n) {
        resident& r = get(s);
        require(n <= r.meta.tokens.size(), "truncate_front of more tokens than stored");
        if (n == 0) return;
        r.meta.tokens.erase(r.meta.tokens.begin(), r.meta.tokens.begin() + static_cast<std::ptrdiff_t>(n));
        r.meta.rope_base += static_cast<std::int64_t>(n);
        const std::size_t slot = r.meta.first_offset + n;
        const std::size_t drop = std::min(slot / static_cast<std::size_t>(g_.block_tokens), r.table.size());
        std::vector<std::int32_t> dropped(r.table.begin(), r.table.begin() + static_cast<std::ptrdiff_t>(drop));
        release(dropped);
        r.table.erase(r.table.begin(), r.table.begin() + static_cast<std::ptrdiff_t>(drop));
        r.meta.first_offset = static_cast<std::uint32_t>(slot % static_cast<std::size_t>(g_.block_tokens));
        if (r.meta.tokens.empty()) {  // nothing left: no offset to keep, no block to hold
            release(r.table);
            r.table.clear();
            r.meta.first_offset = 0;
        }
    }
    /// Removes tokens [first, first + n) (clamped to what is stored): whole blocks and an
    /// offset when first == 0, else the later tokens' KV moves down over the gap. Keys after
    /// the gap keep their old rotation; `rope_base` is set non-zero to mark that until a
    /// positional-encoding policy re-bases them.
    void erase_tokens(session_id s, std::size_t first, std::size_t n) {
        resident& r = get(s);
        const std::size_t size = r.meta.tokens.size();
        require(first <= size, "erase_tokens beyond the stored tokens");
        n = std::min(n, size - first);
        if (n == 0) return;
        if (first == 0) return truncate_front(s, n);
        if (pool_) {  // accounting-only: no KV to move
            if (g_.type == dtype::f32) move_down<float>(s, first, n, size);
            else move_down<std::uint16_t>(s, first, n, size);
        }
        r.meta.tokens.erase(r.meta.tokens.begin() + static_cast<std::ptrdiff_t>(first),
                            r.meta.tokens.begin() + static_cast<std::ptrdiff_t>(first + n));
        r.meta.rope_base += static_cast<std::int64_t>(n);
        shrink_to_fit(s);
    }
    void shrink_to_fit(session_id s) {
        resident& r = get(s);
        const std::size_t keep = r.meta.blocks(g_);
        if (keep >= r.table.size()) return;
        std::vector<std::int32_t> extra(r.table.begin() + static_cast<std::ptrdiff_t>(keep), r.table.end());
        release(extra);
        r.table.resize(keep);
        if (r.meta.tokens.empty()) r.meta.first_offset = 0;
    }
    /// Sets the position base of stored keys (used by posenc policies that re-rotate).
    void set_rope_base(session_id s, std::int64_t base) { get(s).meta.rope_base = base; }

    const model_geometry& geometry() const noexcept { return g_; }
    /// No pool: block accounting only (sim_device_tier).
    bool counts_only() const noexcept { return !pool_; }
    /// Memory for host copies of this tier's KV (pinned when the pool is GPU memory).
    std::pmr::memory_resource* host_resource() const noexcept {
        return mem_ ? mem_->host_resource() : std::pmr::get_default_resource();
    }
    std::size_t block_bytes() const noexcept { return block_bytes_; }
    std::size_t total_blocks() const noexcept { return total_blocks_; }

private:
    struct resident {
        kv_meta meta;
        std::vector<std::int32_t> table;
    };

    static void require(bool ok, const char* what) {
        if (!ok) throw error(std::string("device_tier: ") + what);
    }
    std::unordered_map<session_id, resident>::iterator find(session_id s) {
        auto it = res_.find(s);
        require(it != res_.end(), "session not resident");
        return it;
    }
    resident& get(session_id s) { return find(s)->second; }
    const resident& get(session_id s) const {
        auto it = res_.find(s);
        require(it != res_.end(), "session not resident");
        return it->second;
    }
    std::byte* block(std::int32_t b) const noexcept {
        return pool_.get() + static_cast<std::size_t>(b) * block_bytes_;
    }
    std::vector<std::int32_t> allocate(std::size_t n) {
        std::vector<std::int32_t> out(free_.end() - static_cast<std::ptrdiff_t>(n), free_.end());
        std::reverse(out.begin(), out.end());
        free_.resize(free_.size() - n);
        return out;
    }
    void release(const std::vector<std::int32_t>& blocks) {
        free_.insert(free_.end(), blocks.rbegin(), blocks.rend());
    }
    template <class T>
    void move_down(session_id s, std::size_t first, std::size_t n, std::size_t size) {
        const resident& r = get(s);
        const auto v = paged_kv_view<T>::over(pool_.get(), r.table, g_, static_cast<int>(r.meta.first_offset),
                                              static_cast<std::int64_t>(r.meta.tokens.size()));
        const std::size_t bytes = static_cast<std::size_t>(g_.head_dim) * sizeof(T);
        for (std::size_t t = first; t + n < size; ++t)
            for (int l = 0; l < g_.layers; ++l)
                for (int kv = 0; kv < 2; ++kv)
                    for (int h = 0; h < g_.kv_heads; ++h)
                        mem_->within_pool(reinterpret_cast<std::byte*>(v.at(l, kv, h, static_cast<std::int64_t>(t))),
                                          reinterpret_cast<const std::byte*>(v.at(l, kv, h, static_cast<std::int64_t>(t + n))),
                                          bytes);
    }
    kv_entry copy_out(const resident& r) const {
        const std::size_t blocks = r.meta.blocks(g_);
        if (!pool_) return kv_entry{r.meta, {}};
        kv_entry e{r.meta, std::pmr::vector<std::byte>(blocks * block_bytes_, host_resource())};
        std::vector<copy_op> ops(blocks);
        for (std::size_t b = 0; b < blocks; ++b)
            ops[b] = {e.data.data() + b * block_bytes_, block(r.table[b]), block_bytes_};
        mem_->from_pool(ops);
        link_.device_to_host(blocks * block_bytes_);
        return e;
    }

    model_geometry g_;
    std::size_t block_bytes_;
    std::size_t capacity_;
    std::size_t total_blocks_ = 0;
    mutable detail::link_model link_;
    using pool_ptr = std::unique_ptr<std::byte, detail::pool_deleter>;
    std::shared_ptr<const pool_memory> mem_;  // outlives pool_ (declared first)
    pool_ptr pool_;
    std::vector<std::int32_t> free_;
    std::unordered_map<session_id, resident> res_;
};
static_assert(device_tier_like<device_tier>);

/// @brief The simulator's device tier ("HBM" at the paper's scale): device_tier's block
/// accounting with no pool behind it. A type of its own, so that a simulated stack and a real
/// backend (or the reverse) do not compile together (see engine.hpp).
class sim_device_tier : public device_tier {
public:
    struct config {
        std::size_t capacity_bytes = 0;
    };
    static constexpr std::string_view name = "device (simulated)";
    static constexpr bool accounting_only = true;  ///< holds no KV bytes

    sim_device_tier(const config& c, const tier_init& init) : device_tier({c.capacity_bytes}, init, true) {}
};
static_assert(device_tier_like<sim_device_tier>);

}  // namespace cachedattn::tier
