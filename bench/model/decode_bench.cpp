// Decode tokens/s of the CPU reference: vectorised loops on all cores vs one core, and vs a
// plain scalar loop on one core (the baseline the issue asks us to compare with).
//   ./build/bench/bench/model_decode_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cachedattn/cachedattn.hpp>
#include <fmt/format.h>

namespace ca = cachedattn;

template <class Ops>
static void model_decode(benchmark::State& state) {
    const auto cfg = state.range(0) == 0 ? ca::model::model_config::tiny() : ca::model::model_config::small();
    const int threads = static_cast<int>(state.range(1));
    ca::backend::basic_cpu_backend<Ops> b(cfg, 1, {threads});
    const std::int64_t history = state.range(2);
    ca::model::scratch_kv kv(b.geometry(), cfg.context_window);
    std::vector<float> logits(static_cast<std::size_t>(b.vocab()));
    std::vector<ca::token_id> prompt(static_cast<std::size_t>(history));
    for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<ca::token_id>((i * 7919) % cfg.vocab);
    b.forward(kv.view(), prompt, true, logits);
    kv.commit(history);
    const auto snapshot = kv.tokens();
    for (auto _ : state) {
        const ca::token_id t[1] = {static_cast<ca::token_id>(state.iterations() % cfg.vocab)};
        b.forward(kv.view(), t, true, logits);  // overwrite the same slot: constant history
        benchmark::DoNotOptimize(logits.data());
    }
    (void)snapshot;
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.SetLabel(fmt::format("{} {} thread(s) history {}", cfg.name, threads, history));
}

// model 0 = tiny, 1 = small; threads; history tokens
BENCHMARK_TEMPLATE(model_decode, ca::model::scalar_ops)->Args({1, 1, 512})->Args({0, 1, 128})->UseRealTime();
BENCHMARK_TEMPLATE(model_decode, ca::model::simd_ops)
    ->Args({1, 1, 512})->Args({1, 2, 512})->Args({0, 1, 128})->Args({0, 2, 128})->UseRealTime();

BENCHMARK_MAIN();
