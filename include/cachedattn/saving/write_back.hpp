#pragma once
/// @file
/// @brief No saving: a session's KV stays only in the device tier until eviction demotes it,
/// and the demotion reads it from the device then (vLLM-style swap-out).
#include "cachedattn/saving/concept.hpp"

namespace cachedattn::saving {

struct write_back {
    static constexpr std::string_view name = "write_back";
    static constexpr save_mode mode = save_mode::write_back;
};
static_assert(saving_policy<write_back>);

}  // namespace cachedattn::saving
