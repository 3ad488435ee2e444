// Asynchronous saving against saving synchronously at the end of each job (the paper's
// baseline, §3.3) and against write-back (copy out only when evicted), on the CPU backend with
// the device tier's emulated host<->device link, all measured in the same run.
//   cmake --workflow --preset bench && ./build/bench/bench/engine_save_bench [rounds] [reps]
// 6 sessions take turns from one queue (256 then 64 new tokens, 16 generated); the device tier holds
// about two of them, DRAM all of them, so every turn demotes someone. Reported: wall time to
// drain the queue, mean time a job holds the engine (TTFT + decode + time blocked on saving),
// bytes saved, and how many device demotions a saved copy served.
#include <algorithm>
#include <cachedattn/cachedattn.hpp>
#include <filesystem>
#include <fmt/format.h>
#include <unistd.h>

namespace ca = cachedattn;

namespace {
template <class Save>
using stack = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, ca::tier::host_tier>, ca::eviction::lru,
                               ca::prefetch::none, ca::truncation::drop_oldest, ca::posenc::decoupled_rope, Save>;

struct outcome {
    double wall = 0, job = 0, saved_mib = 0, save_wait = 0, ttft = 0, decode = 0;
    std::size_t saved_demotions = 0, demotions = 0, hits = 0, turns = 0;
};

template <class Save>
outcome run(ca::backend::cpu_backend& model, double link, int sessions, int rounds) {
    const auto& g = model.geometry();
    typename stack<Save>::config c;
    // About two sessions at their final size (first turn 256 tokens, then 64 + 16 per turn).
    std::get<0>(c.tiers).capacity_bytes = 2 * g.blocks_for(256 + static_cast<std::size_t>(rounds) * 80) * g.block_bytes();
    std::get<0>(c.tiers).link_bytes_per_s = link;
    std::get<1>(c.tiers).capacity_bytes = 256 << 20;
    stack<Save> kv(c, g, model.weights_id());
    outcome o;
    const auto t0 = std::chrono::steady_clock::now();
    {
        ca::engine eng(kv, model);
        std::vector<ca::token_id> input;
        for (int r = 0; r < rounds; ++r)
            for (int s = 1; s <= sessions; ++s) {
                input.resize(r == 0 ? 256 : 64);  // a long first prompt, then short turns
                for (std::size_t i = 0; i < input.size(); ++i)
                    input[i] = static_cast<ca::token_id>((i * 31 + static_cast<std::size_t>(r * 7 + s)) % 512);
                eng.submit({ca::session_id{static_cast<std::uint64_t>(s)}, input, 16});
            }
        for (const auto& jr : eng.drain()) {
            const auto& m = jr.result.metrics;
            o.job += m.ttft_s + m.decode_s + m.save_s;
            o.ttft += m.ttft_s;
            o.decode += m.decode_s;
            o.save_wait += m.save_s;
            o.saved_mib += static_cast<double>(m.bytes_saved) / (1 << 20);
            o.hits += m.hit_tier.has_value();
            ++o.turns;
        }
    }  // the engine drains its save stream here: part of the wall time
    o.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    o.job /= static_cast<double>(o.turns);
    o.save_wait /= static_cast<double>(o.turns);
    o.ttft /= static_cast<double>(o.turns);
    o.decode /= static_cast<double>(o.turns);
    o.saved_demotions = kv.stats().saved_demotions;
    o.demotions = kv.stats().demotions[0];
    return o;
}

/// Runs the three modes `reps` times each, interleaved (so slow drifts of the machine hit all
/// three alike), and keeps each mode's median run by job time.
struct three {
    outcome sync, async, wb;
};
three compare(int reps, ca::backend::cpu_backend& model, double link, int sessions, int rounds) {
    std::vector<outcome> s, a, w;
    for (int i = 0; i < reps; ++i) {
        s.push_back(run<ca::saving::sync_save>(model, link, sessions, rounds));
        a.push_back(run<ca::saving::async_save>(model, link, sessions, rounds));
        w.push_back(run<ca::saving::write_back>(model, link, sessions, rounds));
    }
    auto median = [](std::vector<outcome> v) {
        std::sort(v.begin(), v.end(), [](const outcome& x, const outcome& y) { return x.job < y.job; });
        return v[v.size() / 2];
    };
    return {median(s), median(a), median(w)};
}

void row(std::string_view name, const outcome& o, const outcome& base) {
    fmt::print("{:<12} {:>9.1f} {:>11.2f} {:>9.2f} {:>9.2f} {:>12.2f} {:>10.2f} {:>9.1f} {:>11}/{:<4} {:>7.3f}\n",
               name, o.wall * 1e3, o.job * 1e3, o.ttft * 1e3, o.decode * 1e3, o.save_wait * 1e3, o.saved_mib, 100.0 * static_cast<double>(o.hits) / o.turns,
               o.saved_demotions, o.demotions, o.job / base.job);
}
}  // namespace

int main(int argc, char** argv) try {
    const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
    const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
    const int sessions = 6;
    ca::model::model_config cfg = ca::model::model_config::tiny();
    cfg.name = "bench-8layer";
    cfg.layers = 8;
    cfg.context_window = 2048;
    ca::backend::cpu_backend model(cfg, 1, {1});  // one compute thread; the I/O streams get the other core
    fmt::print("model {} ({} layers), {} sessions x {} rounds (first prompt 256 tokens, then 64), 16 generated "
               "tokens per turn, median of {} runs\n",
               cfg.name, cfg.layers, sessions, rounds, reps);
    run<ca::saving::async_save>(model, 0, sessions, 1);  // warm-up: page faults, caches
    // Calibrate: with copies at memcpy speed, how long is a job and how much does it save?
    const auto cal = run<ca::saving::async_save>(model, 0, sessions, rounds);
    const double saved_per_job = cal.saved_mib * (1 << 20) / static_cast<double>(cal.turns);
    // Links at which saving a job's new KV takes 0 (memcpy), 10% and 30% of the job.
    for (double share : {0.0, 0.1, 0.3}) {
        const double link = share > 0 ? saved_per_job / (share * cal.job) : 0;
        fmt::print("\n== {}\n", share > 0 ? fmt::format("emulated link {:.1f} MB/s (a job's save ~ {:.0f}% of the job)",
                                                        link / 1e6, share * 100)
                                          : std::string("host memory as the device (memcpy)"));
        fmt::print("{:<12} {:>9} {:>11} {:>9} {:>9} {:>12} {:>10} {:>9} {:>16} {:>7}\n", "saving", "wall ms", "job ms",
                   "TTFT ms", "decode ms", "blocked ms", "saved MiB", "hit %", "saved/demotions", "/ sync");
        const three t = compare(reps, model, link, sessions, rounds);
        row("sync_save", t.sync, t.sync);
        row("async_save", t.async, t.sync);
        row("write_back", t.wb, t.sync);
    }
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
}
