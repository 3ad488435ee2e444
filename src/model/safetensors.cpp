#include "cachedattn/model/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "json_brief.hpp"
#include <set>
#include <utility>

#include "cachedattn/core/error.hpp"
#include "cachedattn/core/float16.hpp"

namespace cachedattn::model::safetensors {
namespace {
using detail::brief;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

struct dtype_entry {
    const char* name;
    std::size_t bytes;
    std::optional<dtype> type;
};
// Every dtype the format defines; only the float ones convert to float.
constexpr dtype_entry known_dtypes[] = {
    {"F32", 4, dtype::f32}, {"F16", 2, dtype::f16}, {"BF16", 2, dtype::bf16}, {"F64", 8, std::nullopt},
    {"I64", 8, std::nullopt}, {"U64", 8, std::nullopt}, {"I32", 4, std::nullopt}, {"U32", 4, std::nullopt},
    {"I16", 2, std::nullopt}, {"U16", 2, std::nullopt}, {"I8", 1, std::nullopt}, {"U8", 1, std::nullopt},
    {"BOOL", 1, std::nullopt}, {"F8_E4M3", 1, std::nullopt}, {"F8_E5M2", 1, std::nullopt},
};

const char* dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "F32";
        case dtype::f16: return "F16";
        case dtype::bf16: return "BF16";
    }
    return "?";
}

/// a * b, or nullopt when it does not fit in 64 bits.
std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
    std::uint64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

[[noreturn]] void entry_error(const std::string& where, const std::string& name, const std::string& what) {
    throw input_error(where + ": tensor '" + name + "': " + what);
}

/// One header entry, every field checked; errors name the file and the tensor.
tensor_info parse_entry(const std::string& name, const nlohmann::json& j, std::uint64_t data_bytes,
                        const std::string& where) {
    auto fail = [&](const std::string& what) { entry_error(where, name, what); };
    if (!j.is_object()) fail("entry must be a JSON object, got " + std::string(j.type_name()));
    tensor_info t;
    t.name = name;
    for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!j.contains(field)) fail(std::string("missing field '") + field + "'");

    const auto& dt = j.at("dtype");
    if (!dt.is_string()) fail("'dtype' must be a string, got " + std::string(dt.type_name()));
    t.dtype_name = dt.get<std::string>();
    const auto known = std::find_if(std::begin(known_dtypes), std::end(known_dtypes),
                                    [&](const dtype_entry& e) { return t.dtype_name == e.name; });
    if (known == std::end(known_dtypes)) fail("unsupported dtype '" + t.dtype_name + "'");
    t.element_bytes = known->bytes;
    t.type = known->type;

    const auto& shape = j.at("shape");
    if (!shape.is_array()) fail("'shape' must be an array, got " + std::string(shape.type_name()));
    std::uint64_t elements = 1;
    for (const auto& d : shape) {
        if (d.is_number_integer() && !d.is_number_unsigned())
            fail("negative dimension " + std::to_string(d.get<std::int64_t>()) + " in 'shape'");
        if (!d.is_number_unsigned()) fail("'shape' must hold non-negative integers, got " + brief(d));
        t.shape.push_back(d.get<std::uint64_t>());
        const auto next = checked_mul(elements, t.shape.back());
        if (!next) fail("shape " + brief(shape) + " has more elements than 64 bits can count");
        elements = *next;
    }
    const auto bytes = checked_mul(elements, t.element_bytes);
    if (!bytes) fail("shape " + brief(shape) + " has more bytes than 64 bits can count");

    const auto& off = j.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        fail("'data_offsets' must be two non-negative integers [begin, end], got " + brief(off));
    t.begin = off[0].get<std::uint64_t>();
    t.end = off[1].get<std::uint64_t>();
    if (t.begin > t.end)
        fail("data_offsets begin " + std::to_string(t.begin) + " is after end " + std::to_string(t.end));
    if (t.end > data_bytes)
        fail("data_offsets end " + std::to_string(t.end) + " is beyond the data buffer (" +
             std::to_string(data_bytes) + " bytes)");
    if (t.end - t.begin != *bytes)
        fail("holds " + std::to_string(t.end - t.begin) + " bytes but shape " + shape_string(t.shape) + " of " +
             t.dtype_name + " needs " + std::to_string(*bytes));
    return t;
}

/// A file descriptor closed on scope exit.
struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
};

/// Reads exactly `n` bytes at `offset` (pread may return less than asked, e.g. above 2 GB).
void read_exact(int fd, void* out, std::size_t n, std::uint64_t offset, const std::string& where) {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
        const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw io_error(where + ": read failed: " + std::strerror(errno));
        if (r == 0) throw input_error(where + ": file ended early (was it truncated while being read?)");
        p += r;
        n -= static_cast<std::size_t>(r);
        offset += static_cast<std::uint64_t>(r);
    }
}

}  // namespace

std::string shape_string(const std::vector<std::uint64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::uint64_t tensor_info::elements() const noexcept {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

const tensor_info* header::find(std::string_view name) const noexcept {
    for (const auto& t : tensors)
        if (t.name == name) return &t;
    return nullptr;
}

header parse_header(std::string_view json, std::uint64_t data_bytes, const std::string& where) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json.begin(), json.end());
    } catch (const nlohmann::json::exception& e) {
        throw input_error(where + ": the header is not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw input_error(where + ": the header must be a JSON object, got " + j.type_name());
    header h;
    for (const auto& [name, value] : j.items()) {
        if (name == "__metadata__") {
            if (!value.is_object()) throw input_error(where + ": '__metadata__' must be an object of strings");
            for (const auto& [k, v] : value.items()) {
                if (!v.is_string())
                    throw input_error(where + ": '__metadata__' value '" + k + "' must be a string, got " +
                                      v.type_name());
                h.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        h.tensors.push_back(parse_entry(name, value, data_bytes, where));
    }
    // The tensors must tile the data buffer: sorted by offset, each starts where the last ended.
    std::sort(h.tensors.begin(), h.tensors.end(),
              [](const tensor_info& a, const tensor_info& b) {
                  return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
              });
    std::uint64_t expected = 0;
    const tensor_info* prev = nullptr;
    for (const auto& t : h.tensors) {
        if (t.begin < expected)
            throw input_error(where + ": tensor '" + t.name + "' (bytes " + std::to_string(t.begin) + ".." +
                              std::to_string(t.end) + ") overlaps tensor '" + prev->name + "' (bytes " +
                              std::to_string(prev->begin) + ".." + std::to_string(prev->end) + ")");
        if (t.begin > expected)
            throw input_error(where + ": tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) +
                              " but the previous tensor ends at " + std::to_string(expected) +
                              " (a gap in the data buffer)");
        expected = t.end;
        prev = &t;
    }
    if (expected != data_bytes)
        throw input_error(where + ": the data buffer has " + std::to_string(data_bytes) + " bytes but its tensors cover " +
                          std::to_string(expected));
    return h;
}

std::vector<float> to_float(const tensor_info& t, std::span<const std::byte> bytes, const std::string& where) {
    if (!t.type)
        throw input_error(where + ": tensor '" + t.name + "' has dtype " + t.dtype_name +
                          ", which does not convert to float (F32, F16 and BF16 do)");
    if (bytes.size() != t.end - t.begin)
        throw input_error(where + ": tensor '" + t.name + "': got " + std::to_string(bytes.size()) + " bytes, expected " +
                          std::to_string(t.end - t.begin));
    const std::size_t n = bytes.size() / t.element_bytes;
    std::vector<float> out(n);
    if (*t.type == dtype::f32) {
        if (n > 0) std::memcpy(out.data(), bytes.data(), bytes.size());  // an empty span may be null
        return out;
    }
    for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h = 0;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        out[i] = *t.type == dtype::f16 ? f16_to_float(h) : bf16_to_float(h);
    }
    return out;
}

reader::reader(std::filesystem::path file) : path_(std::move(file)) {
    const std::string where = path_.string();
    // O_NONBLOCK: a FIFO in a shard's place must fail the regular-file check, not block the open.
    fd_guard fd{::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
    if (fd.fd < 0) throw input_error(where + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0) throw io_error(where + ": cannot stat (" + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) throw input_error(where + ": not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < 8)
        throw input_error(where + ": " + std::to_string(size) +
                          " bytes is too short for a safetensors file (8-byte header length)");
    unsigned char len[8];
    read_exact(fd.fd, len, 8, 0, where);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    if (n > max_header_bytes)
        throw input_error(where + ": header length " + std::to_string(n) + " exceeds the limit of " +
                          std::to_string(max_header_bytes) + " bytes");
    if (n > size - 8)
        throw input_error(where + ": header length " + std::to_string(n) + " is beyond the end of the file (" +
                          std::to_string(size) + " bytes)");
    std::string json(static_cast<std::size_t>(n), '\0');
    read_exact(fd.fd, json.data(), json.size(), 8, where);
    data_start_ = 8 + n;
    header_ = parse_header(json, size - data_start_, where);
}

const tensor_info& reader::at(std::string_view name) const {
    if (const auto* t = header_.find(name)) return *t;
    throw input_error(path_.string() + ": no tensor '" + std::string(name) + "'");
}

std::vector<float> reader::read(const tensor_info& t) const {
    const std::string where = path_.string();
    if (!t.type) return to_float(t, {}, where);  // the dtype error, before reading anything
    // Reopened per read: the reader stays copyable and holds no descriptor between reads.
    fd_guard fd{::open(path_.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.fd < 0) throw input_error(where + ": cannot open (" + std::strerror(errno) + ")");
    std::vector<std::byte> bytes(static_cast<std::size_t>(t.end - t.begin));
    read_exact(fd.fd, bytes.data(), bytes.size(), data_start_ + t.begin, where);
    return to_float(t, bytes, where);
}

std::vector<std::byte> encode(std::span<const tensor_to_write> tensors,
                              const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    std::set<std::string> names;
    std::uint64_t offset = 0;
    for (const auto& t : tensors) {
        std::uint64_t n = 1;
        for (auto d : t.shape) {
            const auto next = checked_mul(n, d);
            if (!next) throw config_error("safetensors::encode: tensor '" + t.name + "': shape overflows");
            n = *next;
        }
        if (n != t.values.size())
            throw config_error("safetensors::encode: tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                               " values but shape " + shape_string(t.shape) + " needs " + std::to_string(n));
        if (t.name == "__metadata__" || !names.insert(t.name).second)
            throw config_error("safetensors::encode: tensor name '" + t.name + "' is reserved or repeated");
        const std::uint64_t end = offset + n * size_of(t.type);
        h[t.name] = {{"dtype", dtype_name(t.type)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string json = h.dump();
    json.resize((json.size() + 7) / 8 * 8, ' ');  // the data buffer starts 8-byte aligned
    std::vector<std::byte> out(8 + json.size() + offset);
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((json.size() >> (8 * i)) & 0xff);
    std::memcpy(out.data() + 8, json.data(), json.size());
    std::byte* p = out.data() + 8 + json.size();
    for (const auto& t : tensors) {
        for (float v : t.values) {
            if (t.type == dtype::f32) {
                std::memcpy(p, &v, 4);
                p += 4;
                continue;
            }
            const std::uint16_t h16 = t.type == dtype::f16 ? float_to_f16(v) : float_to_bf16(v);
            std::memcpy(p, &h16, 2);
            p += 2;
        }
    }
    return out;
}

void write(const std::filesystem::path& file, std::span<const tensor_to_write> tensors,
           const std::map<std::string, std::string>& metadata) {
    const auto bytes = encode(tensors, metadata);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw io_error("safetensors::write: cannot write " + file.string());
}

}  // namespace cachedattn::model::safetensors
