#pragma once
/// @file
/// @brief Keep nothing across turns: every session's KV is dropped when its turn ends, so each
/// turn recomputes the whole history (the paper's "RE" baseline, §5). As a saving policy it
/// makes recomputation a stack type like any other (cachedattn::stacks::recompute).
#include "cachedattn/saving/write_back.hpp"

namespace cachedattn::saving {

struct discard {
    static constexpr std::string_view name = "discard";
    static constexpr save_mode mode = save_mode::discard;
    /// Nothing is copied; the engine drops the session at the end of its turn.
    template <class Device>
    using writer = write_back::writer<Device>;
};
static_assert(saving_policy<discard>);

}  // namespace cachedattn::saving
