#pragma once
/// @file
/// @brief The paper's baseline for asynchronous saving: the turn's new KV is copied to host
/// memory when the turn ends, and the next job waits for the copy.
#include "cachedattn/saving/concept.hpp"
#include "cachedattn/saving/detail/host_copy.hpp"

namespace cachedattn::saving {

struct sync_save {
    static constexpr std::string_view name = "sync_save";
    static constexpr save_mode mode = save_mode::at_turn_end;

    template <class Device>
    class writer {
    public:
        explicit writer(const save_context<Device>& c) : copy_(c, /*on_stream=*/false), c_(c) {}
        void begin(session_id s, std::size_t kv_len, std::shared_ptr<kv_entry> loaded, turn_metrics&) {
            copy_.begin(s, kv_len, std::move(loaded));
            session_ = s;
        }
        /// Nothing to copy per layer: the fence is not waited for either.
        void layer_done(int, std::size_t, turn_metrics&, const fence& = {}) {}
        void token_done(std::size_t, turn_metrics&) {}
        /// Everything the device has that the host base lacks, all layers, now (the turn waits).
        void end(turn_metrics& m) {
            if (!copy_.active()) return;
            copy_.copy_base();
            copy_.save(0, c_.geometry.layers, copy_.from(), c_.device.meta(session_).tokens.size(), m);
            copy_.seal();
        }
        void cancel() noexcept { copy_.cancel(); }
        void synchronize() {}

    private:
        detail::host_copy<Device> copy_;
        save_context<Device> c_;
        session_id session_{};
    };
};
static_assert(saving_policy<sync_save>);

}  // namespace cachedattn::saving
