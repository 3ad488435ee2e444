// The KV file decoder on arbitrary bytes: it rejects or returns an entry, and an accepted file
// is exactly what encoding that entry writes (no field is read without being checked).
#include <cachedattn/io/kv_file_format.hpp>
#include <cstdlib>
#include <span>

#include "common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cachedattn;
    const auto bytes = std::span(reinterpret_cast<const std::byte*>(data), size);
    const auto r = io::decode_kv_file(bytes, fuzz::G, fuzz::fingerprint, session_id{7});
    if (r.status != io::decode_status::ok) return 0;
    if (!r.entry || r.entry->meta.session != session_id{7}) std::abort();
    const auto again = io::encode_kv_file(*r.entry, fuzz::G, fuzz::fingerprint);
    if (again.size() != size || !std::equal(again.begin(), again.end(), bytes.begin())) std::abort();
    return 0;
}
