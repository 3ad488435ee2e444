// Cache-hit prefill with layer-wise pre-loading on the CPU backend, against max(load, compute)
// (perfect overlap) and load + compute (no overlap), both measured in the same run.
//   cmake --workflow --preset bench && ./build/bench/bench/engine_preload_bench [reps]
// A session with a long history is stored in DRAM; its next turn (64 new tokens) is timed
// with the whole-session load before the prefill (buffer -1) and with layer-wise loading at
// read buffers of 0, 1 and all layers. load = time to find and copy the KV into the device
// tier, compute = prefill with the history resident; both come from the sequential runs.
// On the CPU backend the "device" is host memory, so loading is a memcpy far shorter than the
// prefill; the device tier's emulated link (link_bytes_per_s) then makes the copy take
// bytes / bandwidth, at bandwidths where the load is 0.5x, 1x and 2x the prefill, so the
// overlap is measured. "+ next-job pre-load": the load starts while the previous job runs.
#include <algorithm>
#include <cachedattn/cachedattn.hpp>
#include <filesystem>
#include <fmt/format.h>
#include <unistd.h>

namespace ca = cachedattn;

namespace {
using stack = ca::kv_hierarchy<ca::tiers<ca::tier::device_tier, ca::tier::host_tier, ca::tier::file_tier>,
                               ca::eviction::lru, ca::prefetch::none, ca::truncation::drop_oldest,
                               ca::posenc::decoupled_rope>;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct timing {
    double ttft = 0, load = 0, compute = 0;
};

/// One timed turn: a session with `history` tokens sits in DRAM; its next turn (64 new tokens)
/// follows another job (a short miss), during which `ahead` starts its load.
timing measure_once(stack& kv, ca::backend::cpu_backend& model, int buffer, std::int64_t history,
                    std::uint64_t& next_session, bool ahead) {
    ca::engine eng(kv, model, {.preload_buffer_layers = buffer, .preload_next_job = ahead});
    std::vector<ca::token_id> prompt(static_cast<std::size_t>(history)), input(64);
    for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<ca::token_id>((i * 31) % 512);
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<ca::token_id>((i * 17) % 512);
    const ca::session_id s{next_session++}, other{next_session++};
    eng.run_turn(s, prompt, 1);
    kv.demote(s);  // device -> DRAM
    eng.submit({other, input, 1});
    eng.submit({s, input, 1});
    eng.step();
    const auto m = eng.step().at(0).result.metrics;
    if (m.hit_tier != 1u) throw ca::error("preload bench: expected a DRAM hit");
    eng.end_session(s);
    eng.end_session(other);
    return {m.ttft_s, m.load_s, m.prefill_s};
}

struct mode {
    std::string name;
    int buffer;
    bool ahead;
};

/// Runs every mode `reps` times, interleaved (the machine's drift hits all modes alike), and
/// prints each mode's median TTFT against max(load, compute) and load + compute, where load and
/// compute are the medians of the load-then-prefill runs.
void report(stack& kv, ca::backend::cpu_backend& model, int layers, int reps, std::int64_t history,
            std::uint64_t& next) {
    std::vector<mode> modes{{"load, then prefill", -1, false}};
    for (int k : {0, 1, layers}) modes.push_back({fmt::format("layer-wise, buffer {}", k), k, false});
    for (int k : {0, 1, layers}) modes.push_back({fmt::format("+ next-job pre-load, buffer {}", k), k, true});
    std::vector<std::vector<double>> ttft(modes.size());
    std::vector<double> load, compute;
    for (int r = 0; r < reps; ++r)
        for (std::size_t i = 0; i < modes.size(); ++i) {
            const timing t = measure_once(kv, model, modes[i].buffer, history, next, modes[i].ahead);
            ttft[i].push_back(t.ttft);
            if (i == 0) {
                load.push_back(t.load);
                compute.push_back(t.compute);
            }
        }
    const double l = median(load), c = median(compute);
    fmt::print("load (whole session into the device tier): {:.3f} ms; compute (prefill, history resident): {:.3f} ms\n",
               l * 1e3, c * 1e3);
    const double ideal = std::max(l, c), serial = l + c;
    fmt::print("{:<34} {:>10} {:>16} {:>16}\n", "mode", "TTFT ms", "/ max(load,comp)", "/ (load+comp)");
    for (std::size_t i = 0; i < modes.size(); ++i) {
        const double t = median(ttft[i]);
        fmt::print("{:<34} {:>10.3f} {:>16.3f} {:>16.3f}\n", modes[i].name, t * 1e3, t / ideal, t / serial);
    }
}

stack::config tiers(const std::filesystem::path& dir, double link) {
    stack::config c;
    std::get<0>(c.tiers).capacity_bytes = 64 << 20;
    std::get<0>(c.tiers).link_bytes_per_s = link;
    std::get<1>(c.tiers).capacity_bytes = 64 << 20;
    std::get<2>(c.tiers) = {dir, 64 << 20};
    return c;
}
}  // namespace

int main(int argc, char** argv) try {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 9;
    ca::model::model_config cfg = ca::model::model_config::tiny();
    cfg.name = "bench-8layer";
    cfg.layers = 8;
    cfg.context_window = 2048;
    // One compute thread, so the loader has the other core (as a copy engine would) and the
    // timings are not dominated by two threads fighting over two cores.
    ca::backend::cpu_backend model(cfg, 1, {1});
    const std::int64_t history = 1024;
    const auto kv_bytes = static_cast<double>(history * static_cast<std::int64_t>(cfg.geometry().kv_bytes_per_token()));
    const auto dir = std::filesystem::temp_directory_path() / ("cachedattn-preload-" + std::to_string(::getpid()));
    std::uint64_t next = 1;
    fmt::print("model {} ({} layers), history {} tokens ({:.1f} MiB of KV), 64 new tokens, median of {} runs\n",
               cfg.name, cfg.layers, history, kv_bytes / (1 << 20), reps);

    fmt::print("\n== host memory as the device (copies at memcpy speed)\n");
    double compute = 0;
    {
        stack kv(tiers(dir, 0), model.geometry(), model.weights_id());
        compute = measure_once(kv, model, -1, history, next, false).compute;
        report(kv, model, cfg.layers, reps, history, next);
    }
    // An emulated link makes loading cost what it would over PCIe: at these bandwidths the
    // whole-session load takes 0.5x, 1x and 2x the prefill.
    const bool memcpy_only = argc > 2 && std::string_view(argv[2]) == "memcpy";
    for (double ratio : {0.5, 1.0, 2.0}) {
        if (memcpy_only) break;
        const double link = kv_bytes / (compute * ratio);
        fmt::print("\n== emulated link {:.2f} GB/s (load ~ {}x compute)\n", link / 1e9, ratio);
        std::filesystem::remove_all(dir);
        stack kv(tiers(dir, link), model.geometry(), model.weights_id());
        report(kv, model, cfg.layers, reps, history, next);
    }
    std::filesystem::remove_all(dir);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
}
