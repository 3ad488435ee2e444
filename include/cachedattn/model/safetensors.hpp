#pragma once
/// @file
/// @brief A validating reader (and a small writer) of the safetensors format, in which Hugging
/// Face checkpoints ship their weights.
///
/// A file is an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}`,
/// then the data buffer (offsets are relative to its start). Every field is checked before it
/// is used, against the format's rules as the reference implementation (huggingface/safetensors)
/// enforces them: the header fits in the file and in 100 MB, every tensor has a known dtype, a
/// shape whose element count does not overflow, and exactly element count x element size bytes,
/// and the tensors tile the data buffer without overlaps or gaps. A violation throws input_error
/// naming the file and the tensor. Implemented in src/model/safetensors.cpp (nlohmann-json
/// stays out of the public headers).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cachedattn/core/geometry.hpp"

namespace cachedattn::model::safetensors {

/// Largest header the reader accepts (the reference implementation's limit).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

struct tensor_info {
    std::string name;
    std::string dtype_name;  ///< as written: "F32", "BF16", "I64", ...
    /// The element type when it converts to float (F32, F16, BF16); nullopt for the other
    /// dtypes the format knows (integers, F64, FP8), which can be listed but not read.
    std::optional<dtype> type;
    std::size_t element_bytes = 0;
    std::vector<std::uint64_t> shape;
    std::uint64_t begin = 0, end = 0;  ///< byte range in the data buffer

    std::uint64_t elements() const noexcept;  ///< product of shape (validated not to overflow)
};

/// A validated header: its tensors in data-buffer order and its `__metadata__`.
struct header {
    std::vector<tensor_info> tensors;
    std::map<std::string, std::string> metadata;

    const tensor_info* find(std::string_view name) const noexcept;
};

/// "[2, 3]": a shape as error messages print it.
std::string shape_string(const std::vector<std::uint64_t>& shape);

/// Parses and validates header JSON for a data buffer of `data_bytes` bytes. `where` (the file)
/// starts every error message.
header parse_header(std::string_view json, std::uint64_t data_bytes, const std::string& where);

/// The tensor's bytes (little-endian, `t.end - t.begin` of them) as floats. Throws input_error
/// for dtypes that do not convert.
std::vector<float> to_float(const tensor_info& t, std::span<const std::byte> bytes, const std::string& where);

/// An open, validated safetensors file. Tensors are read on demand (positioned reads), so a
/// multi-gigabyte shard is never held whole.
class reader {
public:
    /// Opens and validates `file`: throws input_error when it is missing, not a regular file,
    /// or breaks any rule above.
    explicit reader(std::filesystem::path file);

    const std::filesystem::path& path() const noexcept { return path_; }
    const header& contents() const noexcept { return header_; }
    /// The tensor named `name` (input_error naming the file when there is none).
    const tensor_info& at(std::string_view name) const;
    /// Reads `t` (one of contents().tensors) and converts it to float.
    std::vector<float> read(const tensor_info& t) const;

private:
    std::filesystem::path path_;
    std::uint64_t data_start_ = 0;
    header header_;
};

/// One tensor for write(): float values stored as `type` (rounded to nearest even).
struct tensor_to_write {
    std::string name;
    dtype type = dtype::f32;
    std::vector<std::uint64_t> shape;
    std::span<const float> values;  ///< product(shape) values, row-major
};

/// The bytes of a safetensors file holding `tensors` in the given order (the header padded
/// with spaces to 8 bytes, as the reference writer does). Throws config_error when a tensor's
/// value count does not match its shape or a name repeats.
std::vector<std::byte> encode(std::span<const tensor_to_write> tensors,
                              const std::map<std::string, std::string>& metadata = {});
/// encode() written to `file` (io_error when it cannot be written).
void write(const std::filesystem::path& file, std::span<const tensor_to_write> tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace cachedattn::model::safetensors
