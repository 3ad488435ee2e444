#pragma once
/// @file
/// @brief Loads a Hugging Face checkpoint directory of a LLaMA-family model (LLaMA, Mistral,
/// Qwen2): `config.json` into a model_config and the weights from `model.safetensors` or the
/// shards a `model.safetensors.index.json` names, every tensor's shape checked against the
/// config. Also writes such a directory (tests, tools, fuzz seeds).
///
/// What loads as it is: HF Linear weights are `[out][in]` row-major, as model::weights keeps
/// them, and HF's LLaMA rotary embedding pairs element i with i + head_dim/2 ("rotate half"),
/// which is the pairing core/rope.hpp uses, so q_proj and k_proj need no permutation (that
/// permutation exists only between Meta's original checkpoints and HF's). What is rejected, with
/// a config_error naming the field: other architectures, rope_scaling, sliding-window attention
/// that would be in use within the context window, o_proj or MLP biases, activations other than
/// SiLU. Weights are held as f32 whatever their stored dtype (4 bytes per parameter in memory).
/// Implemented in src/model/hf_checkpoint.cpp.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "cachedattn/core/geometry.hpp"
#include "cachedattn/model/config.hpp"
#include "cachedattn/model/weights.hpp"

namespace cachedattn::model {

struct hf_options {
    /// Cap on context_window (0: max_position_embeddings). A 32K-position model needs a
    /// 32K-token RoPE table and sliding-window checks against the window actually used.
    int max_context = 0;
    int block_tokens = 16;
};

/// What config.json says, as this library uses it.
struct hf_config {
    model_config model;              ///< type f32 (the CPU reference); CUDA callers set f16/bf16
    std::string architecture;        ///< "llama", "mistral" or "qwen2"
    bool tied_embeddings = false;    ///< lm_head is the embedding (no lm_head.weight stored)
    bool qkv_bias = false;           ///< q/k/v projections have biases (Qwen2)
    std::optional<dtype> stored_type;  ///< torch_dtype, when it is float32/float16/bfloat16
};

/// Parses and validates `config_json` (config_error naming the file and the field).
hf_config read_hf_config(const std::filesystem::path& config_json, const hf_options& o = {});

struct checkpoint {
    hf_config config;
    model::weights weights;
    /// Identity for the cache fingerprint: model::weights_identity of the config with, as
    /// "seed", an XXH3 hash of every weight value in load order, so two checkpoints that differ
    /// in any value never share stored KV (while the same values in another file layout do).
    std::uint64_t identity = 0;
};

/// Loads the checkpoint in directory `dir`. Throws config_error for unsupported models and
/// input_error for damaged or inconsistent files, naming the file and tensor.
checkpoint load_hf_checkpoint(const std::filesystem::path& dir, const hf_options& o = {});

/// How write_hf_checkpoint lays a model out.
struct hf_write_options {
    std::string architecture = "llama";  ///< "llama", "mistral" or "qwen2"
    dtype type = dtype::f32;             ///< dtype of every stored tensor
    int shards = 1;                      ///< > 1: model-0000i-of-0000n.safetensors + index
    /// Store no lm_head (tie_word_embeddings): `w.output` must equal `w.embedding`.
    bool tie_embeddings = false;
};

/// Writes `w` (with biases iff its layers have them) as a checkpoint directory `dir` that
/// load_hf_checkpoint reads back (values rounded to `o.type`). Creates `dir`.
void write_hf_checkpoint(const std::filesystem::path& dir, const model_config& c, const model::weights& w,
                         const hf_write_options& o = {});

}  // namespace cachedattn::model
