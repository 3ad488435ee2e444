#pragma once
/// @file
/// @brief No saving: a session's KV stays only in the device tier until eviction demotes it,
/// and the demotion reads it from the device then (vLLM-style swap-out).
#include "cachedattn/saving/concept.hpp"

namespace cachedattn::saving {

struct write_back {
    static constexpr std::string_view name = "write_back";
    static constexpr save_mode mode = save_mode::write_back;

    /// Copies nothing: the hierarchy reads the device when it demotes the session.
    template <class Device>
    struct writer {
        template <class Context>
        explicit writer(const Context&) {}
        void begin(session_id, std::size_t, const std::shared_ptr<kv_entry>&, turn_metrics&) {}
        /// Nothing to copy per layer: the fence is not waited for either.
        void layer_done(int, std::size_t, turn_metrics&, const fence& = {}) {}
        void token_done(std::size_t, turn_metrics&) {}
        void end(turn_metrics&) {}
        void cancel() noexcept {}
        void synchronize() {}
    };
};
static_assert(saving_policy<write_back>);

}  // namespace cachedattn::saving
