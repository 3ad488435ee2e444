// Writes the fuzzers' seed corpora with the library itself: a valid KV file, a ShareGPT file, a
// BurstGPT CSV, a GPU profile and safetensors files, plus a few near-misses. Usage: make_seeds <dir>
#include <cachedattn/io/kv_file_format.hpp>
#include <cachedattn/model/safetensors.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds <dir>\n");
        return 2;
    }
    namespace fs = std::filesystem;
    const fs::path root = argv[1];
    for (const char* d : {"kv_file", "file_tier", "trace_readers", "gpu_profile", "safetensors"})
        fs::create_directories(root / d);
    auto put = [](const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; };
    for (std::size_t tokens : {1, 5, 13}) {
        const auto bytes = cachedattn::io::encode_kv_file(fuzz::entry(7, tokens), fuzz::G, fuzz::fingerprint);
        const std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        put(root / "kv_file" / ("entry-" + std::to_string(tokens)), s);
        put(root / "file_tier" / ("entry-" + std::to_string(tokens)), s);
        put(root / "kv_file" / ("truncated-" + std::to_string(tokens)), s.substr(0, s.size() / 2));
    }
    put(root / "trace_readers" / "sharegpt.json",
        R"([{"id": "a", "conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "hi"}]}])");
    put(root / "trace_readers" / "burstgpt.csv",
        "Timestamp,Session ID,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "0,1,ChatGPT,10,20,30,Conversation log\n5,1,ChatGPT,11,21,32,Conversation log\n");
    put(root / "gpu_profile" / "profile.json",
        R"({"name": "x", "peak_flops": 3e14, "gpus": 4, "ssds": 2, "allreduce_bytes_per_s": 2e10})");
    // Every float dtype, a scalar, an empty tensor, 16-bit specials (inf, NaN, subnormals).
    const std::vector<float> values{1.0f, -2.5f, 6e-8f, 65504.0f, 1e30f, -0.0f, std::numeric_limits<float>::infinity(),
                                    std::numeric_limits<float>::quiet_NaN()};
    const std::vector<float> none;
    for (const auto t : {cachedattn::dtype::f32, cachedattn::dtype::f16, cachedattn::dtype::bf16}) {
        namespace st = cachedattn::model::safetensors;
        const std::vector<st::tensor_to_write> ts{{"model.layers.0.self_attn.q_proj.weight", t, {2, 4}, values},
                                                  {"scalar", t, {}, std::span(values).first(1)},
                                                  {"empty", t, {0, 3}, none}};
        const auto bytes = st::encode(ts, {{"format", "pt"}});
        const std::string s(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        put(root / "safetensors" / (std::string("model-") + cachedattn::to_string(t)), s);
        put(root / "safetensors" / (std::string("truncated-") + cachedattn::to_string(t)), s.substr(0, s.size() - 3));
    }
    return 0;
}
