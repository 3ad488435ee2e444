// Put and take throughput of the Redis tier on loopback beside the file tier, for one session
// of 1, 16 and 64 MiB, measured in the same run and interleaved (per size: file put, redis put,
// file take, redis take). The benchmark starts its own redis-server (tests/support).
//   cmake --preset bench -B build/redis-bench && cmake --build build/redis-bench --target tier_redis_bench
//   ./build/redis-bench/bench/tier_redis_bench --benchmark_counters_tabular=true
// put: encode + store (the file tier's put also waits for its queued write: flush); take: read
// back + verify checksums + decode. The session's copy before a put and its removal after are
// not timed. Wall time (the server works while the client waits).
#include <benchmark/benchmark.h>

#include <cachedattn/tier/file_tier.hpp>
#include <cachedattn/tier/redis_tier.hpp>
#include <memory>

#include "../../tests/support/redis_server.hpp"

namespace ca = cachedattn;

namespace {
// 64 KiB of K and V per token, 16-token blocks of 1 MiB: a 7B-class layer stack in f32.
const ca::model_geometry G{8, 8, 8, 128, ca::dtype::f32, 16};

test::redis_server& server() {
    static test::redis_server s;
    return s;
}

ca::kv_entry make_entry(std::size_t mib) {
    ca::kv_entry e;
    e.meta.session = ca::session_id{1};
    e.meta.tokens.resize(mib * static_cast<std::size_t>(G.block_tokens));
    for (std::size_t i = 0; i < e.meta.tokens.size(); ++i) e.meta.tokens[i] = static_cast<ca::token_id>(i);
    e.data.resize(e.meta.blocks(G) * G.block_bytes());
    for (std::size_t i = 0; i < e.data.size(); ++i) e.data[i] = static_cast<std::byte>(i * 131);
    return e;
}

/// One tier of each kind with room for two sessions of the largest size.
template <class T>
std::unique_ptr<T> make_tier();
template <>
std::unique_ptr<ca::tier::file_tier> make_tier() {
    const auto dir = std::filesystem::temp_directory_path() / ("cachedattn-bench-" + std::to_string(::getpid()));
    return std::make_unique<ca::tier::file_tier>(ca::tier::file_tier::config{dir, std::size_t{160} << 20}, ca::tier::tier_init{G, 1});
}
template <>
std::unique_ptr<ca::tier::redis_tier> make_tier() {
    ca::tier::redis_tier::config c;
    c.port = server().port();
    c.capacity_bytes = std::size_t{160} << 20;
    c.command_timeout_ms = 10000;
    return std::make_unique<ca::tier::redis_tier>(c, ca::tier::tier_init{G, 1});
}

/// The file tier's put only queues the write; waiting for it makes both puts "stored".
template <class T>
void settle(T& t) {
    if constexpr (requires { t.flush(); }) t.flush();
}

template <class T>
void tier_put(benchmark::State& state) {
    const auto entry = make_entry(static_cast<std::size_t>(state.range(0)));
    auto t = make_tier<T>();
    for (auto _ : state) {
        state.PauseTiming();
        ca::kv_entry e = entry;
        state.ResumeTiming();
        t->put(std::move(e));
        settle(*t);
        state.PauseTiming();
        t->erase(entry.meta.session);
        state.ResumeTiming();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t->charge(entry.meta)));
}

template <class T>
void tier_take(benchmark::State& state) {
    const auto entry = make_entry(static_cast<std::size_t>(state.range(0)));
    auto t = make_tier<T>();
    bool ok = true;
    for (auto _ : state) {
        state.PauseTiming();
        t->put(ca::kv_entry(entry));
        settle(*t);
        state.ResumeTiming();
        ok = ok && t->take(entry.meta.session).has_value();
    }
    if (!ok) state.SkipWithError("a take missed");
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t->charge(entry.meta)));
}

void register_all() {
    for (const std::int64_t mib : {1, 16, 64}) {
        for (auto* b : {benchmark::RegisterBenchmark("tier_put/file", tier_put<ca::tier::file_tier>),
                        benchmark::RegisterBenchmark("tier_put/redis", tier_put<ca::tier::redis_tier>),
                        benchmark::RegisterBenchmark("tier_take/file", tier_take<ca::tier::file_tier>),
                        benchmark::RegisterBenchmark("tier_take/redis", tier_take<ca::tier::redis_tier>)})
            b->Arg(mib)->ArgName("MiB")->UseRealTime()->Unit(benchmark::kMillisecond);
    }
}
}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
