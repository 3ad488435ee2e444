// The ShareGPT JSON and BurstGPT CSV readers on arbitrary files: a trace or a
// cachedattn::error, nothing else (no other exception, no crash, no hang).
#include <cachedattn/core/error.hpp>
#include <cachedattn/workload/trace_readers.hpp>
#include <cmath>
#include <cstdlib>

#include "common.hpp"

namespace {
void check(const cachedattn::workload::trace& t) {
    for (const auto& c : t.conversations)
        for (const auto& turn : c.turns)
            if (turn.input_tokens < 0 || turn.output_tokens < 0 || !std::isfinite(turn.at_s) ||
                !std::isfinite(turn.think_s) || turn.think_s < 0)
                std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cachedattn;
    const auto file = fuzz::scratch("trace");
    fuzz::write_file(file, data, size);
    try {
        check(workload::read_sharegpt(file));
    } catch (const cachedattn::error&) {
    }
    try {
        check(workload::read_burstgpt(file, {.max_rows = 10000}));
    } catch (const cachedattn::error&) {
    }
    return 0;
}
