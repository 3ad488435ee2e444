#pragma once
// Shared helpers for the tests: scratch directories, the stacks under test, and the
// from-scratch reference computation.
#include <doctest/doctest.h>

#include <atomic>
#include <cachedattn/cachedattn.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace test {
namespace ca = cachedattn;

/// True under the sanitizer presets (CACHEDATTN_TEST_QUICK=1): the property tests run fewer
/// conversations there, since the full count runs in the default preset.
inline bool quick() {
    const char* v = std::getenv("CACHEDATTN_TEST_QUICK");
    return v != nullptr && v[0] == '1';
}

/// A fresh directory under $CACHEDATTN_TEST_TMP (or /tmp), removed at scope exit.
class temp_dir {
public:
    explicit temp_dir(const std::string& tag) {
        static std::atomic<int> counter{0};
        const char* root = std::getenv("CACHEDATTN_TEST_TMP");
        path_ = std::filesystem::path(root ? root : "/tmp") /
                ("cachedattn-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

using three_tiers = ca::tiers<ca::tier::device_tier, ca::tier::host_tier, ca::tier::file_tier>;

template <class Evict = ca::eviction::lru, class PosEnc = ca::posenc::decoupled_rope,
          class Trunc = ca::truncation::drop_oldest, class Save = ca::saving::async_save>
using stack3 = ca::kv_hierarchy<three_tiers, Evict, ca::prefetch::none, Trunc, PosEnc, Save>;

/// Hierarchy config with the given byte capacities.
template <class H>
typename H::config capacities(std::size_t device, std::size_t host, std::size_t file, const std::filesystem::path& dir) {
    typename H::config c;
    std::get<0>(c.tiers).capacity_bytes = device;
    std::get<1>(c.tiers).capacity_bytes = host;
    std::get<2>(c.tiers).capacity_bytes = file;
    std::get<2>(c.tiers).directory = dir;
    return c;
}

/// Logits of the last token of `tokens`, computed from scratch (no cache, positions 0..).
template <class Backend>
std::vector<float> reference_logits(Backend& b, const std::vector<ca::token_id>& tokens, bool keys_pre_rope = true) {
    ca::model::scratch_kv kv(b.geometry(), static_cast<std::int64_t>(tokens.size()));
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    b.forward(kv.view(), tokens, keys_pre_rope, logits);
    return logits;
}

/// max_i |a_i - b_i| / max(max_i |b_i|, tiny): one relative error for a whole logit vector.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double diff = 0, scale = 1e-30;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
        scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    }
    return diff / scale;
}

inline std::vector<ca::token_id> random_tokens(std::mt19937_64& rng, std::size_t n, int vocab) {
    std::uniform_int_distribution<int> d(0, vocab - 1);
    std::vector<ca::token_id> v(n);
    for (auto& t : v) t = d(rng);
    return v;
}

}  // namespace test
