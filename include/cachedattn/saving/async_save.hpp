#pragma once
/// @file
/// @brief The paper's asynchronous saving (§3.3): new KV leaves the device layer by layer
/// (prefill) and step by step (decode) while the model computes; the copies drain from the
/// save stream without blocking the next job.
#include "cachedattn/saving/concept.hpp"
#include "cachedattn/saving/detail/host_copy.hpp"

namespace cachedattn::saving {

struct async_save {
    static constexpr std::string_view name = "async_save";
    static constexpr save_mode mode = save_mode::layer_wise;

    template <class Device>
    class writer {
    public:
        explicit writer(const save_context<Device>& c) : copy_(c, /*on_stream=*/true), layers_(c.geometry.layers) {}
        /// The older tokens come from the host base at once, on the stream.
        void begin(session_id s, std::size_t kv_len, std::shared_ptr<kv_entry> loaded, turn_metrics&) {
            copy_.begin(s, kv_len, std::move(loaded));
            copy_.copy_base();
        }
        /// A layer's new KV exists (once `written` completes): queue its copy now, while later
        /// layers compute; the save stream waits for `written`, not the caller.
        void layer_done(int layer, std::size_t end, turn_metrics& m, fence written = {}) {
            if (copy_.active()) copy_.save(layer, layer + 1, copy_.from(), end, m, std::move(written));
        }
        /// A decoded token's KV exists in every layer.
        void token_done(std::size_t pos, turn_metrics& m) {
            if (copy_.active()) copy_.save(0, layers_, pos, pos + 1, m);
        }
        void end(turn_metrics&) {
            if (copy_.active()) copy_.seal();
        }
        void cancel() noexcept { copy_.cancel(); }
        void synchronize() { copy_.synchronize(); }

    private:
        detail::host_copy<Device> copy_;
        int layers_;
    };
};
static_assert(saving_policy<async_save>);

}  // namespace cachedattn::saving
