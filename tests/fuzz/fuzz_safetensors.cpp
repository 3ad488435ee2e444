// The safetensors reader on arbitrary files: it rejects them with input_error or accepts them,
// and then every tensor of a float dtype reads as exactly product(shape) values that the writer
// turns back into the same bits (no field is used without being checked, no byte is misread).
#include <cachedattn/core/error.hpp>
#include <cachedattn/model/safetensors.hpp>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace cachedattn;
    namespace st = model::safetensors;
    const auto file = fuzz::scratch("model.safetensors");
    fuzz::write_file(file, data, size);
    try {
        const st::reader r(file);
        for (const auto& t : r.contents().tensors) {
            if (t.begin > t.end || t.end - t.begin != t.elements() * t.element_bytes) std::abort();
            if (!t.type) continue;  // listed, not convertible: read() throws input_error
            const auto values = r.read(t);
            if (values.size() != t.elements()) std::abort();
            // Re-encoding the values gives the stored bytes back (16-bit NaN payloads included).
            const std::vector<st::tensor_to_write> one{{t.name, *t.type, t.shape, values}};
            const auto again = st::encode(one);
            const std::size_t bytes = values.size() * size_of(*t.type);
            // Accepted tensors tile the data buffer, so it starts where the last one's end says.
            const std::size_t data_start = size - r.contents().tensors.back().end;
            if (bytes && std::memcmp(again.data() + again.size() - bytes, data + data_start + t.begin, bytes) != 0)
                std::abort();
        }
    } catch (const input_error&) {
    }
    return 0;
}
