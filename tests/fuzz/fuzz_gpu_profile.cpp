// The GPU profile loader on arbitrary files: a profile that passes validation, or a
// config_error naming the problem; nothing else.
#include <cachedattn/core/error.hpp>
#include <cachedattn/sim/gpu_profile.hpp>
#include <cstdlib>

#include "common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cachedattn;
    const auto file = fuzz::scratch("profile.json");
    fuzz::write_file(file, data, size);
    try {
        const auto p = sim::gpu_profile::load(file, sim::gpu_profile::a100_pcie4(2));
        p.validate();  // whatever loads is valid
        if (p.gpus < 1 || p.ssds < 1) std::abort();
    } catch (const cachedattn::config_error&) {
    }
    return 0;
}
