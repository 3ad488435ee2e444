// The main job: a multi-turn policy comparison on the built-in workload. Every stack serves the
// same interleaved conversations on the CPU reference runtime; the table shows where each
// turn's KV came from and what it cost.
#include <CLI/CLI.hpp>
#include <cachedattn/cachedattn.hpp>

#include "../common/cli.hpp"
#include <filesystem>
#include <fmt/format.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace ca = cachedattn;

namespace {

struct options {
    ca::workload::synthetic_chat_config workload;
    std::string model = "tiny";
    double device_mib = 1.0, host_mib = 2.0, file_mib = 4.0;
    double link_gbps = 0;
    std::size_t queue_depth = 16;
    std::size_t batch = 1;
    std::string cache_dir;
    int threads = 0;
};

struct row {
    std::string name;
    ca::metrics::summary sum{3};
};

/// Serves the workload through the engine's job queue, keeping up to `depth` jobs queued
/// (the look-ahead the scheduler-aware policies see; Belady gets the whole future).
template <class Stack>
row run(const std::string& name, const options& o, ca::backend::cpu_backend& model,
        const ca::workload::trace& turns, std::size_t depth) {
    typename Stack::config cfg;
    cfg.device().capacity_bytes = static_cast<std::size_t>(o.device_mib * (1 << 20));
    cfg.device().link_bytes_per_s = o.link_gbps * 1e9;
    cfg.host().capacity_bytes = static_cast<std::size_t>(o.host_mib * (1 << 20));
    cfg.ssd().capacity_bytes = static_cast<std::size_t>(o.file_mib * (1 << 20));
    cfg.ssd().directory = std::filesystem::path(o.cache_dir) / name;
    Stack kv(cfg, model.geometry(), model.weights_id());
    ca::engine engine(kv, model, {.batch_size = o.batch});
    row r{name};
    ca::run_trace(engine, turns, depth, [&](const ca::job_result& done) { r.sum.add(done.result.metrics); });
    kv.check_invariants();
    return r;
}

}  // namespace

int main(int argc, char** argv) try {
    options o;
    o.workload.min_input = 16;
    o.workload.max_input = 64;
    o.workload.min_output = 8;
    o.workload.max_output = 32;
    CLI::App app{"cachedattn: multi-turn KV cache policy comparison on the CPU reference runtime"};
    app.add_option("--sessions", o.workload.sessions, "conversations")->check(examples::count_in(1, 100'000));
    app.add_option("--turns", o.workload.turns, "turns per conversation")->check(examples::count_in(1, 10'000));
    app.add_option("--seed", o.workload.seed, "workload seed");
    app.add_option("--model", o.model, "model shape")->check(CLI::IsMember({"tiny", "small"}));
    app.add_option("--device-mib", o.device_mib, "device tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e6));
    app.add_option("--host-mib", o.host_mib, "host DRAM tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e7));
    app.add_option("--file-mib", o.file_mib, "SSD file tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e9));
    app.add_option("--cache-dir", o.cache_dir, "directory for the file tier (default: a fresh temp dir)");
    app.add_option("--threads", o.threads, "CPU threads (0: all)")->check(examples::count_in(0, 4096));
    app.add_option("--queue-depth", o.queue_depth, "jobs queued ahead (the scheduler's look-ahead)")
        ->check(examples::count_in(1, 1'000'000));
    app.add_option("--batch", o.batch, "jobs per scheduling iteration")->check(examples::count_in(1, 100'000));
    app.add_option("--link-gbps", o.link_gbps,
                   "emulated host<->device link in GB/s for the CPU 'device' tier (0: memcpy speed)")
        ->check(examples::zero_or_in(1e-3, 1e4));  // 1e-300 would read as free
    CLI11_PARSE(app, argc, argv);
    if (static_cast<long long>(o.workload.sessions) * o.workload.turns > 1'000'000)
        throw ca::config_error("--sessions x --turns must be at most 1000000 turns");

    const auto cfg = o.model == "small" ? ca::model::model_config::small() : ca::model::model_config::tiny();
    o.workload.vocab = cfg.vocab;
    const bool own_dir = o.cache_dir.empty();
    if (own_dir)
        o.cache_dir = (std::filesystem::temp_directory_path() / ("cachedattn-main-" + std::to_string(::getpid()))).string();
    // Removes the temp directory we made on every exit, error exits included.
    struct remove_on_exit {
        std::string dir;
        ~remove_on_exit() {
            std::error_code ec;
            if (!dir.empty()) std::filesystem::remove_all(dir, ec);
        }
    } cleanup{own_dir ? o.cache_dir : std::string()};
    ca::backend::cpu_backend model(cfg, 1, {o.threads});
    const auto turns = ca::workload::synthetic_chat(o.workload);

    fmt::print("workload: {} sessions x {} turns ({} turns), model {} ({} layers, {} B KV/token, context {}), "
               "tiers: device {:.1f} MiB, DRAM {:.1f} MiB, SSD {:.0f} MiB\n\n",
               o.workload.sessions, o.workload.turns, turns.turns(), cfg.name, cfg.layers,
               cfg.geometry().kv_bytes_per_token(), cfg.context_window, o.device_mib, o.host_mib, o.file_mib);

    namespace ev = ca::eviction;
    namespace pf = ca::prefetch;
    using coupled = ca::posenc::coupled_rope;
    using tt = ca::truncation::recompute;
    const std::size_t d = o.queue_depth, all = turns.turns();
    std::vector<row> rows;
    namespace st = ca::stacks;
    using drop = ca::truncation::drop_oldest;
    using decoupled = ca::posenc::decoupled_rope;
    rows.push_back(run<st::recompute>("recompute (RE)", o, model, turns, d));
    rows.push_back(run<st::paper>("cachedattn (paper)", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::scheduler_aware, pf::scheduler_aware, drop, decoupled, ca::saving::sync_save>>(
        "paper, sync save", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::scheduler_aware, pf::scheduler_aware, drop, decoupled, ca::saving::write_back>>(
        "paper, write-back", o, model, turns, d));
    rows.push_back(run<st::lru>("lru", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::fifo>>("fifo", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::lfu>>("lfu", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::arc>>("arc", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::gdsf>>("gdsf", o, model, turns, d));
    rows.push_back(run<st::three_tier<ev::belady>>("belady (oracle)", o, model, turns, all));
    rows.push_back(run<st::three_tier<ev::belady_size>>("belady x size", o, model, turns, all));
    rows.push_back(run<st::three_tier<ev::scheduler_aware, pf::none, drop, coupled>>("paper, coupled RoPE", o, model,
                                                                                    turns, d));
    rows.push_back(run<st::three_tier<ev::scheduler_aware, pf::none, tt>>("paper, TT truncation", o, model, turns, d));

    const double base = rows.front().sum.mean_ttft();
    fmt::print("{:<20} {:>6} {:>7} {:>7} {:>7} {:>7} {:>11} {:>10} {:>10} {:>11} {:>9}\n", "stack", "turns", "hit",
               "device", "DRAM", "SSD", "mean TTFT", "p99 TTFT", "mean job", "recomputed", "speed-up");
    for (const row& r : rows) {
        const auto& s = r.sum;
        fmt::print("{:<20} {:>6} {:>6.1f}% {:>6.1f}% {:>6.1f}% {:>6.1f}% {:>8.2f} ms {:>7.2f} ms {:>7.2f} ms {:>11} "
                   "{:>8.2f}x\n",
                   r.name, s.turns(), 100 * s.hit_rate(), 100 * s.hit_rate(0), 100 * s.hit_rate(1),
                   100 * s.hit_rate(2), 1e3 * s.mean_ttft(), 1e3 * s.p99_ttft(), 1e3 * s.mean_job(),
                   s.recomputed_tokens(), base / s.mean_ttft());
    }
    fmt::print("\nhit: share of turns whose history KV was found in a tier; job: TTFT + decode + time blocked on "
               "saving;\nrecomputed: history tokens prefilled again; speed-up: mean TTFT of recompute-every-turn "
               "divided by the stack's.\nJobs queued ahead: {} (belady: all). Saving: async unless named. "
               "Device link: {}.\n",
               d, o.link_gbps > 0 ? fmt::format("emulated {:.2f} GB/s", o.link_gbps) : std::string("memcpy"));
    return 0;
} catch (const cachedattn::error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
} catch (const std::exception& e) {  // file system errors (an unwritable --cache-dir or TMPDIR), allocation failures
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
}
