// The file tier's read path: a stored session's file is replaced by arbitrary bytes; take()
// must return nothing or exactly what was stored, never other data, and never crash.
#include <cachedattn/tier/file_tier.hpp>
#include <cstdlib>

#include "common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cachedattn;
    static tier::file_tier t({fuzz::scratch("tier"), 1 << 24, io::io_mode::thread_pool}, {fuzz::G, fuzz::fingerprint});
    const session_id s{7};
    const auto stored = fuzz::entry(7, 13);
    t.put(kv_entry{stored.meta, stored.data});
    t.flush();
    fuzz::write_file(t.path_of(s), data, size);
    const auto got = t.take(s);
    if (got && !(got->meta.tokens == stored.meta.tokens && got->meta.first_offset == stored.meta.first_offset &&
                 got->data == stored.data))
        std::abort();
    if (t.sessions() != 0 || t.used_bytes() != 0) std::abort();
    return 0;
}
