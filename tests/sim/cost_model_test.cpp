// The simulator's cost model on cases computed by hand, and GPU profiles from JSON.
#include <cachedattn/sim/cost_model.hpp>

#include "../support.hpp"

using namespace cachedattn;

namespace {
model::model_config toy() {
    model::model_config m;
    m.name = "toy";
    m.vocab = 10;
    m.dim = 8;
    m.layers = 2;
    m.heads = 2;
    m.kv_heads = 1;
    m.head_dim = 4;
    m.ffn_dim = 16;
    m.context_window = 64;
    m.type = dtype::f16;
    return m;
}
sim::gpu_profile round_numbers() {
    sim::gpu_profile p;
    p.name = "round";
    p.peak_flops = 1000;  // FLOP/s: the toy is compute bound
    p.hbm_bytes_per_s = 1e9;
    p.hbm_bytes = 1e9;
    p.compute_efficiency = 1;
    p.memory_efficiency = 1;
    p.link_bytes_per_s = 100;
    p.ssd_read_bytes_per_s = 50;
    p.ssd_write_bytes_per_s = 25;
    return p;
}
}  // namespace

TEST_CASE("cost model: prefill, decode and copies on a hand-computed toy") {
    const sim::cost_model cm(toy(), round_numbers());
    // Per layer: q 8x8, k and v 8x4 each, o 8x8, SwiGLU 3 x 8x16 = 64+64+64+384 = 576 parameters.
    CHECK(cm.layer_params() == 576);
    // Prefill of 2 new tokens after 3 cached: 2*2*576 = 2304 matmul FLOPs; attention pairs
    // 2*3 + (1+2) = 9, times 4 * 8 (q width) = 288.
    const auto w = cm.prefill_layer(2, 3);
    CHECK(w.flops == 2304 + 288);
    // Bytes: 576 fp16 weights = 1152; KV read 5 tokens x (k+v 4 each) x 2 B = 80; written 2 x 16 = 32.
    CHECK(w.bytes == 1152 + 80 + 32);
    CHECK(cm.prefill_layer_s(2, 3) == doctest::Approx(2.592));  // compute bound at 1000 FLOP/s
    // Whole prefill: 2 layers + the head for one token (2 x 10 x 8 = 160 FLOPs).
    CHECK(cm.prefill_s(2, 3) == doctest::Approx(2 * 2.592 + 0.160));
    // Decode: 3 sequences, 12 context tokens in all: 2*3*576 + 4*8*12 = 3456 + 384.
    CHECK(cm.decode_layer(3, 12).flops == 3840);
    CHECK(cm.decode_step_s(3, 12) == doctest::Approx(2 * 3.840 + 0.480));
    // KV: 16 B per token per layer; 10 tokens over a 100 B/s link: 1.6 s per layer.
    CHECK(cm.kv_bytes(10) == 320);
    CHECK(cm.link_layer_s(10) == doctest::Approx(1.6));
    CHECK(cm.ssd_read_s(100) == doctest::Approx(2.0));
    CHECK(cm.ssd_write_s(100) == doctest::Approx(4.0));

    // Memory bound: a slow HBM makes bytes decide; two GPUs halve both.
    auto slow = round_numbers();
    slow.peak_flops = 1e12;
    slow.hbm_bytes_per_s = 1264;
    CHECK(sim::cost_model(toy(), slow).prefill_layer_s(2, 3) == doctest::Approx(1.0));
    slow.gpus = 2;
    slow.allreduce_bytes_per_s = 1e30;  // a free interconnect first: only the split shows
    CHECK(sim::cost_model(toy(), slow).prefill_layer_s(2, 3) == doctest::Approx(0.5));
    CHECK(sim::cost_model(toy(), slow).link_layer_s(10) == doctest::Approx(0.8));
    // Tensor parallelism's two all-reduces per layer: 2 rows x 8 dims x 2 B = 32 B; a ring of 2
    // moves 2 (2-1)/2 = 1x of it over a 32 B/s bus (1 s) plus 0.25 s each: 2 x 1.25 = 2.5 s.
    slow.allreduce_bytes_per_s = 32;
    slow.allreduce_latency_s = 0.25;
    const sim::cost_model tp(toy(), slow);
    CHECK(tp.allreduce_layer_s(2) == doctest::Approx(2.5));
    CHECK(tp.prefill_layer_s(2, 3) == doctest::Approx(0.5 + 2.5));
    // A decode step of 3 sequences: 3 rows per all-reduce (48 B: 1.5 s + 0.25 s, twice) per layer.
    const double step = tp.decode_step_s(3, 12);
    CHECK(step == doctest::Approx(sim::cost_model(toy(), [&] {
                                      auto free_bus = slow;
                                      free_bus.allreduce_bytes_per_s = 1e30;
                                      free_bus.allreduce_latency_s = 0;
                                      return free_bus;
                                  }()).decode_step_s(3, 12) +
                                  2 * 3.5));
    // The closed form includes them too.
    CHECK(tp.batch_steps_s(3, 12, 4) ==
          doctest::Approx(tp.decode_step_s(3, 12) + tp.decode_step_s(3, 15) + tp.decode_step_s(3, 18) +
                          tp.decode_step_s(3, 21)));
    // One GPU: no all-reduce, whatever the bus.
    CHECK(sim::cost_model(toy(), round_numbers()).allreduce_layer_s(100) == 0);
    // Two SSDs striped: half the time.
    auto two = round_numbers();
    two.ssds = 2;
    CHECK(sim::cost_model(toy(), two).ssd_read_s(100) == doctest::Approx(1.0));
    CHECK(sim::cost_model(toy(), two).ssd_write_s(100) == doctest::Approx(2.0));
    // Several GPUs need an interconnect.
    auto no_bus = round_numbers();
    no_bus.gpus = 4;
    CHECK_THROWS_AS(sim::cost_model(toy(), no_bus), config_error);
}

TEST_CASE("cost model: the paper's shapes and server give plausible magnitudes") {
    const auto a100 = sim::gpu_profile::a100_pcie4(2);
    const sim::cost_model cm(model::model_config::llama2_13b(), a100);
    // 13B: 0.78 MiB of KV per token; 1K tokens over two 26 GB/s links: about 15 ms.
    CHECK(cm.kv_bytes(1) == 819200);
    CHECK(cm.link_s(cm.kv_bytes(1024)) == doctest::Approx(1024 * 819200 / 52e9));
    // Prefill of 1K tokens: 2 x 12.7e9 params x 1K = 26 TFLOP (+ attention) on 2 x 187 TFLOP/s.
    const double t = cm.prefill_s(1024, 0);
    MESSAGE("13B prefill of 1K tokens on 2 A100s: " << t * 1e3 << " ms");
    CHECK(t > 0.05);
    CHECK(t < 0.15);
    CHECK(sim::cost_model(model::model_config::llama_65b(), sim::gpu_profile::a100_pcie4(4)).kv_bytes(1) == 2621440);
    CHECK(sim::cost_model(model::model_config::llama2_70b(), sim::gpu_profile::a100_pcie4(4)).kv_bytes(1) == 327680);
    CHECK(sim::cost_model(model::model_config::falcon_40b(), sim::gpu_profile::a100_pcie4(4)).kv_bytes(1) == 122880);
}

TEST_CASE("gpu profiles: built-ins, JSON overrides, and errors that name the field") {
    test::temp_dir d("profile");
    const auto file = d.path() / "p.json";
    std::ofstream(file) << R"({"name": "slow link", "link_bytes_per_s": 8e9, "gpus": 4})";
    const auto p = sim::gpu_profile::load(file, sim::gpu_profile::a100_pcie4(2));
    CHECK(p.name == "slow link");
    CHECK(p.link_bytes_per_s == 8e9);
    CHECK(p.gpus == 4);
    CHECK(p.peak_flops == 312e12);  // kept from the base
    CHECK(sim::gpu_profile::builtin("h100", 1).peak_flops == 989e12);
    CHECK_THROWS_AS(sim::gpu_profile::builtin("tpu", 1), config_error);
    auto expect = [&](const std::string& json, const std::string& field) {
        std::ofstream(file) << json;
        try {
            sim::gpu_profile::load(file, sim::gpu_profile::a100_pcie4(1));
            FAIL("accepted " << json);
        } catch (const config_error& e) {
            CHECK_MESSAGE(std::string(e.what()).find(field) != std::string::npos, e.what());
        }
    };
    expect(R"({"peak_flops": "fast"})", "peak_flops");
    expect(R"({"link_bytes_per_s": -1})", "link_bytes_per_s");
    expect(R"({"compute_efficiency": 1.5})", "compute_efficiency");
    expect(R"({"gpus": 1.5})", "gpus");
    expect(R"({"gpus": 4294967297})", "gpus");  // must not wrap to 1
    expect(R"({"ssds": 0})", "ssds");
    expect(R"({"peak_flops": 1e400})", "malformed JSON");  // out of double's range
    expect(R"({"gpus": 4, "allreduce_bytes_per_s": 0})", "allreduce_bytes_per_s");
    CHECK(sim::gpu_profile::builtin("a100-calibrated", 2).compute_efficiency ==
          sim::gpu_profile::calibrated_compute_efficiency);
    expect(R"({"gpu": 2})", "unknown field 'gpu'");
    expect(R"([1, 2])", "expected a JSON object");
    expect(R"({"name": )", "malformed JSON");
    CHECK_THROWS_AS(sim::gpu_profile::load(d.path() / "absent.json", {}), config_error);
}

TEST_CASE("cost model: a run of decode steps in closed form equals the step-by-step sum") {
    // Batches and contexts on both sides of the compute/memory crossing, and ranges across it.
    for (const auto& shape : {model::model_config::llama2_13b(), model::model_config::llama2_70b()})
        for (int gpus : {1, 4}) {
            const sim::cost_model cm(shape, sim::gpu_profile::a100_pcie4(gpus));
            for (std::int64_t batch : {1, 24, 256})
                for (auto [first, steps] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {1, 500}, {200, 3000}, {4000, 90},
                                            {1, 0}, {7, 20000}}) {
                    double sum = 0;
                    for (std::int64_t s = 0; s < steps; ++s) sum += cm.decode_step_s(batch, batch * (first + s));
                    const double closed = cm.decode_steps_s(batch, first, steps);
                    CAPTURE(batch);
                    CAPTURE(first);
                    CAPTURE(steps);
                    CHECK(closed == doctest::Approx(sum).epsilon(1e-9));
                }
        }
}

TEST_CASE("cost model: a batch of unequal sequences in closed form equals the step-by-step sum") {
    // A batch's total context need not be a multiple of its size (sequences of any lengths).
    const sim::cost_model cm(model::model_config::llama2_13b(), sim::gpu_profile::a100_pcie4(2));
    for (std::int64_t batch : {1, 3, 24, 200})
        for (std::int64_t total : {std::int64_t{1}, std::int64_t{977}, std::int64_t{40'001}, std::int64_t{3'000'003}})
            for (std::int64_t steps : {0, 1, 17, 2500}) {
                if (total < batch) continue;
                double sum = 0;
                for (std::int64_t s = 0; s < steps; ++s) sum += cm.decode_step_s(batch, total + s * batch);
                CAPTURE(batch);
                CAPTURE(total);
                CAPTURE(steps);
                CHECK(cm.batch_steps_s(batch, total, steps) == doctest::Approx(sum).epsilon(1e-9));
            }
}
