// The CUDA backend over a loaded checkpoint's host weights (rounded to f16/bf16 on upload, q/k/v
// biases added as a rank-1 GEMM): through the engine with an HBM device tier, a chat's logits
// match the f32 CPU reference on the same loaded weights, turn after turn.
#include <cachedattn/backend/cuda_backend.hpp>
#include <cachedattn/model/hf_checkpoint.hpp>

#include "../support.hpp"
#include "../tools/qkv_biases.hpp"
#include "cuda_support.hpp"

using namespace cachedattn;

namespace {

void chat_matches_cpu(const std::string& arch, dtype t, bool biases) {
    auto cfg = model::model_config::tiny();
    cfg.head_dim = 64;  // the CUDA kernels' head dims are 64 and 128
    auto w = model::weights::random(cfg, 21);
    if (biases) checkpoint_content::add_qkv_biases(w, cfg, 21);
    test::temp_dir dir("cuda-ckpt");
    model::write_hf_checkpoint(dir.path() / "m", cfg, w, {.architecture = arch, .type = t});
    auto ck = model::load_hf_checkpoint(dir.path() / "m");
    backend::cpu_backend cpu(ck.config.model, ck.weights, ck.identity);
    auto gpu_cfg = ck.config.model;
    gpu_cfg.type = t;
    backend::cuda_backend gpu(gpu_cfg, ck.weights, ck.identity);
    CHECK(gpu.weights_id() == ck.identity);

    using H = test::stack3<>;
    const std::size_t per_token = gpu.geometry().kv_bytes_per_token();
    auto hc = test::capacities<H>(256 * per_token, 256 * per_token, 1024 * per_token, dir.path() / "cache");
    std::get<0>(hc.tiers).memory = cuda::device_memory();
    H h(hc, gpu.geometry(), gpu.weights_id());
    engine eng(h, gpu, {.record_logits = true});
    std::mt19937_64 rng(5);
    for (int turn = 0; turn < 3; ++turn) {
        const auto input = test::random_tokens(rng, 20, cfg.vocab);
        std::vector<token_id> full = eng.history(session_id{1});
        full.insert(full.end(), input.begin(), input.end());
        const auto r = eng.run_turn(session_id{1}, input, 4);
        const auto ref = test::reference_logits(cpu, full);
        const double err = cudatest::rel_l2(r.first_logits, std::vector<double>(ref.begin(), ref.end()));
        CAPTURE(arch);
        CAPTURE(turn);
        MESSAGE(arch << " " << to_string(t) << ": rel L2 vs f32 CPU " << err);
        CHECK(err <= (t == dtype::f16 ? 1e-2 : 3e-2));
        if (turn > 0) CHECK(r.metrics.reused_tokens > 0);
    }
    eng.synchronize();
}

}  // namespace

TEST_CASE("cuda backend on a loaded checkpoint: LLaMA f16, Qwen2 bf16 with q/k/v biases") {
    chat_matches_cpu("llama", dtype::f16, false);
    chat_matches_cpu("qwen2", dtype::bf16, true);
}
