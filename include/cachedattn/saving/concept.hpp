#pragma once
/// @file
/// @brief Saving policies: when a turn's new KV is copied from the device tier to host memory.
///
/// The paper saves asynchronously (§3.3): each layer's new KV is copied out as soon as it
/// exists (prefill: per layer; decode: per step), only the new tokens, on an I/O stream, and
/// unfinished copies drain while the next job runs. Its baseline saves synchronously at the
/// end of the job. A third choice keeps the KV only in the device tier (write-back): a session
/// is copied out when eviction demotes it, on the critical path of whoever needs the room.
/// The engine carries out the mode; a policy is a tag naming one.
#include <concepts>
#include <string_view>

namespace cachedattn::saving {

enum class save_mode {
    write_back,   ///< no copy until eviction demotes the session
    at_turn_end,  ///< copy the turn's new KV when the turn ends, blocking the next job
    layer_wise,   ///< copy each layer's / step's new KV as it is produced, on an I/O stream
};

/// A saving policy names its mode.
template <class S>
concept saving_policy = requires {
    { S::name } -> std::convertible_to<std::string_view>;
    { S::mode } -> std::convertible_to<save_mode>;
};

}  // namespace cachedattn::saving
