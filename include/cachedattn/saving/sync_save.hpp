#pragma once
/// @file
/// @brief The paper's baseline for asynchronous saving: the turn's new KV is copied to host
/// memory when the turn ends, and the next job waits for the copy.
#include "cachedattn/saving/concept.hpp"

namespace cachedattn::saving {

struct sync_save {
    static constexpr std::string_view name = "sync_save";
    static constexpr save_mode mode = save_mode::at_turn_end;
};
static_assert(saving_policy<sync_save>);

}  // namespace cachedattn::saving
