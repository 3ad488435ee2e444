// One conformance suite run over every tier: the contract in tier/concept.hpp (the checks are
// in tier_contract.hpp, shared with the Redis tier's test, which needs a server of its own).
#include "tier_contract.hpp"

using namespace cachedattn;

namespace {
const model_geometry& G = test::contract_geometry;

/// Builds each tier with room for about `blocks` blocks.
template <class T>
struct make_tier;
template <>
struct make_tier<tier::device_tier> {
    static tier::device_tier make(std::size_t blocks, const std::filesystem::path&) {
        return tier::device_tier({blocks * G.block_bytes()}, {G, 1});
    }
};
template <>
struct make_tier<tier::host_tier> {
    static tier::host_tier make(std::size_t blocks, const std::filesystem::path&) {
        return tier::host_tier({blocks * G.block_bytes()}, {G, 1});
    }
};
template <>
struct make_tier<tier::file_tier> {
    static tier::file_tier make(std::size_t blocks, const std::filesystem::path& dir) {
        return tier::file_tier({dir, blocks * (G.block_bytes() + 200)}, {G, 1});
    }
};
}  // namespace

TEST_CASE_TEMPLATE_DEFINE("tier contract", T, tier_contract) {
    test::temp_dir dir("tier-contract");
    T t = make_tier<T>::make(8, dir.path());
    test::check_tier_contract(t);
}
TEST_CASE_TEMPLATE_INVOKE(tier_contract, tier::device_tier, tier::host_tier, tier::file_tier);
