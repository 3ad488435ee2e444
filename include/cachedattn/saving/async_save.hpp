#pragma once
/// @file
/// @brief The paper's asynchronous saving (§3.3): new KV leaves the device layer by layer
/// (prefill) and step by step (decode) while the model computes; the copies drain from the
/// write stream without blocking the next job.
#include "cachedattn/saving/concept.hpp"

namespace cachedattn::saving {

struct async_save {
    static constexpr std::string_view name = "async_save";
    static constexpr save_mode mode = save_mode::layer_wise;
};
static_assert(saving_policy<async_save>);

}  // namespace cachedattn::saving
