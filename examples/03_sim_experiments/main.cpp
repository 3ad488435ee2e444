// The simulator's policy comparison at the paper's scale (§ setup in ../shared/PAPER.md): the
// real engine, hierarchy and policies on simulated time, over a ShareGPT-like trace (or a
// ShareGPT / BurstGPT file), for the paper's four model shapes. Writes CSV, JSON (with a
// metadata block), a markdown table file and gnuplot PNGs into --out.
//   ./build/default/examples/03_sim_experiments --out docs/sim
#include <CLI/CLI.hpp>
#include <cachedattn/cachedattn.hpp>

#include "../common/cli.hpp"
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#ifndef CACHEDATTN_SOURCE_DIR
#define CACHEDATTN_SOURCE_DIR "."
#endif

namespace ca = cachedattn;
namespace fs = std::filesystem;

namespace {

/// The source tree's revision now (not at configure time), "unknown" outside a git checkout.
std::string git_revision() {
    std::string rev;
    if (FILE* p = ::popen("git -C '" CACHEDATTN_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null", "r")) {
        char buf[64];
        while (std::fgets(buf, sizeof buf, p)) rev += buf;
        ::pclose(p);
    }
    while (!rev.empty() && (rev.back() == '\n' || rev.back() == '\r')) rev.pop_back();
    return rev.empty() ? "unknown" : rev;
}

struct options {
    std::string out = "sim-results";
    std::size_t conversations = 9000, warmup = 10000;
    double think_s = 60, rate = 1.0;
    std::string profile = "a100", sharegpt, burstgpt;
    double hbm_gb_per_gpu = 16;  ///< HBM left for caching across turns, after weights and the running batch
    double dram_gb = 128, ssd_tb = 10;
    int batch = 24;
    bool quick = false;
    std::string results_md;  ///< a markdown file whose generated section to replace with tables.md
};

struct model_setup {
    ca::model::model_config shape;
    int gpus;
};

struct spec {
    std::string experiment, model, policy;
    double hbm_gb, dram_gb, ssd_tb, rate;
    int buffer = 1;
    bool retain = true;
    bool sized = true;  ///< grow the read buffer per load to what hides it (paper §3.2)
    int ssds = 0;       ///< SSD count; 0: the profile's
    std::size_t io_window = 0;  ///< I/O-aware scheduling window in jobs (0: FCFS, the paper's)
    bool fastest = false;  ///< load or recompute per turn, whichever is faster (beyond the paper)
};

struct outcome {
    spec s;
    ca::sim::replay_result r;
    double gpu_hours = 0, dollars = 0, prefill_tokens_per_s = 0;
    double gpu_dollars = 0, storage_dollars = 0;
};

template <class Evict, class Prefetch>
ca::sim::replay_result run(const spec& s, const model_setup& m, const ca::sim::gpu_profile& base, int batch,
                           const ca::workload::trace& t, std::size_t warmup) {
    using H = ca::kv_hierarchy<ca::tiers<ca::tier::sim_device_tier, ca::tier::sim_host_tier, ca::tier::sim_file_tier>, Evict,
                               Prefetch, ca::truncation::drop_oldest, ca::posenc::decoupled_rope>;
    auto prof = base;
    prof.gpus = m.gpus;
    if (s.ssds > 0) prof.ssds = s.ssds;
    ca::sim::sim_backend b(m.shape, prof, {.decode_batch = batch});
    typename H::config c;
    auto bytes = [](double gb) { return static_cast<std::size_t>(std::max(gb * 1e9, 1.0)); };
    c.device() = {bytes(s.hbm_gb)};
    std::get<1>(c.tiers).capacity_bytes = bytes(s.dram_gb);
    std::get<2>(c.tiers).capacity_bytes = bytes(s.ssd_tb * 1e3);
    ca::next_use_table future;  // Belady's oracle: the replay knows every session's next arrival
    if constexpr (std::is_same_v<Evict, ca::eviction::belady> || std::is_same_v<Evict, ca::eviction::belady_size>)
        c.eviction.oracle = &future;
    H h(c, b.geometry(), b.weights_id());
    ca::engine<H, ca::sim::sim_backend> eng(h, b, {.retain_across_turns = s.retain,
                                                    .preload_buffer_layers = s.buffer,
                                                    .size_preload_buffer = s.sized,
                                                    .io_aware_window = s.io_window,
                                                    .load_choice = {.how = s.fastest ? ca::load_or_recompute::mode::fastest
                                                                                     : ca::load_or_recompute::mode::load}});
    return ca::sim::replay(t, eng, {.warmup_turns = warmup, .oracle = &future});
}

ca::sim::replay_result dispatch(const spec& s, const model_setup& m, const ca::sim::gpu_profile& p, int batch,
                               const ca::workload::trace& t, std::size_t warmup) {
    namespace ev = ca::eviction;
    namespace pf = ca::prefetch;
    if (s.policy == "cachedattn" || s.policy == "recompute") return run<ev::scheduler_aware, pf::scheduler_aware>(s, m, p, batch, t, warmup);
    if (s.policy == "lru") return run<ev::lru, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "fifo") return run<ev::fifo, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "arc") return run<ev::arc, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "lfu") return run<ev::lfu, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "belady") return run<ev::belady, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "gdsf") return run<ev::gdsf, pf::none>(s, m, p, batch, t, warmup);
    if (s.policy == "belady_size") return run<ev::belady_size, pf::none>(s, m, p, batch, t, warmup);
    throw ca::config_error("unknown policy " + s.policy);
}

void progress(std::size_t done, std::size_t total, double elapsed) {
    if (elapsed < 1.0) return;  // only for runs longer than a second
    const int width = 40;
    const int filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
    std::fprintf(stderr, "\r[%s%s] %zu/%zu runs, %.0f s", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), done, total, elapsed);
    if (done == total) std::fprintf(stderr, "\n");
}

}  // namespace

int main(int argc, char** argv) try {
    options o;
    CLI::App app{"cachedattn: the paper's experiments on the simulator (same engine and policies, simulated time)"};
    app.add_option("--out", o.out, "output directory (CSV, JSON, tables.md, PNG plots)");
    app.add_option("--conversations", o.conversations, "ShareGPT-like conversations")->check(examples::count_in(1, 10'000'000));
    app.add_option("--warmup", o.warmup, "turns that warm the store before measuring")
        ->check(examples::count_in(0, 1'000'000'000));
    app.add_option("--think", o.think_s, "mean think time between a reply and the next turn (s)")
        ->check(examples::finite_in(0, 1e7));
    app.add_option("--rate", o.rate, "session arrivals per second")->check(examples::finite_in(1e-6, 1e4));
    app.add_option("--profile", o.profile,
                   "a100, h100, a100-calibrated (compute rate fitted to the paper's implied RE TTFT), or a JSON "
                   "profile file (fields of sim::gpu_profile)");
    app.add_option("--sharegpt", o.sharegpt, "replay a ShareGPT JSON file instead of the generator");
    app.add_option("--burstgpt", o.burstgpt, "replay a BurstGPT CSV file instead of the generator");
    app.add_option("--hbm-gb", o.hbm_gb_per_gpu, "HBM per GPU kept for KV across turns (GB)")
        ->check(examples::finite_in(0, 1e6));
    app.add_option("--dram-gb", o.dram_gb, "host DRAM for KV (GB)")->check(examples::finite_in(1e-6, 1e7));
    app.add_option("--ssd-tb", o.ssd_tb, "SSD for KV (TB)")->check(examples::finite_in(1e-9, 1e6));
    app.add_option("--batch", o.batch, "decode batch size")->check(examples::count_in(1, 100'000));
    app.add_flag("--quick", o.quick, "1/9 of the workload and fewer sweep points (a smoke run)");
    app.add_option("--results-md", o.results_md,
                   "also replace the section between <!-- generated:NAME:begin --> and <!-- generated:NAME:end --> "
                   "in this markdown file with the tables (NAME: the --out folder's name)");
    CLI11_PARSE(app, argc, argv);
    if (o.quick) {
        o.conversations = std::min<std::size_t>(o.conversations, 1000);
        o.warmup = std::min<std::size_t>(o.warmup, 1000);
    }

    ca::sim::gpu_profile profile = (o.profile == "a100" || o.profile == "h100" || o.profile == "a100-calibrated")
                                       ? ca::sim::gpu_profile::builtin(o.profile, 1)
                                       : ca::sim::gpu_profile::load(o.profile, ca::sim::gpu_profile::a100_pcie4(1));
    auto make_trace = [&](double rate) {
        if (!o.sharegpt.empty()) return ca::workload::read_sharegpt(o.sharegpt, {.arrival_rate = rate, .mean_think_s = o.think_s});
        if (!o.burstgpt.empty()) return ca::workload::read_burstgpt(o.burstgpt);
        ca::workload::sharegpt_like_config wc;
        wc.conversations = o.conversations;
        wc.arrival_rate = rate;
        wc.mean_think_s = o.think_s;
        return ca::workload::sharegpt_like(wc);
    };
    const std::vector<model_setup> models{{ca::model::model_config::llama2_13b(), 2},
                                          {ca::model::model_config::llama_65b(), 4},
                                          {ca::model::model_config::llama2_70b(), 4},
                                          {ca::model::model_config::falcon_40b(), 4}};
    const double hbm = [&] { return o.hbm_gb_per_gpu; }();
    std::vector<spec> specs;
    for (const auto& m : models) {
        const double h = hbm * m.gpus;
        specs.push_back({"tiers", m.shape.name, "recompute", h, o.dram_gb, o.ssd_tb, o.rate, 1, false});
        specs.push_back({"tiers", m.shape.name, "cachedattn", h, 0, 0, o.rate});
        specs.push_back({"tiers", m.shape.name, "cachedattn", h, o.dram_gb, 0, o.rate});
        specs.push_back({"tiers", m.shape.name, "cachedattn", h, o.dram_gb, o.ssd_tb, o.rate});
    }
    const std::string m13 = models[0].shape.name;
    const double h13 = hbm * models[0].gpus;
    const std::vector<std::string> policies{"cachedattn", "lru", "fifo", "arc", "gdsf", "belady", "belady_size"};
    const std::vector<double> drams = o.quick ? std::vector<double>{32, 128} : std::vector<double>{16, 32, 64, 128, 256};
    const std::vector<double> ssds = o.quick ? std::vector<double>{0.5, 10} : std::vector<double>{0.5, 1, 2.5, 5, 10};
    for (const auto& p : policies) {
        for (double d : drams) specs.push_back({"dram", m13, p, h13, d, o.ssd_tb, o.rate});
        for (double sz : ssds) specs.push_back({"ssd", m13, p, h13, o.dram_gb, sz, o.rate});
    }
    // Fixed read buffers (not grown per load), the sized default, and whole-session loads.
    for (int k : o.quick ? std::vector<int>{0, 15} : std::vector<int>{0, 1, 2, 4, 8, 15})
        specs.push_back({"buffer", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, o.rate, k, true, false});
    specs.push_back({"buffer", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, o.rate, 1, true, true});
    specs.push_back({"buffer", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, o.rate, -1, true, false});
    // How many SSDs the prefetcher's reads and the demotions' writes need (the paper does not say).
    for (int n : o.quick ? std::vector<int>{1, 4} : std::vector<int>{1, 2, 4, 8})
        specs.push_back({"ssds", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, o.rate, 1, true, true, n});
    // I/O-aware scheduling (beyond the paper): FCFS vs running resident jobs before jobs that wait
    // on SSD reads, at the paper's SSD size and where the SSD binds.
    for (double sz : {o.ssd_tb, 1.0})
        for (const char* p : {"cachedattn", "lru"})
            for (std::size_t w : {std::size_t{0}, std::size_t{16}})
                specs.push_back({"sched", m13, p, h13, o.dram_gb, sz, o.rate, 1, true, true, 0, w});
    for (double r : o.quick ? std::vector<double>{0.5, 2.0} : std::vector<double>{0.5, 1.0, 1.5, 2.0}) {
        specs.push_back({"rate", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, r});
        specs.push_back({"rate", m13, "recompute", h13, o.dram_gb, o.ssd_tb, r, 1, false});
    }

    // Load or recompute per turn (beyond the paper), across arrival rates: the paper's stack
    // always loads, RE always recomputes, `fastest` picks per turn from the simulated costs.
    const std::vector<double> lor_rates =
        o.quick ? std::vector<double>{0.1, 1.0} : std::vector<double>{0.05, 0.1, 0.25, 0.5, 1.0, 2.0};
    // With the profile's SSDs, and with one SSD, where reads queue and loading can lose.
    for (int n : {0, 1})
        for (double r : lor_rates) {
            specs.push_back({"lor", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, r, 1, true, true, n});
            specs.push_back({"lor", m13, "cachedattn", h13, o.dram_gb, o.ssd_tb, r, 1, true, true, n, 0, true});
            specs.push_back({"lor", m13, "recompute", h13, o.dram_gb, o.ssd_tb, r, 1, false, true, n});
        }

    fs::create_directories(o.out);
    std::map<double, ca::workload::trace> traces;
    std::vector<outcome> results;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const spec& s = specs[i];
        if (!traces.contains(s.rate)) traces.emplace(s.rate, make_trace(s.rate));
        const auto& t = traces.at(s.rate);
        const auto& m = *std::find_if(models.begin(), models.end(), [&](const model_setup& x) { return x.shape.name == s.model; });
        outcome out{s, dispatch(s, m, profile, o.batch, t, std::min(o.warmup, t.turns() / 5)), 0, 0, 0};
        const auto& sum = out.r.measured;
        // The paper's cost: GPU dollars for the GPU time used, plus the DRAM and SSD that hold
        // the cached KV, rented by CachedAttention only (RE keeps nothing), over the measured
        // interval (the warm-up is not billed).
        out.gpu_hours = out.r.busy_s * m.gpus / 3600.0;
        const double hours = out.r.measured_s() / 3600.0;
        out.gpu_dollars = out.gpu_hours * profile.gpu_dollars_per_hour;
        out.storage_dollars = s.retain ? (s.dram_gb * profile.dram_dollars_per_gb_hour +
                                          s.ssd_tb * 1e3 * profile.ssd_dollars_per_gb_hour) * hours
                                       : 0.0;
        out.dollars = out.gpu_dollars + out.storage_dollars;
        const double prompt = static_cast<double>(sum.reused_tokens() + sum.recomputed_tokens() + sum.new_tokens());
        out.prefill_tokens_per_s = sum.total_prefill() > 0 ? prompt / sum.total_prefill() : 0;
        results.push_back(std::move(out));
        progress(i + 1, specs.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }

    // ---- CSV and JSON
    std::ofstream csv(fs::path(o.out) / "runs.csv");
    csv << "experiment,model,policy,hbm_gb,dram_gb,ssd_tb,rate,buffer,turns,hit,hit_hbm,hit_dram,hit_ssd,mean_ttft_s,"
           "p99_ttft_s,prefill_tokens_per_s,gpu_hours,dollars,simulated_s,mean_queue_s,mean_turn_s,gpu_utilization,max_queued,"
           "buffer_sized,decode_share,ssd_utilization,gpu_dollars,storage_dollars,ssds\n";
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : results) {
        const auto& m = r.r.measured;
        const std::string policy = r.s.retain ? r.s.policy : "recompute";
        csv << fmt::format("{},{},{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.5f},{:.5f},{:.1f},{:.3f},{:.2f},{:.1f},"
                           "{:.3f},{:.3f},{:.3f},{},{:d},{:.4f},{:.4f},{:.3f},{:.3f},{}\n",
                           r.s.experiment, r.s.model, policy, r.s.hbm_gb, r.s.dram_gb, r.s.ssd_tb, r.s.rate, r.s.buffer,
                           m.turns(), m.hit_rate(), m.hit_rate(0), m.hit_rate(1), m.hit_rate(2), m.mean_ttft(),
                           m.p99_ttft(), r.prefill_tokens_per_s, r.gpu_hours, r.dollars, r.r.simulated_s,
                           r.r.mean_queue_s(), r.r.mean_turn_s(), r.r.gpu_utilization(), r.r.max_queued,
                           r.s.sized ? 1 : 0, r.r.decode_share(), r.r.ssd_utilization(), r.gpu_dollars, r.storage_dollars,
                           r.s.ssds > 0 ? r.s.ssds : profile.ssds);
        runs.push_back({{"experiment", r.s.experiment}, {"model", r.s.model}, {"policy", policy}, {"hbm_gb", r.s.hbm_gb},
                        {"dram_gb", r.s.dram_gb}, {"ssd_tb", r.s.ssd_tb}, {"rate", r.s.rate}, {"buffer", r.s.buffer},
                        {"turns", m.turns()}, {"hit", m.hit_rate()}, {"hit_by_tier", {m.hit_rate(0), m.hit_rate(1), m.hit_rate(2)}},
                        {"mean_ttft_s", m.mean_ttft()}, {"p99_ttft_s", m.p99_ttft()},
                        {"prefill_tokens_per_s", r.prefill_tokens_per_s}, {"gpu_hours", r.gpu_hours},
                        {"dollars", r.dollars}, {"simulated_s", r.r.simulated_s}, {"mean_queue_s", r.r.mean_queue_s()},
                        {"mean_turn_s", r.r.mean_turn_s()}, {"gpu_utilization", r.r.gpu_utilization()},
                        {"max_queued", r.r.max_queued}, {"buffer_sized", r.s.sized},
                        {"decode_share", r.r.decode_share()}, {"ssd_utilization", r.r.ssd_utilization()},
                        {"ssd_bytes_read", r.r.ssd_bytes_read}, {"ssd_bytes_written", r.r.ssd_bytes_written},
                        {"gpu_dollars", r.gpu_dollars}, {"storage_dollars", r.storage_dollars},
                        {"measured_s", r.r.measured_s()}, {"ssds", r.s.ssds > 0 ? r.s.ssds : profile.ssds}});
    }
    const auto& any = traces.at(o.rate);
    nlohmann::json meta = {{"workload", any.source},
                           {"conversations", any.conversations.size()},
                           {"turns", any.turns()},
                           {"warmup_turns", o.warmup},
                           {"mean_think_s", o.think_s},
                           {"profile", profile.name},
                           {"hbm_gb_per_gpu", o.hbm_gb_per_gpu},
                           {"decode_batch", o.batch},
                           {"policies", {"cachedattn = scheduler_aware eviction + scheduler_aware prefetch + decoupled RoPE + drop_oldest + async_save",
                                         "lru/fifo/arc = that eviction, no prefetch",
                                         "gdsf = Greedy-Dual-Size-Frequency (unit cost), no prefetch",
                                         "belady = MIN with the replay's next-arrival oracle, no prefetch",
                                         "belady_size = MIN weighted by bytes (next use x size), same oracle, no prefetch",
                                         "recompute = RE (nothing kept)"}},
                           {"git_revision", git_revision()}};
    std::ofstream(fs::path(o.out) / "results.json") << nlohmann::json{{"metadata", meta}, {"runs", runs}}.dump(2) << "\n";

    // ---- markdown tables (paper's headline table, our numbers)
    std::ofstream md(fs::path(o.out) / "tables.md");
    md << fmt::format("Generated by `03_sim_experiments{}` at revision {}; workload {} ({} turns, {} warm-up), "
                      "profile {}, {} GB HBM per GPU for cached KV, decode batch {}.\n\n",
                      o.quick ? " --quick" : "", git_revision(), any.source, any.turns(), o.warmup,
                      profile.name, o.hbm_gb_per_gpu, o.batch);
    // Every assumption that decides a number, in one place (the paper states few of them).
    md << "Assumptions that decide these numbers:\n\n| what | here | why |\n|---|---|---|\n"
       << fmt::format("| session arrivals | Poisson, {}/s | the paper's setup |\n", o.rate)
       << fmt::format("| think time | exponential, mean {} s, from a turn's completion to the next turn's arrival | "
                      "not stated by the paper; it sets how long a session waits in the store and how long the "
                      "queue's look-ahead is |\n", o.think_s)
       << fmt::format("| warm-up | the first {} turns completed are not measured (nor billed) | the paper's 10K |\n", o.warmup)
       << "| a session after its last turn | dropped from every tier at once | a finished chat is never resumed in the trace |\n"
       << fmt::format("| HBM for KV kept across turns | {} GB per GPU | what the weights and the running batch leave "
                      "(an estimate) |\n", o.hbm_gb_per_gpu)
       << fmt::format("| DRAM, SSD | {} GB, {} TB, {} SSD(s) striped at {:.1f} / {:.1f} GB/s read / write each | the paper's "
                      "capacities; drive count and rates are ours |\n",
                      o.dram_gb, o.ssd_tb, profile.ssds, profile.ssd_read_bytes_per_s / 1e9, profile.ssd_write_bytes_per_s / 1e9)
       << "| SSD traffic | hit reads on the critical path; prefetch reads and demotion writes off it, on the same "
          "FCFS drives | every byte that moves is charged |\n"
       << fmt::format("| host link | {:.0f} GB/s per GPU each way, every GPU its shard | PCIe effective rate |\n",
                      profile.link_bytes_per_s / 1e9)
       << fmt::format("| GPU | {:.0f} TFLOP/s x {:.2f}, {:.2f} TB/s x {:.2f} (roofline per layer) | achieved shares of peak "
                      "(assumption{}) |\n",
                      profile.peak_flops / 1e12, profile.compute_efficiency, profile.hbm_bytes_per_s / 1e12,
                      profile.memory_efficiency,
                      o.profile == "a100-calibrated" ? "; compute share fitted to the paper's implied RE TTFT" : "")
       << fmt::format("| tensor parallelism | 2 all-reduces per layer, ring, {:.0f} GB/s bus, {:.0f} us each | not "
                      "overlapped with compute |\n",
                      profile.allreduce_bytes_per_s / 1e9, profile.allreduce_latency_s * 1e6)
       << fmt::format("| serving | continuous batching of up to {} jobs; prefills alone and first, FCFS | the paper's batch |\n",
                      o.batch)
       << "| TTFT | from admission to the first token; queue wait reported beside it | the paper's TTFT excludes queueing |\n"
       << "| pre-load buffer | sized per load to the layers that hide it (paper §3.2), next job's load starts during the "
          "job before | the paper's rule |\n"
       << fmt::format("| cost | GPU ${}/h per GPU x GPU-busy time, plus DRAM ${}/GB/h and SSD ${}/GB/h for cachedattn "
                      "only, over the measured interval | the paper's prices and formula |\n\n",
                      profile.gpu_dollars_per_hour, profile.dram_dollars_per_gb_hour, profile.ssd_dollars_per_gb_hour);
    // The paper's headline numbers (../shared/PAPER.md), for the side-by-side table.
    const std::map<std::string, std::vector<std::string>> paper{
        {"hit rate, HBM+DRAM+SSD", {"86%", "71%", "89%", "90%"}},
        {"hit rate, HBM+DRAM", {"3.4%", "1.7%", "7.7%", "19.1%"}},
        {"hit rate, HBM only", {"~0%", "~0%", "~0%", "~0%"}},
        {"TTFT reduction vs RE", {"85%", "61%", "87%", "86%"}},
        {"prefill throughput vs RE", {"6.8x", "2.6x", "7.8x", "7.2x"}},
        {"GPU-time speedup", {"4.0x", "1.9x", "3.3x", "3.4x"}},
        {"cost reduction", {"70%", "43%", "66%", "68%"}}};
    std::vector<std::pair<std::string, std::vector<std::string>>> ours;  // filled by row() below
    md << "| metric | " ;
    for (const auto& m : models) md << m.shape.name << " | ";
    md << "\n|---|";
    for (std::size_t i = 0; i < models.size(); ++i) md << "---|";
    md << "\n";
    auto find = [&](const std::string& model, const std::string& policy, double dram, double ssd, bool retain) -> const outcome& {
        for (const auto& r : results)
            if (r.s.experiment == "tiers" && r.s.model == model && r.s.policy == policy && r.s.dram_gb == dram &&
                r.s.ssd_tb == ssd && r.s.retain == retain)
                return r;
        throw ca::error("missing run");
    };
    auto row = [&](const std::string& name, auto value) {
        md << "| " << name << " | ";
        ours.emplace_back(name, std::vector<std::string>{});
        for (const auto& m : models) {
            const std::string v = value(m.shape.name);
            md << v << " | ";
            ours.back().second.push_back(v);
        }
        md << "\n";
    };
    row("hit rate, HBM+DRAM+SSD", [&](const std::string& m) { return fmt::format("{:.1f}%", 100 * find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.measured.hit_rate()); });
    row("hit rate, HBM+DRAM", [&](const std::string& m) { return fmt::format("{:.1f}%", 100 * find(m, "cachedattn", o.dram_gb, 0, true).r.measured.hit_rate()); });
    row("hit rate, HBM only", [&](const std::string& m) { return fmt::format("{:.1f}%", 100 * find(m, "cachedattn", 0, 0, true).r.measured.hit_rate()); });
    row("TTFT reduction vs RE", [&](const std::string& m) {
        return fmt::format("{:.0f}%", 100 * (1 - find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.measured.mean_ttft() /
                                                  find(m, "recompute", o.dram_gb, o.ssd_tb, false).r.measured.mean_ttft()));
    });
    row("prefill throughput vs RE", [&](const std::string& m) {
        return fmt::format("{:.1f}x", find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).prefill_tokens_per_s /
                                          find(m, "recompute", o.dram_gb, o.ssd_tb, false).prefill_tokens_per_s);
    });
    row("GPU-time speedup", [&](const std::string& m) {
        return fmt::format("{:.1f}x", find(m, "recompute", o.dram_gb, o.ssd_tb, false).gpu_hours /
                                          find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).gpu_hours);
    });
    row("cost reduction", [&](const std::string& m) {
        return fmt::format("{:.0f}%", 100 * (1 - find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).dollars /
                                                  find(m, "recompute", o.dram_gb, o.ssd_tb, false).dollars));
    });
    row("hits served from DRAM", [&](const std::string& m) {
        const auto& x = find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.measured;
        return fmt::format("{:.1f}%", x.hits() ? 100.0 * static_cast<double>(x.hits(1)) / static_cast<double>(x.hits()) : 0.0);
    });
    row("mean queue wait (RE / cachedattn)", [&](const std::string& m) {
        return fmt::format("{:.1f} / {:.1f} s", find(m, "recompute", o.dram_gb, o.ssd_tb, false).r.mean_queue_s(),
                           find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.mean_queue_s());
    });
    row("GPU busy (RE / cachedattn)", [&](const std::string& m) {
        return fmt::format("{:.0f}% / {:.0f}%", 100 * find(m, "recompute", o.dram_gb, o.ssd_tb, false).r.gpu_utilization(),
                           100 * find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.gpu_utilization());
    });
    row("decode share of GPU time (RE / cachedattn)", [&](const std::string& m) {
        return fmt::format("{:.0f}% / {:.0f}%", 100 * find(m, "recompute", o.dram_gb, o.ssd_tb, false).r.decode_share(),
                           100 * find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r.decode_share());
    });
    row("SSD busy, cachedattn (read / write GB/s)", [&](const std::string& m) {
        const auto& r = find(m, "cachedattn", o.dram_gb, o.ssd_tb, true).r;
        const double s = std::max(r.measured_s(), 1e-9);
        return fmt::format("{:.0f}% ({:.2f} / {:.2f})", 100 * r.ssd_utilization(), r.ssd_bytes_read / s / 1e9,
                           r.ssd_bytes_written / s / 1e9);
    });
    row("dollars: GPU + DRAM/SSD (RE / cachedattn)", [&](const std::string& m) {
        const auto& re = find(m, "recompute", o.dram_gb, o.ssd_tb, false);
        const auto& ca = find(m, "cachedattn", o.dram_gb, o.ssd_tb, true);
        return fmt::format("{:.0f} / {:.0f} + {:.1f}", re.gpu_dollars, ca.gpu_dollars, ca.storage_dollars);
    });
    md << "\nThe paper's numbers (its A100 server, ../shared/PAPER.md) beside ours:\n\n| metric |";
    for (const auto& m : models) md << " " << m.shape.name << " paper | ours |";
    md << "\n|---|";
    for (std::size_t i = 0; i < models.size(); ++i) md << "---|---|";
    md << "\n";
    for (const auto& [name, values] : ours) {
        const auto it = paper.find(name);
        if (it == paper.end()) continue;
        md << "| " << name << " |";
        for (std::size_t i = 0; i < values.size(); ++i) md << " " << it->second[i] << " | " << values[i] << " |";
        md << "\n";
    }
    // Two identities the paper's numbers satisfy, and what they imply, beside ours. With P the
    // prefill ratio, S the GPU-time speedup and f the decode share of RE's GPU time:
    //   TTFT reduction = 1 - 1/P (TTFT is the prefill when queueing is excluded);
    //   cost reduction = 1 - 1/S - storage$/RE GPU$ (cost is GPU time plus rented storage);
    //   S = 1 / (f + (1 - f)/P), so f = (1/S - 1/P) / (1 - 1/P).
    {
        const std::vector<double> pP{6.8, 2.6, 7.8, 7.2}, pS{4.0, 1.9, 3.3, 3.4}, pC{0.70, 0.43, 0.66, 0.68},
            pT{0.85, 0.61, 0.87, 0.86};
        struct ident {
            double ttft, inv_p, cost, inv_s, storage, decode_implied, decode_measured;
        };
        auto implied_decode = [](double S, double P) { return P > 1 ? (1 / S - 1 / P) / (1 - 1 / P) : 0.0; };
        std::vector<ident> paper_i, ours_i;
        for (std::size_t i = 0; i < models.size(); ++i) {
            paper_i.push_back({pT[i], 1 - 1 / pP[i], pC[i], 1 - 1 / pS[i], (1 - 1 / pS[i]) - pC[i],
                               implied_decode(pS[i], pP[i]), -1});
            const auto& n = models[i].shape.name;
            const auto& re = find(n, "recompute", o.dram_gb, o.ssd_tb, false);
            const auto& ca = find(n, "cachedattn", o.dram_gb, o.ssd_tb, true);
            const double P = ca.prefill_tokens_per_s / re.prefill_tokens_per_s, S = re.gpu_hours / ca.gpu_hours;
            ours_i.push_back({1 - ca.r.measured.mean_ttft() / re.r.measured.mean_ttft(), 1 - 1 / P,
                              1 - ca.dollars / re.dollars, 1 - 1 / S, ca.storage_dollars / re.gpu_dollars,
                              implied_decode(S, P), re.r.decode_share()});
        }
        md << "\nTwo identities the paper's numbers satisfy (P = prefill throughput ratio, S = GPU-time speedup): "
              "TTFT reduction = 1 - 1/P, and cost reduction = 1 - 1/S - (DRAM/SSD dollars as a share of RE's GPU "
              "dollars); and what S and P imply for the decode share f of RE's GPU time, S = 1/(f + (1-f)/P). "
              "Decode is the part caching cannot remove, so f bounds the GPU-time speedup (S < 1/f).\n\n| identity |";
        for (const auto& m : models) md << " " << m.shape.name << " paper | ours |";
        md << "\n|---|";
        for (std::size_t i = 0; i < models.size(); ++i) md << "---|---|";
        md << "\n";
        auto irow = [&](const std::string& name, auto get) {
            md << "| " << name << " |";
            for (std::size_t i = 0; i < models.size(); ++i) {
                const double a = get(paper_i[i]), b = get(ours_i[i]);
                md << " " << (a < 0 ? std::string("-") : fmt::format("{:.0f}%", 100 * a)) << " | "
                   << fmt::format("{:.0f}%", 100 * b) << " |";
            }
            md << "\n";
        };
        irow("TTFT reduction", [](const ident& x) { return x.ttft; });
        irow("1 - 1/P", [](const ident& x) { return x.inv_p; });
        irow("cost reduction", [](const ident& x) { return x.cost; });
        irow("1 - 1/S (GPU dollars only)", [](const ident& x) { return x.inv_s; });
        irow("DRAM/SSD dollars / RE GPU dollars", [](const ident& x) { return x.storage; });
        irow("decode share f implied by S and P", [](const ident& x) { return x.decode_implied; });
        irow("decode share of RE GPU time, measured", [](const ident& x) { return x.decode_measured; });
    }

    md << "\nHit rate (LLaMA-2-13B) by DRAM capacity (SSD " << o.ssd_tb << " TB) and by SSD capacity (DRAM " << o.dram_gb << " GB):\n\n";
    md << "| policy | " ;
    for (double d : drams) md << d << " GB | ";
    for (double s : ssds) md << s << " TB | ";
    md << "\n|---|";
    for (std::size_t i = 0; i < drams.size() + ssds.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& p : policies) {
        md << "| " << p << " | ";
        for (const auto& r : results)
            if ((r.s.experiment == "dram" || r.s.experiment == "ssd") && r.s.policy == p)
                md << fmt::format("{:.1f}% | ", 100 * r.r.measured.hit_rate());
        md << "\n";
    }
    md << "\nHits served from DRAM (LLaMA-2-13B, share of all turns) by DRAM capacity: a larger DRAM holds more "
          "sessions, and the scheduler-aware prefetcher brings queued sessions up from the SSD.\n\n| policy | ";
    for (double d : drams) md << d << " GB | ";
    md << "\n|---|";
    for (std::size_t i = 0; i < drams.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& p : policies) {
        md << "| " << p << " | ";
        for (const auto& r : results)
            if (r.s.experiment == "dram" && r.s.policy == p) md << fmt::format("{:.1f}% | ", 100 * r.r.measured.hit_rate(1));
        md << "\n";
    }
    md << "\nPre-load buffer (LLaMA-2-13B; k layers fixed, or sized per load to hide it as the paper does (the "
          "default); -1 = load the whole session before the prefill), SSD count, and arrival rate:\n\n"
          "| run | mean TTFT | mean prefill | hit rate | mean queue wait | GPU busy |\n|---|---|---|---|---|---|\n";
    for (const auto& r : results)
        if (r.s.experiment == "buffer" || r.s.experiment == "rate" || r.s.experiment == "ssds") {
            const auto& m = r.r.measured;
            md << fmt::format("| {} {} {} | {:.1f} ms | {:.1f} ms | {:.1f}% | {:.1f} s | {:.0f}% |\n", r.s.experiment,
                              r.s.experiment == "buffer"
                                  ? (r.s.sized ? std::string("sized") : fmt::format("{} layers", r.s.buffer))
                              : r.s.experiment == "ssds" ? fmt::format("{} (SSD busy {:.0f}%)", r.s.ssds, 100 * r.r.ssd_utilization())
                                                         : fmt::format("{}/s", r.s.rate),
                              r.s.retain ? "" : "(RE)", 1e3 * m.mean_ttft(), 1e3 * m.total_prefill() / static_cast<double>(m.turns()),
                              100 * m.hit_rate(), r.r.mean_queue_s(), 100 * r.r.gpu_utilization());
        }
    md << "\nI/O-aware scheduling (beyond the paper; LLaMA-2-13B): FCFS, the paper's order, against running the first "
          "job among the next 16 whose KV is in HBM or DRAM (or who has none stored) before a head job that must read "
          "the SSD, each job passed over at most 4 times:\n\n"
          "| policy | SSD | order | mean TTFT | p99 TTFT | mean queue wait | hit rate | SSD hits | jobs reordered |\n"
          "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : results)
        if (r.s.experiment == "sched") {
            const auto& m = r.r.measured;
            md << fmt::format("| {} | {} TB | {} | {:.1f} ms | {:.1f} ms | {:.1f} s | {:.1f}% | {:.1f}% | {} |\n", r.s.policy,
                              r.s.ssd_tb, r.s.io_window ? "I/O-aware" : "FCFS", 1e3 * m.mean_ttft(), 1e3 * m.p99_ttft(),
                              r.r.mean_queue_s(), 100 * m.hit_rate(), 100 * m.hit_rate(2), r.r.reordered_jobs);
        }
    md << "\nLoad or recompute per turn (beyond the paper; LLaMA-2-13B) across session arrival rates: the paper's stack "
          "always loads a hit, RE always recomputes, and `fastest` takes per turn whichever the simulator's costs say "
          "puts out the first token sooner: load it all, recompute it all, or load the oldest tokens layer by layer "
          "while the prefill recomputes the newest (a split).\n\n"
          "| SSDs | rate | mean TTFT: load / fastest / RE | p99 TTFT: load / fastest / RE | fastest vs min(load, RE) | "
          "turns recomputed / split | mean queue wait: load / fastest / RE | GPU busy: load / fastest / RE |\n"
          "|---|---|---|---|---|---|---|---|\n";
    for (int ssd_count : {0, 1})
    for (double rate : lor_rates) {
        const outcome *ld = nullptr, *fs_ = nullptr, *re = nullptr;
        for (const auto& r : results)
            if (r.s.experiment == "lor" && r.s.rate == rate && r.s.ssds == ssd_count)
                (r.s.retain ? (r.s.fastest ? fs_ : ld) : re) = &r;
        if (!ld || !fs_ || !re) continue;
        const double best = std::min(ld->r.measured.mean_ttft(), re->r.measured.mean_ttft());
        const auto& f = fs_->r.measured;
        md << fmt::format("| {} | {}/s | {:.1f} / {:.1f} / {:.1f} ms | {:.0f} / {:.0f} / {:.0f} ms | {:+.1f}% | {:.1f}% / {:.1f}% | "
                          "{:.1f} / {:.1f} / {:.1f} s | {:.0f}% / {:.0f}% / {:.0f}% |\n",
                          ssd_count ? ssd_count : profile.ssds, rate, 1e3 * ld->r.measured.mean_ttft(), 1e3 * f.mean_ttft(), 1e3 * re->r.measured.mean_ttft(),
                          1e3 * ld->r.measured.p99_ttft(), 1e3 * f.p99_ttft(), 1e3 * re->r.measured.p99_ttft(),
                          100 * (f.mean_ttft() / best - 1), 100 * f.recomputed_instead_share(), 100 * f.split_share(),
                          ld->r.mean_queue_s(), fs_->r.mean_queue_s(), re->r.mean_queue_s(),
                          100 * ld->r.gpu_utilization(), 100 * fs_->r.gpu_utilization(), 100 * re->r.gpu_utilization());
    }
    md.close();  // flushed: printed at the end

    csv.close();  // gnuplot reads it below
    // ---- per-model summary (the bar charts' data)
    const fs::path per_model = fs::path(o.out) / "models.csv";
    {
        std::ofstream pm(per_model);
        pm << "# model,hit_hbm,hit_hbm_dram,hit_all,ttft_re_s,ttft_s,prefill_tps_re,prefill_tps,gpu_hours_re,gpu_hours,"
              "dollars_re,dollars\n";
        for (const auto& m : models) {
            const auto& n = m.shape.name;
            const auto& all = find(n, "cachedattn", o.dram_gb, o.ssd_tb, true);
            const auto& re = find(n, "recompute", o.dram_gb, o.ssd_tb, false);
            pm << fmt::format("{},{:.4f},{:.4f},{:.4f},{:.5f},{:.5f},{:.1f},{:.1f},{:.4f},{:.4f},{:.3f},{:.3f}\n", n,
                              find(n, "cachedattn", 0, 0, true).r.measured.hit_rate(),
                              find(n, "cachedattn", o.dram_gb, 0, true).r.measured.hit_rate(), all.r.measured.hit_rate(),
                              re.r.measured.mean_ttft(), all.r.measured.mean_ttft(), re.prefill_tokens_per_s,
                              all.prefill_tokens_per_s, re.gpu_hours, all.gpu_hours, re.dollars, all.dollars);
        }
    }

    // ---- gnuplot
    const fs::path gp = fs::path(o.out) / "plots.gp";
    {
        std::ofstream g(gp);
        const std::string pmf = per_model.string();
        auto bars = [&](const std::string& png, const std::string& ylabel, const std::string& cols) {
            g << "set output '" << (fs::path(o.out) / png).string() << "'\nset ylabel '" << ylabel << "'\nplot " << cols
              << "\n";
        };
        g << "set datafile separator ','\nset terminal pngcairo size 900,560 noenhanced\nset key outside\nset grid y\n"
          << "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
          << "set xlabel 'model (paper setup)'\nset yrange [0:*]\n";
        bars("hit_by_tiers.png", "hit rate",
             "'" + pmf + "' using 2:xtic(1) title 'HBM only', '' using 3 title 'HBM+DRAM', '' using 4 title 'HBM+DRAM+SSD'");
        bars("ttft_vs_re.png", "mean TTFT (s)", "'" + pmf + "' using 5:xtic(1) title 'recompute (RE)', '' using 6 title 'cachedattn'");
        bars("prefill_throughput.png", "prefill throughput (prompt tokens/s)",
             "'" + pmf + "' using 7:xtic(1) title 'recompute (RE)', '' using 8 title 'cachedattn'");
        bars("gpu_hours.png", "GPU hours", "'" + pmf + "' using 9:xtic(1) title 'recompute (RE)', '' using 10 title 'cachedattn'");
        bars("cost.png", "dollars (GPU + DRAM + SSD, paper prices)",
             "'" + pmf + "' using 11:xtic(1) title 'recompute (RE)', '' using 12 title 'cachedattn'");
        g << "set style data lines\nunset xlabel\nset grid\n";
        g << "set datafile separator ','\nset terminal pngcairo size 900,560 noenhanced\nset key outside\nset grid\n"
          << "set ylabel 'hit rate'\nset yrange [0:1]\n";
        g << "set output '" << (fs::path(o.out) / "hit_vs_dram.png").string() << "'\nset xlabel 'DRAM (GB), LLaMA-2-13B'\nset logscale x\nplot ";
        for (std::size_t i = 0; i < policies.size(); ++i)
            g << (i ? ", " : "") << "'" << (fs::path(o.out) / "runs.csv").string() << "' using (strcol(1) eq 'dram' && strcol(3) eq '"
              << policies[i] << "' ? $5 : 1/0):10 with linespoints title '" << policies[i] << "'";
        g << "\nset output '" << (fs::path(o.out) / "hit_vs_ssd.png").string() << "'\nset xlabel 'SSD (TB), LLaMA-2-13B'\nplot ";
        for (std::size_t i = 0; i < policies.size(); ++i)
            g << (i ? ", " : "") << "'" << (fs::path(o.out) / "runs.csv").string() << "' using (strcol(1) eq 'ssd' && strcol(3) eq '"
              << policies[i] << "' ? $6 : 1/0):10 with linespoints title '" << policies[i] << "'";
        g << "\nunset logscale x\nset yrange [0:*]\nset ylabel 'mean TTFT (s)'\n";
        g << "set output '" << (fs::path(o.out) / "buffer_sweep.png").string()
          << "'\nset xlabel 'pre-load buffer (layers), LLaMA-2-13B'\nplot '" << (fs::path(o.out) / "runs.csv").string()
          << "' using (strcol(1) eq 'buffer' && $8 >= 0 && $24 == 0 ? $8 : 1/0):14 with linespoints title 'cachedattn, "
             "fixed buffer'\n";
        g << "set output '" << (fs::path(o.out) / "rate_sweep.png").string()
          << "'\nset xlabel 'session arrivals per second, LLaMA-2-13B'\nplot '" << (fs::path(o.out) / "runs.csv").string()
          << "' using (strcol(1) eq 'rate' && strcol(3) eq 'cachedattn' ? $7 : 1/0):14 with linespoints title 'cachedattn', '"
          << (fs::path(o.out) / "runs.csv").string()
          << "' using (strcol(1) eq 'rate' && strcol(3) eq 'recompute' ? $7 : 1/0):14 with linespoints title 'recompute (RE)'\n";
    }
    const bool plotted = std::system(("command -v gnuplot >/dev/null 2>&1 && gnuplot '" + gp.string() + "'").c_str()) == 0;
    fmt::print("{} runs in {:.1f} s; wrote {}/runs.csv, results.json, tables.md{}\n", results.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), o.out,
               plotted ? ", *.png" : " and plots.gp (gnuplot missing or it failed: run it on plots.gp)");
    std::ifstream tables(fs::path(o.out) / "tables.md");
    const std::string generated((std::istreambuf_iterator<char>(tables)), std::istreambuf_iterator<char>());
    fmt::print("\n{}", generated);
    if (!o.results_md.empty()) {
        const std::string name = fs::path(o.out).filename().string();
        const std::string begin = "<!-- generated:" + name + ":begin -->", end = "<!-- generated:" + name + ":end -->";
        std::ifstream in(o.results_md);
        if (!in) throw ca::config_error("--results-md: cannot read " + o.results_md);
        std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        in.close();
        const auto b = doc.find(begin), e = doc.find(end);
        if (b == std::string::npos || e == std::string::npos || e < b)
            throw ca::config_error("--results-md: " + o.results_md + " has no section " + begin + " ... " + end);
        doc.replace(b + begin.size(), e - b - begin.size(), "\n" + generated + "\n");
        std::ofstream(o.results_md) << doc;
        fmt::print("replaced the section {} of {}\n", name, o.results_md);
    }
    return 0;
} catch (const cachedattn::error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
} catch (const std::exception& e) {  // file system errors (an unwritable --out), allocation failures
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
}
