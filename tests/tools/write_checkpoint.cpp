// Writes small Hugging Face checkpoint directories for the 04_checkpoint_chat CLI tests:
// Usage: write_checkpoint <root>. Under <root>:
//   llama-f32/                one model.safetensors, the tiny model with random weights
//   qwen2-bf16-sharded/       q/k/v biases, BF16, two shards and an index
//   corrupt-safetensors/      llama-f32 with its last 100 bytes cut off
//   bad-config/               llama-f32 whose config.json names an unsupported architecture
#include <cachedattn/model/hf_checkpoint.hpp>
#include <cstdio>
#include <exception>
#include <fstream>

#include "qkv_biases.hpp"

int main(int argc, char** argv) try {
    if (argc != 2) {
        std::fprintf(stderr, "usage: write_checkpoint <root>\n");
        return 2;
    }
    namespace fs = std::filesystem;
    namespace m = cachedattn::model;
    const fs::path root = argv[1];
    fs::remove_all(root);
    const auto cfg = m::model_config::tiny();
    const auto w = m::weights::random(cfg, 1);
    m::write_hf_checkpoint(root / "llama-f32", cfg, w);

    auto biased = w;
    checkpoint_content::add_qkv_biases(biased, cfg, 2, 0.5f);
    m::write_hf_checkpoint(root / "qwen2-bf16-sharded", cfg, biased,
                           {.architecture = "qwen2", .type = cachedattn::dtype::bf16, .shards = 2});

    m::write_hf_checkpoint(root / "corrupt-safetensors", cfg, w);
    const fs::path weights = root / "corrupt-safetensors" / "model.safetensors";
    fs::resize_file(weights, fs::file_size(weights) - 100);

    m::write_hf_checkpoint(root / "bad-config", cfg, w);
    std::ofstream(root / "bad-config" / "config.json", std::ios::trunc)
        << R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 512})" << "\n";
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
}
