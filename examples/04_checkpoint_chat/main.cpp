// A multi-turn chat over a real Hugging Face checkpoint (LLaMA, Mistral or Qwen2 safetensors),
// served by the paper's stack: every turn's KV is kept across turns in the device, host and
// SSD tiers (the SSD tier in a temp directory), so each new turn loads its history instead of
// recomputing it. Token ids in, greedy-decoded token ids out: no C++ library on Debian reads
// Hugging Face's tokenizer.json (libsentencepiece reads tokenizer.model only), so tokenize and
// detokenize outside, e.g. with the `tokenizers` Python package.
//
//   04_checkpoint_chat --model ~/models/TinyLlama-1.1B-Chat-v1.0 --turn "1 529 29989" --turn "3532 29901"
#include <unistd.h>

#include <array>
#include <cachedattn/common_stacks.hpp>
#include <cachedattn/model/hf_checkpoint.hpp>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>
#ifdef CACHEDATTN_EXAMPLE_CUDA
#include <cachedattn/backend/cuda_backend.hpp>
#endif
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../common/cli.hpp"

namespace ca = cachedattn;
namespace fs = std::filesystem;

namespace {

struct options {
    std::string model;
    std::vector<std::string> turns;
    std::string turns_file;
    int max_new = 16;
    int max_context = 0;
    std::string backend = "cpu";
    double device_mib = 64, host_mib = 256, ssd_mib = 1024;
};

/// "1 2 3" (spaces or commas) as token ids, each checked against the vocabulary.
std::vector<ca::token_id> parse_turn(const std::string& text, std::size_t turn, int vocab) {
    std::vector<ca::token_id> ids;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\r') {
            ++i;
            continue;
        }
        const std::size_t end = std::min(text.find_first_of(" ,\t\r", i), text.size());
        const std::string word = text.substr(i, end - i);
        long long id = -1;
        const auto [p, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
        if (ec != std::errc() || p != word.data() + word.size() || id < 0 || id >= vocab)
            throw ca::input_error("turn " + std::to_string(turn) + ": '" + word + "' is not a token id in [0, " +
                                  std::to_string(vocab) + ")");
        ids.push_back(static_cast<ca::token_id>(id));
        i = end;
    }
    if (ids.empty()) throw ca::input_error("turn " + std::to_string(turn) + " has no token ids");
    return ids;
}

std::vector<std::string> read_lines(const std::string& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw ca::input_error("--turns-file " + file + ": not a regular file (or missing)");
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
    return lines;
}

constexpr std::array<const char*, 3> tier_names{"device", "host DRAM", "SSD"};

/// Runs the turns of one chat through the paper's stack on `model` and prints each turn.
template <class Backend>
void chat(Backend& model, const options& o, const std::vector<std::string>& texts, const fs::path& cache,
          std::shared_ptr<const ca::tier::pool_memory> device_memory = nullptr) {
    ca::stacks::paper::config c;
    c.device().capacity_bytes = static_cast<std::size_t>(o.device_mib * (1 << 20));
    c.device().memory = std::move(device_memory);
    c.host().capacity_bytes = static_cast<std::size_t>(o.host_mib * (1 << 20));
    c.ssd() = {cache, static_cast<std::size_t>(o.ssd_mib * (1 << 20))};
    ca::stacks::paper kv(c, model.geometry(), model.weights_id());
    ca::engine eng(kv, model);

    std::vector<std::vector<ca::token_id>> inputs;  // all parsed before the first turn runs
    for (std::size_t i = 0; i < texts.size(); ++i) inputs.push_back(parse_turn(texts[i], i + 1, model.vocab()));
    const ca::session_id chat_id{1};
    std::array<int, 3> hits{};
    int misses = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const std::int64_t history = static_cast<std::int64_t>(eng.history(chat_id).size());
        const auto r = eng.run_turn(chat_id, inputs[i], o.max_new);
        const auto& m = r.metrics;
        std::string source = "no history yet";
        if (history > 0 && m.hit_tier) {
            ++hits[*m.hit_tier];
            source = fmt::format("hit in {} ({} reused, {} recomputed)", tier_names[*m.hit_tier], m.reused_tokens,
                                 m.recomputed_tokens);
        } else if (history > 0) {
            ++misses;
            source = fmt::format("miss ({} recomputed)", m.recomputed_tokens);
        }
        fmt::print("turn {}: {} tokens in, history {} tokens: {}{}; TTFT {:.1f} ms\n  -> {}\n", i + 1,
                   inputs[i].size(), history, source, m.truncated ? ", truncated to fit the context" : "",
                   m.ttft_s * 1e3, fmt::join(r.generated, " "));
    }
    fmt::print("history served from: device {}, host DRAM {}, SSD {}, recomputed (miss) {}\n", hits[0], hits[1],
               hits[2], misses);
}

}  // namespace

int main(int argc, char** argv) try {
    options o;
    CLI::App app{"cachedattn: multi-turn chat over a Hugging Face checkpoint (token ids in and out)"};
    app.add_option("--model", o.model, "checkpoint directory (config.json + *.safetensors)")->required();
    app.add_option("--turn", o.turns, "one turn's token ids, e.g. \"1 2 3\" (repeat for more turns)");
    app.add_option("--turns-file", o.turns_file, "a file with one turn of token ids per line");
    app.add_option("--max-new", o.max_new, "tokens generated per turn (greedy)")->check(examples::count_in(1, 1'000'000));
    app.add_option("--max-context", o.max_context, "cap on the context window (0: the model's)")
        ->check(examples::count_in(0, 1 << 24));
    app.add_option("--backend", o.backend, "cpu (f32 reference) or cuda (f16/bf16)")->check(CLI::IsMember({"cpu", "cuda"}));
    app.add_option("--device-mib", o.device_mib, "device tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e7));
    app.add_option("--host-mib", o.host_mib, "host DRAM tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e7));
    app.add_option("--ssd-mib", o.ssd_mib, "SSD tier capacity (MiB)")->check(examples::finite_in(1e-3, 1e9));
    CLI11_PARSE(app, argc, argv);

    std::vector<std::string> texts = o.turns;
    if (!o.turns_file.empty())
        for (auto& line : read_lines(o.turns_file)) texts.push_back(std::move(line));
    if (texts.empty()) texts = {"1 2 3 4", "5 6", "7"};  // a smoke run

    const fs::path cache = fs::temp_directory_path() / ("cachedattn-chat-" + std::to_string(::getpid()));
    // Removes the SSD tier's directory on every exit, error exits included.
    struct remove_on_exit {
        fs::path dir;
        ~remove_on_exit() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } cleanup{cache};

    ca::model::checkpoint ck = ca::model::load_hf_checkpoint(o.model, {.max_context = o.max_context});
    auto& cfg = ck.config.model;
    fmt::print("model {} ({}): {} layers, {} heads ({} KV), head_dim {}, vocab {}, context {}, {} parameters{}\n",
               cfg.name, ck.config.architecture, cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.vocab,
               cfg.context_window, cfg.parameters(), ck.config.qkv_bias ? " + q/k/v biases" : "");
    if (o.backend == "cuda") {
#ifdef CACHEDATTN_EXAMPLE_CUDA
        cfg.type = ck.config.stored_type == ca::dtype::bf16 ? ca::dtype::bf16 : ca::dtype::f16;
        ca::backend::cuda_backend model(cfg, ck.weights, ck.identity);
        ck.weights = {};  // on the GPU now
        chat(model, o, texts, cache, ca::cuda::device_memory());
#else
        throw ca::config_error("--backend cuda: this build has no CUDA backend (configure with nvcc present)");
#endif
    } else {
        ca::backend::cpu_backend model(cfg, std::move(ck.weights), ck.identity);
        chat(model, o, texts, cache);
    }
    return 0;
} catch (const std::exception& e) {  // bad checkpoints, bad token ids, unwritable TMPDIR, allocation failures
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
}
