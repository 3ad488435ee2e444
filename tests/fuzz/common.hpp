#pragma once
// What the fuzz targets share: a fixed small geometry, a deterministic entry, and a scratch file
// per process for the readers that take a path.
#include <unistd.h>

#include <cachedattn/core/kv_entry.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz {

inline const cachedattn::model_geometry G{2, 4, 2, 8, cachedattn::dtype::f32, 4};
inline constexpr std::uint64_t fingerprint = 0x5eed;

inline cachedattn::kv_entry entry(std::uint64_t s, std::size_t tokens, std::uint32_t first_offset = 1) {
    cachedattn::kv_entry e;
    e.meta.session = cachedattn::session_id{s};
    e.meta.first_offset = first_offset;
    for (std::size_t i = 0; i < tokens; ++i) e.meta.tokens.push_back(static_cast<cachedattn::token_id>(i * 7 + s));
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>((i * 31 + s) & 0xff);
    return e;
}

/// A file in the temp directory that this process rewrites for every input.
inline std::filesystem::path scratch(const char* tag) {
    static const auto dir = std::filesystem::temp_directory_path() / ("cachedattn-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir / tag;
}

inline void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                             static_cast<std::streamsize>(size));
}

}  // namespace fuzz
