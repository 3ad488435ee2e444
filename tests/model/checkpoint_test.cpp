// Real checkpoints: the f16/bf16 conversions, the safetensors reader's validation (one case per
// rule, message checked), and Hugging Face checkpoint directories written here from
// model::weights::random and loaded back: through the engine, a loaded model's logits equal the
// random model's (exactly: F32 as is, F16/BF16 against the same rounded weights).
#include <cachedattn/common_stacks.hpp>
#include <cachedattn/core/float16.hpp>
#include <cachedattn/model/hf_checkpoint.hpp>
#include <cachedattn/model/safetensors.hpp>
#include <cstring>

#include "../support.hpp"
#include "../tools/qkv_biases.hpp"

using namespace cachedattn;
namespace fs = std::filesystem;
namespace st = cachedattn::model::safetensors;

namespace {

/// The message of the E that `f` throws ("" and a failed check when it throws none).
template <class E, class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    FAIL_CHECK("no exception of the expected type");
    return {};
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// A file of the given header length field, header text and `data_bytes` zero bytes.
void raw_file(const fs::path& p, const std::string& header, std::size_t data_bytes,
              std::optional<std::uint64_t> length = std::nullopt) {
    const std::uint64_t n = length.value_or(header.size());
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    bytes += header + std::string(data_bytes, '\0');
    std::ofstream(p, std::ios::binary) << bytes;
}

/// The input_error a raw file with this header and data size gets from the reader.
std::string header_error(const fs::path& dir, const std::string& header, std::size_t data_bytes) {
    const fs::path p = dir / "bad.safetensors";
    raw_file(p, header, data_bytes);
    const auto msg = error_of<input_error>([&] { st::reader r(p); });
    CHECK(has(msg, p.string()));  // every message names the file
    return msg;
}

model::weights rounded(model::weights w, dtype t) {
    auto round_all = [t](std::vector<float>& v) {
        for (float& x : v) x = round_to(t, x);
    };
    round_all(w.embedding);
    round_all(w.final_norm);
    round_all(w.output);
    for (auto& l : w.layers)
        for (auto* v : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down, &l.bq,
                        &l.bk, &l.bv})
            round_all(*v);
    return w;
}

struct turn_out {
    std::vector<token_id> generated;
    std::vector<float> logits;
    std::int64_t reused = 0;
};

/// Two interleaved chats of a few turns through the paper's stack (KV kept across turns).
template <class B>
std::vector<turn_out> chat(B& b, const fs::path& cache) {
    stacks::paper::config c;
    const std::size_t per_token = b.geometry().kv_bytes_per_token();
    c.device().capacity_bytes = 64 * per_token;  // small: the second chat pushes the first down
    c.host().capacity_bytes = 64 * per_token;
    c.ssd() = {cache, 4096 * per_token};
    stacks::paper kv(c, b.geometry(), b.weights_id());
    engine eng(kv, b, {.record_logits = true});
    const std::vector<std::pair<std::uint64_t, std::vector<token_id>>> turns{
        {1, {5, 17, 42, 7, 99, 3}}, {2, {8, 8, 1, 300, 44}}, {1, {3, 3, 8}}, {2, {250, 11, 12}}, {1, {400, 2}}};
    std::vector<turn_out> out;
    for (const auto& [s, input] : turns) {
        const auto r = eng.run_turn(session_id{s}, input, 6);
        out.push_back({r.generated, r.first_logits, r.metrics.reused_tokens});
    }
    return out;
}

/// The same chats on both backends give bit-identical logits and tokens, and later turns reuse KV.
template <class A, class B>
void check_same_chats(A& a, B& b, const fs::path& dir) {
    const auto x = chat(a, dir / "cache-a");
    const auto y = chat(b, dir / "cache-b");
    REQUIRE(x.size() == y.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        CAPTURE(i);
        CHECK(x[i].generated == y[i].generated);
        CHECK(x[i].logits == y[i].logits);
        CHECK(x[i].reused == y[i].reused);
    }
    CHECK(x[2].reused > 0);  // the first chat's second turn reused its history
}

/// Reads every tensor of a single-file checkpoint, lets `edit` change the list, writes it back.
struct loaded_tensor {
    std::string name;
    std::vector<std::uint64_t> shape;
    std::vector<float> values;
};
template <class Edit>
void rewrite_weights(const fs::path& dir, Edit&& edit) {
    const fs::path file = dir / "model.safetensors";
    std::vector<loaded_tensor> all;
    {
        const st::reader r(file);
        for (const auto& t : r.contents().tensors) all.push_back({t.name, t.shape, r.read(t)});
    }
    edit(all);
    std::vector<st::tensor_to_write> out;
    for (const auto& t : all) out.push_back({t.name, dtype::f32, t.shape, t.values});
    st::write(file, out);
}

/// Replaces the first `from` in `file` by `to`.
void edit_file(const fs::path& file, const std::string& from, const std::string& to) {
    std::ifstream in(file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    std::ofstream(file, std::ios::trunc) << text;
}

model::model_config tiny() { return model::model_config::tiny(); }

}  // namespace

TEST_CASE("float16: every f16 and bf16 value survives float and back, and widens exactly") {
    for (std::uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<std::uint16_t>(i);
        const float f = f16_to_float(h);
        const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
        if (exp == 31 && man != 0) REQUIRE(std::isnan(f));
        else if (exp == 31) REQUIRE(std::isinf(f));
        else {
            const double v = exp == 0 ? std::ldexp(man, -24) : std::ldexp(1024 + man, exp - 25);
            REQUIRE(f == static_cast<float>((h & 0x8000) ? -v : v));
        }
        REQUIRE(float_to_f16(f) == h);  // NaN payloads too
        const float g = bf16_to_float(h);
        REQUIRE(float_to_bf16(g) == h);
    }
}

TEST_CASE("float16: narrowing rounds to nearest even, keeps subnormals, overflows to infinity") {
    CHECK(float_to_f16(65504.0f) == 0x7bff);
    CHECK(float_to_f16(65519.996f) == 0x7bff);
    CHECK(float_to_f16(65520.0f) == 0x7c00);  // the tie above the largest value goes to infinity
    CHECK(float_to_f16(-1e9f) == 0xfc00);
    CHECK(float_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and the least subnormal: even
    CHECK(float_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
    CHECK(float_to_f16(std::ldexp(1.5f, -24)) == 0x0002);   // 1.5 subnormal steps: tie to even 2
    CHECK(float_to_f16(std::ldexp(2.5f, -24)) == 0x0002);   // 2.5: tie to even 2
    CHECK(float_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // rounds up into the least normal
    CHECK(float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie: even (1.0)
    CHECK(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: even (1 + 2 ulp)
    CHECK(float_to_f16(-0.0f) == 0x8000);
    CHECK(std::isnan(f16_to_float(float_to_f16(std::bit_cast<float>(0x7f800001u)))));  // low payload: still NaN
    CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);
    CHECK(std::isnan(bf16_to_float(float_to_bf16(std::bit_cast<float>(0x7f800001u)))));
    CHECK(bf16_to_float(float_to_bf16(std::ldexp(1.0f, -130))) == std::ldexp(1.0f, -130));  // subnormal kept

    // Random floats: the result is a nearest f16, and of two nearest the even one.
    std::mt19937 rng(3);
    for (int i = 0; i < 200000; ++i) {
        const float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
        if (!std::isfinite(f) || std::fabs(f) >= 65520.0f) continue;
        const std::uint16_t h = float_to_f16(f);
        const double err = std::fabs(static_cast<double>(f16_to_float(h)) - f);
        for (int step : {-1, 1}) {
            const int nb = (h & 0x7fff) + step;
            if (nb < 0 || nb > 0x7bff) continue;
            const auto other = static_cast<std::uint16_t>((h & 0x8000) | nb);
            const double e2 = std::fabs(static_cast<double>(f16_to_float(other)) - f);
            CAPTURE(f);
            REQUIRE(err <= e2);
            if (err == e2) REQUIRE((h & 1) == 0);
        }
    }
}

TEST_CASE("safetensors: written tensors read back (F32 exact, F16/BF16 rounded), metadata kept") {
    test::temp_dir dir("safetensors");
    const std::vector<float> a{1.0f, -2.5f, 3.14159f, 1e-7f, 65519.0f, -0.0f};
    const std::vector<float> scalar{7.25f};
    const std::vector<float> none;
    for (dtype t : {dtype::f32, dtype::f16, dtype::bf16}) {
        CAPTURE(to_string(t));
        const std::vector<st::tensor_to_write> ts{
            {"a", t, {2, 3}, a}, {"empty", t, {0, 4}, none}, {"scalar", t, {}, scalar}};
        const fs::path p = dir.path() / "t.safetensors";
        st::write(p, ts, {{"format", "pt"}});
        const st::reader r(p);
        CHECK(r.contents().metadata.at("format") == "pt");
        REQUIRE(r.contents().tensors.size() == 3);
        const auto& info = r.at("a");
        CHECK(info.shape == std::vector<std::uint64_t>{2, 3});
        CHECK(info.type == t);
        const auto back = r.read(info);
        REQUIRE(back.size() == a.size());
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(std::bit_cast<std::uint32_t>(back[i]) == std::bit_cast<std::uint32_t>(round_to(t, a[i])));
        CHECK(r.read(r.at("empty")).empty());
        CHECK(r.read(r.at("scalar")) == std::vector<float>{round_to(t, 7.25f)});
        CHECK(has(error_of<input_error>([&] { (void)r.at("nope"); }), "no tensor 'nope'"));
    }
    CHECK(has(error_of<config_error>([&] {
                  const std::vector<st::tensor_to_write> bad{{"x", dtype::f32, {2, 2}, a}};
                  (void)st::encode(bad);
              }),
              "has 6 values but shape [2, 2] needs 4"));
}

TEST_CASE("safetensors: every malformed file is rejected, naming the file and the tensor") {
    test::temp_dir dir("safetensors-bad");
    const fs::path p = dir.path() / "bad.safetensors";
    SUBCASE("shorter than the 8-byte length") {
        std::ofstream(p, std::ios::binary) << "abcde";
        CHECK(has(error_of<input_error>([&] { st::reader r(p); }), "too short"));
    }
    SUBCASE("header length over 100 MB") {
        raw_file(p, "{}", 0, 200'000'000);
        CHECK(has(error_of<input_error>([&] { st::reader r(p); }), "exceeds the limit"));
    }
    SUBCASE("header length beyond the file") {
        raw_file(p, "{}", 10, 1000);
        CHECK(has(error_of<input_error>([&] { st::reader r(p); }), "beyond the end of the file"));
    }
    SUBCASE("missing file, directory") {
        CHECK(has(error_of<input_error>([&] { st::reader r(dir.path() / "none"); }), "cannot open"));
        CHECK(has(error_of<input_error>([&] { st::reader r(dir.path()); }), "not a regular file"));
    }
    SUBCASE("header not JSON, not an object, or a bad entry: one row per rule") {
        // {header, data bytes, what the message must say}; every message also names the file.
        struct row {
            std::string header;
            std::size_t data_bytes;
            std::string expect;
        };
        auto w = [](const std::string& fields) { return R"({"w": {)" + fields + "}}"; };
        const std::vector<row> rows{
            {"{not json", 0, "not valid JSON"},
            {"[1, 2]", 0, "must be a JSON object"},
            {R"({"w": 3})", 0, "tensor 'w': entry must be a JSON object"},
            {w(R"("shape": [1], "data_offsets": [0, 4])"), 4, "tensor 'w': missing field 'dtype'"},
            {w(R"("dtype": "F32", "data_offsets": [0, 4])"), 4, "tensor 'w': missing field 'shape'"},
            {w(R"("dtype": "F32", "shape": [1])"), 4, "tensor 'w': missing field 'data_offsets'"},
            {w(R"("dtype": 5, "shape": [1], "data_offsets": [0, 4])"), 4, "'dtype' must be a string"},
            {w(R"("dtype": "F32", "shape": "1", "data_offsets": [0, 4])"), 4, "'shape' must be an array"},
            {w(R"("dtype": "F32", "shape": [1.5], "data_offsets": [0, 4])"), 4, "non-negative integers"},
            {w(R"("dtype": "F32", "shape": [1], "data_offsets": [0])"), 4, "'data_offsets' must be two"},
            {w(R"("dtype": "F32", "shape": [1], "data_offsets": [0, -4])"), 4, "'data_offsets' must be two"},
            {w(R"("dtype": "Q4", "shape": [1], "data_offsets": [0, 1])"), 1, "tensor 'w': unsupported dtype 'Q4'"},
            {w(R"("dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 0])"), 0, "negative dimension -1"},
            {w(R"("dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0])"), 0,
             "more elements than 64 bits"},
            {w(R"("dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0])"), 0, "more bytes than 64 bits"},
            {w(R"("dtype": "F32", "shape": [1], "data_offsets": [8, 4])"), 8, "tensor 'w': data_offsets begin 8 is after end 4"},
            {w(R"("dtype": "F32", "shape": [2], "data_offsets": [0, 8])"), 4,
             "tensor 'w': data_offsets end 8 is beyond the data buffer (4 bytes)"},
            {w(R"("dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 4])"), 4,
             "tensor 'w': holds 4 bytes but shape [2, 2] of BF16 needs 8"},
            {R"({"__metadata__": {"x": 1}})", 0, "'__metadata__' value 'x' must be a string"},
            {R"({"__metadata__": [1]})", 0, "'__metadata__' must be an object"},
        };
        for (const auto& r : rows) {
            CAPTURE(r.header);
            const auto msg = header_error(dir.path(), r.header, r.data_bytes);
            CAPTURE(msg);
            CHECK(has(msg, r.expect));
        }
    }
    SUBCASE("a known dtype that does not convert to float lists but does not read") {
        raw_file(p, R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16);
        const st::reader r(p);
        CHECK(has(error_of<input_error>([&] { (void)r.read(r.at("ids")); }), "tensor 'ids' has dtype I64, which does not convert"));
    }
    SUBCASE("overlapping tensors, gaps, bytes no tensor covers") {
        const auto m = header_error(dir.path(),
                                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                    12);
        CHECK(has(m, "tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)"));
        CHECK(has(header_error(dir.path(),
                               R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                   "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                               12),
                  "tensor 'b' starts at byte 8 but the previous tensor ends at 4"));
        CHECK(has(header_error(dir.path(), R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8),
                  "the data buffer has 8 bytes but its tensors cover 4"));
    }
}

TEST_CASE("checkpoint: an F32 checkpoint computes exactly what the random model does, through the engine") {
    test::temp_dir dir("ckpt-f32");
    const auto cfg = tiny();
    const auto w = model::weights::random(cfg, 7);
    model::write_hf_checkpoint(dir.path() / "m", cfg, w);
    const auto ck = model::load_hf_checkpoint(dir.path() / "m");
    const auto& c = ck.config.model;
    CHECK(ck.config.architecture == "llama");
    CHECK_FALSE(ck.config.tied_embeddings);
    CHECK(ck.config.stored_type == dtype::f32);
    CHECK(std::tie(c.vocab, c.dim, c.layers, c.heads, c.kv_heads, c.head_dim, c.ffn_dim, c.context_window) ==
          std::tie(cfg.vocab, cfg.dim, cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn_dim, cfg.context_window));
    CHECK(c.rope_theta == cfg.rope_theta);
    CHECK(c.norm_eps == cfg.norm_eps);
    CHECK(c.geometry() == cfg.geometry());

    auto loaded = backend::cpu_backend::from_checkpoint(dir.path() / "m");
    backend::cpu_backend random(cfg, 7);
    check_same_chats(loaded, random, dir.path());
    // Its own identity, stable across loads; never the random model's.
    CHECK(loaded.weights_id() == ck.identity);
    CHECK(loaded.weights_id() != random.weights_id());
    CHECK(model::load_hf_checkpoint(dir.path() / "m").identity == ck.identity);
    // A caller's cap on the context window.
    CHECK(model::load_hf_checkpoint(dir.path() / "m", {.max_context = 64}).config.model.context_window == 64);
}

TEST_CASE("checkpoint: F16 and BF16 in two shards compute what the random model with rounded weights does") {
    test::temp_dir dir("ckpt-16");
    const auto cfg = tiny();
    const auto w = model::weights::random(cfg, 9);
    for (dtype t : {dtype::f16, dtype::bf16}) {
        CAPTURE(to_string(t));
        const fs::path m = dir.path() / to_string(t);
        model::write_hf_checkpoint(m, cfg, w, {.type = t, .shards = 2});
        CHECK(fs::exists(m / "model.safetensors.index.json"));
        CHECK(fs::exists(m / "model-00002-of-00002.safetensors"));
        CHECK_FALSE(fs::exists(m / "model.safetensors"));
        const auto ck = model::load_hf_checkpoint(m);
        CHECK(ck.config.stored_type == t);
        backend::cpu_backend loaded(ck.config.model, ck.weights, ck.identity);
        backend::cpu_backend reference(cfg, rounded(w, t), 1);
        check_same_chats(loaded, reference, m);
    }
    // Same values, other layout: the same identity. Other values: another.
    model::write_hf_checkpoint(dir.path() / "one", cfg, w);
    model::write_hf_checkpoint(dir.path() / "two", cfg, w, {.shards = 3});
    model::write_hf_checkpoint(dir.path() / "other", cfg, model::weights::random(cfg, 10));
    const auto id = model::load_hf_checkpoint(dir.path() / "one").identity;
    CHECK(model::load_hf_checkpoint(dir.path() / "two").identity == id);
    CHECK(model::load_hf_checkpoint(dir.path() / "other").identity != id);
    CHECK(model::load_hf_checkpoint(dir.path() / "f16").identity != id);
}

TEST_CASE("checkpoint: tied embeddings store no lm_head and use the embedding") {
    test::temp_dir dir("ckpt-tied");
    const auto cfg = tiny();
    auto w = model::weights::random(cfg, 4);
    w.output = w.embedding;
    model::write_hf_checkpoint(dir.path() / "m", cfg, w, {.tie_embeddings = true});
    CHECK(st::reader(dir.path() / "m" / "model.safetensors").contents().find("lm_head.weight") == nullptr);
    const auto ck = model::load_hf_checkpoint(dir.path() / "m");
    CHECK(ck.config.tied_embeddings);
    CHECK(ck.weights.output == w.embedding);
    backend::cpu_backend loaded(ck.config.model, ck.weights, ck.identity);
    backend::cpu_backend reference(cfg, w, 1);
    check_same_chats(loaded, reference, dir.path());
}

TEST_CASE("checkpoint: grouped-query attention with 4 query heads per KV head, Mistral-style") {
    test::temp_dir dir("ckpt-gqa");
    auto cfg = tiny();
    cfg.heads = 8;
    cfg.kv_heads = 2;
    cfg.head_dim = 16;
    const auto w = model::weights::random(cfg, 5);
    model::write_hf_checkpoint(dir.path() / "m", cfg, w, {.architecture = "mistral"});
    const auto ck = model::load_hf_checkpoint(dir.path() / "m");
    CHECK(ck.config.architecture == "mistral");
    CHECK(ck.config.model.geometry().group() == 4);
    backend::cpu_backend loaded(ck.config.model, ck.weights, ck.identity);
    backend::cpu_backend reference(cfg, 5);
    check_same_chats(loaded, reference, dir.path());
}

TEST_CASE("checkpoint: Qwen2 q/k/v biases load, are applied, and change the logits") {
    test::temp_dir dir("ckpt-qwen2");
    const auto cfg = tiny();
    auto w = model::weights::random(cfg, 6);
    checkpoint_content::add_qkv_biases(w, cfg, 6);
    model::write_hf_checkpoint(dir.path() / "m", cfg, w, {.architecture = "qwen2", .type = dtype::bf16});
    const auto ck = model::load_hf_checkpoint(dir.path() / "m");
    CHECK(ck.config.qkv_bias);
    backend::cpu_backend loaded(ck.config.model, ck.weights, ck.identity);
    backend::cpu_backend reference(cfg, rounded(w, dtype::bf16), 1);
    check_same_chats(loaded, reference, dir.path());

    backend::cpu_backend no_bias(cfg, rounded(model::weights::random(cfg, 6), dtype::bf16), 2);
    const std::vector<token_id> tokens{1, 2, 3, 4};
    CHECK(test::rel_error(test::reference_logits(loaded, tokens), test::reference_logits(no_bias, tokens)) > 1e-2);
}

TEST_CASE("checkpoint: a value bias with zero value weights gives logits computed by hand") {
    // With wv = 0 every value vector is bv, so attention returns bv whatever q and k (and their
    // biases) are; with a zero MLP the last hidden state is emb[t] + wo . bv, known in closed form.
    auto cfg = tiny();
    cfg.layers = 1;
    auto w = model::weights::random(cfg, 12);
    checkpoint_content::add_qkv_biases(w, cfg, 12);
    auto& l = w.layers[0];
    std::fill(l.wv.begin(), l.wv.end(), 0.0f);
    for (auto* v : {&l.w_gate, &l.w_up, &l.w_down}) std::fill(v->begin(), v->end(), 0.0f);
    backend::cpu_backend b(cfg, w, 1);
    const std::vector<token_id> tokens{9, 33, 7};

    const auto D = static_cast<std::size_t>(cfg.dim), hd = static_cast<std::size_t>(cfg.head_dim);
    const auto Q = static_cast<std::size_t>(cfg.heads) * hd;
    const std::size_t group = static_cast<std::size_t>(cfg.heads / cfg.kv_heads);
    std::vector<double> att(Q), x(D);
    for (std::size_t h = 0; h < static_cast<std::size_t>(cfg.heads); ++h)
        for (std::size_t i = 0; i < hd; ++i) att[h * hd + i] = l.bv[(h / group) * hd + i];
    double ms = 0;
    for (std::size_t o = 0; o < D; ++o) {
        double acc = w.embedding[static_cast<std::size_t>(tokens.back()) * D + o];
        for (std::size_t i = 0; i < Q; ++i) acc += static_cast<double>(l.wo[o * Q + i]) * att[i];
        x[o] = acc;
        ms += acc * acc;
    }
    const double r = 1.0 / std::sqrt(ms / static_cast<double>(D) + cfg.norm_eps);
    std::vector<float> expect(static_cast<std::size_t>(cfg.vocab));
    for (std::size_t v = 0; v < expect.size(); ++v) {
        double acc = 0;
        for (std::size_t o = 0; o < D; ++o) acc += static_cast<double>(w.output[v * D + o]) * x[o] * r * w.final_norm[o];
        expect[v] = static_cast<float>(acc);
    }
    CHECK(test::rel_error(test::reference_logits(b, tokens), expect) < 1e-5);
}

TEST_CASE("checkpoint: unsupported models and bad config.json are rejected, naming the field") {
    test::temp_dir dir("ckpt-config");
    const auto cfg = tiny();
    const auto w = model::weights::random(cfg, 3);
    const fs::path m = dir.path() / "m";
    model::write_hf_checkpoint(m, cfg, w);
    auto config_error_of = [&](const std::string& from, const std::string& to, model::hf_options o = {}) {
        model::write_hf_checkpoint(m, cfg, w);
        edit_file(m / "config.json", from, to);
        const auto msg = error_of<config_error>([&] { (void)model::load_hf_checkpoint(m, o); });
        CHECK(has(msg, (m / "config.json").string()));
        return msg;
    };
    CHECK(has(config_error_of("\"LlamaForCausalLM\"", "\"GPT2LMHeadModel\""), "unsupported architecture 'GPT2LMHeadModel'"));
    CHECK(has(config_error_of("\"rope_scaling\": null", R"("rope_scaling": {"type": "linear", "factor": 2.0})"),
              "'rope_scaling' is a JSON object"));
    CHECK(has(config_error_of("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""), "'hidden_act' is 'gelu'"));
    CHECK(has(config_error_of("\"hidden_act\": \"silu\"", "\"attention_bias\": true"), "'attention_bias' is true"));
    CHECK(has(config_error_of("\"hidden_size\": 128", "\"hidden_size\": \"128\""), "'hidden_size' must be an integer"));
    CHECK(has(config_error_of("\"hidden_size\": 128", "\"hidden_size\": -128"), "'hidden_size' must be in [1,"));
    CHECK(has(config_error_of("\"hidden_size\": 128,", ""), "'hidden_size' is missing"));
    CHECK(has(config_error_of("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), "divisible by kv_heads"));
    CHECK(has(config_error_of("\"model_type\": \"llama\"", "\"model_type\": \"qwen2\""), "'model_type' is 'qwen2'"));
    // Mistral's sliding window: rejected while shorter than the context, fine once capped to it.
    const std::string window = "\"hidden_act\": \"silu\", \"sliding_window\": 64";
    CHECK(has(config_error_of("\"hidden_act\": \"silu\"", window), "'sliding_window' 64 is shorter than the context window 256"));
    CHECK(model::load_hf_checkpoint(m, {.max_context = 64}).config.model.context_window == 64);
    // Qwen2's window counts only when use_sliding_window is on.
    model::write_hf_checkpoint(m, cfg, w);
    edit_file(m / "config.json", "\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"");
    edit_file(m / "config.json", "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\"");
    edit_file(m / "config.json", "\"hidden_act\": \"silu\"", window + ", \"use_sliding_window\": false");
    CHECK(model::read_hf_config(m / "config.json").model.context_window == 256);
    edit_file(m / "config.json", "\"use_sliding_window\": false", "\"use_sliding_window\": true");
    CHECK(has(error_of<config_error>([&] { (void)model::read_hf_config(m / "config.json"); }), "'sliding_window' 64"));

    model::write_hf_checkpoint(m, cfg, w);
    std::ofstream(m / "config.json", std::ios::trunc) << "{\"architectures\": [";
    CHECK(has(error_of<input_error>([&] { (void)model::load_hf_checkpoint(m); }), "config.json is not valid JSON"));
    fs::remove(m / "config.json");
    CHECK(has(error_of<input_error>([&] { (void)model::load_hf_checkpoint(m); }), "config.json is missing"));
    CHECK(has(error_of<input_error>([&] { (void)model::load_hf_checkpoint(dir.path() / "nowhere"); }), "not a checkpoint directory"));
}

TEST_CASE("checkpoint: missing, misshapen and unexpected tensors and bad shards are rejected, naming the tensor") {
    test::temp_dir dir("ckpt-tensors");
    const auto cfg = tiny();
    const auto w = model::weights::random(cfg, 3);
    const fs::path m = dir.path() / "m";
    auto load_error = [&] { return error_of<input_error>([&] { (void)model::load_hf_checkpoint(m); }); };
    SUBCASE("missing tensor") {
        model::write_hf_checkpoint(m, cfg, w);
        rewrite_weights(m, [](auto& all) {
            std::erase_if(all, [](const auto& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
        });
        CHECK(has(load_error(), "missing tensor 'model.layers.1.mlp.up_proj.weight'"));
    }
    SUBCASE("wrong shape: transposed k_proj") {
        model::write_hf_checkpoint(m, cfg, w);
        rewrite_weights(m, [](auto& all) {
            for (auto& t : all)
                if (t.name == "model.layers.2.self_attn.k_proj.weight") std::swap(t.shape[0], t.shape[1]);
        });
        const auto msg = load_error();
        CHECK(has(msg, "tensor 'model.layers.2.self_attn.k_proj.weight' has shape [128, 64], expected [64, 128]"));
        CHECK(has(msg, "model.safetensors"));
    }
    SUBCASE("an o_proj bias this library would ignore") {
        model::write_hf_checkpoint(m, cfg, w);
        rewrite_weights(m, [](auto& all) { all.push_back({"model.layers.0.self_attn.o_proj.bias", {128}, std::vector<float>(128)}); });
        CHECK(has(load_error(), "unexpected tensor 'model.layers.0.self_attn.o_proj.bias'"));
    }
    SUBCASE("qwen2 without its biases") {
        model::write_hf_checkpoint(m, cfg, w);
        edit_file(m / "config.json", "\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\"");
        edit_file(m / "config.json", "\"model_type\": \"llama\"", "\"model_type\": \"qwen2\"");
        CHECK(has(load_error(), "missing tensor 'model.layers.0.self_attn.q_proj.bias'"));
    }
    SUBCASE("a damaged shard") {
        model::write_hf_checkpoint(m, cfg, w);
        fs::resize_file(m / "model.safetensors", fs::file_size(m / "model.safetensors") - 4);
        const auto msg = load_error();
        CHECK(has(msg, "model.safetensors"));
        CHECK(has(msg, "lm_head.weight"));  // the last tensor now ends beyond the data buffer
    }
    SUBCASE("no weights at all") {
        model::write_hf_checkpoint(m, cfg, w);
        fs::remove(m / "model.safetensors");
        CHECK(has(load_error(), "no model.safetensors or model.safetensors.index.json"));
    }
    SUBCASE("shard paths outside the directory, missing shards, bad index") {
        model::write_hf_checkpoint(m, cfg, w, {.shards = 2});
        const fs::path index = m / "model.safetensors.index.json";
        auto with_index = [&](const std::string& text) {
            std::ofstream(index, std::ios::trunc) << text;
            return load_error();
        };
        CHECK(has(with_index(R"({"weight_map": {"model.norm.weight": "../model-00001-of-00002.safetensors"}})"),
                  "tensor 'model.norm.weight' names shard '../model-00001-of-00002.safetensors', which is not a relative path inside"));
        CHECK(has(with_index(R"({"weight_map": {"model.norm.weight": "/etc/passwd"}})"), "not a relative path inside"));
        CHECK(has(with_index(R"({"weight_map": {"model.norm.weight": "gone.safetensors"}})"), "gone.safetensors: cannot open"));
        CHECK(has(with_index(R"({"weight_map": {"model.norm.weight": 3}})"), "weight_map entry 'model.norm.weight' must be a file name"));
        CHECK(has(with_index(R"({"metadata": {}})"), "expected an object with a 'weight_map' object"));
        model::write_hf_checkpoint(m, cfg, w, {.shards = 2});  // the index points at the wrong shard
        edit_file(index, R"("model.norm.weight": "model-00002-of-00002.safetensors")",
                  R"("model.norm.weight": "model-00001-of-00002.safetensors")");
        const auto msg = load_error();
        CHECK(has(msg, "model-00001-of-00002.safetensors: no tensor 'model.norm.weight'"));
    }
}
