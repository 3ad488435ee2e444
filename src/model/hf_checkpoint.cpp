#include "cachedattn/model/hf_checkpoint.hpp"

#include <xxhash.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "json_brief.hpp"
#include <set>
#include <vector>

#include "cachedattn/core/error.hpp"
#include "cachedattn/model/safetensors.hpp"

namespace cachedattn::model {
namespace {
using detail::brief;

namespace fs = std::filesystem;
using json = nlohmann::json;

/// Largest RoPE table built from max_position_embeddings alone (2^21 positions); longer
/// contexts need an explicit hf_options::max_context.
constexpr int max_auto_context = 1 << 21;

struct architecture_name {
    const char* hf_class;
    const char* model_type;
};
constexpr architecture_name architectures[] = {
    {"LlamaForCausalLM", "llama"}, {"MistralForCausalLM", "mistral"}, {"Qwen2ForCausalLM", "qwen2"}};

const architecture_name* find_architecture(const std::string& s) {
    for (const auto& a : architectures)
        if (s == a.hf_class || s == a.model_type) return &a;
    return nullptr;
}

/// One HF tensor: its name, the shape the config implies, and where its values live.
template <class Vec>
struct slot {
    std::string name;
    std::vector<std::uint64_t> shape;
    Vec* data;
};

/// Every tensor of a LLaMA-family checkpoint in file order, bound to `w` (whose layers must be
/// sized). The loader and the writer share this table, so the names exist once.
template <class W>
auto tensor_slots(const model_config& c, bool qkv_bias, bool lm_head, W& w) {
    using vec = std::remove_reference_t<decltype((w.embedding))>;  // const for a const W
    const auto d = static_cast<std::uint64_t>(c.dim), f = static_cast<std::uint64_t>(c.ffn_dim);
    const auto q = static_cast<std::uint64_t>(c.heads) * static_cast<std::uint64_t>(c.head_dim);
    const auto kv = static_cast<std::uint64_t>(c.kv_heads) * static_cast<std::uint64_t>(c.head_dim);
    const auto v = static_cast<std::uint64_t>(c.vocab);
    std::vector<slot<vec>> s;
    s.push_back({"model.embed_tokens.weight", {v, d}, &w.embedding});
    for (std::size_t i = 0; i < w.layers.size(); ++i) {
        auto& l = w.layers[i];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        s.push_back({p + "input_layernorm.weight", {d}, &l.attn_norm});
        s.push_back({p + "self_attn.q_proj.weight", {q, d}, &l.wq});
        s.push_back({p + "self_attn.k_proj.weight", {kv, d}, &l.wk});
        s.push_back({p + "self_attn.v_proj.weight", {kv, d}, &l.wv});
        if (qkv_bias) {
            s.push_back({p + "self_attn.q_proj.bias", {q}, &l.bq});
            s.push_back({p + "self_attn.k_proj.bias", {kv}, &l.bk});
            s.push_back({p + "self_attn.v_proj.bias", {kv}, &l.bv});
        }
        s.push_back({p + "self_attn.o_proj.weight", {d, q}, &l.wo});
        s.push_back({p + "post_attention_layernorm.weight", {d}, &l.ffn_norm});
        s.push_back({p + "mlp.gate_proj.weight", {f, d}, &l.w_gate});
        s.push_back({p + "mlp.up_proj.weight", {f, d}, &l.w_up});
        s.push_back({p + "mlp.down_proj.weight", {d, f}, &l.w_down});
    }
    s.push_back({"model.norm.weight", {d}, &w.final_norm});
    if (lm_head) s.push_back({"lm_head.weight", {v, d}, &w.output});
    return s;
}

/// Typed access to config.json's fields; every error names the file and the field.
class config_fields {
public:
    config_fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

    [[noreturn]] void fail(const std::string& field, const std::string& what) const {
        throw config_error(where_ + ": '" + field + "' " + what);
    }
    bool has(const char* f) const { return j_.contains(f) && !j_.at(f).is_null(); }

    int positive_int(const char* f, std::optional<int> fallback = std::nullopt) const {
        if (!has(f)) {
            if (fallback) return *fallback;
            fail(f, "is missing");
        }
        const json& v = j_.at(f);
        if (!v.is_number_integer()) fail(f, "must be an integer, got " + brief(v));
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() == 0 || v.get<std::uint64_t>() > INT_MAX)
            fail(f, "must be in [1, " + std::to_string(INT_MAX) + "], got " + brief(v));
        return static_cast<int>(v.get<std::uint64_t>());
    }
    float positive_float(const char* f, float fallback) const {
        if (!has(f)) return fallback;
        const json& v = j_.at(f);
        if (!v.is_number()) fail(f, "must be a number, got " + brief(v));
        const auto x = static_cast<float>(v.get<double>());
        if (!(x > 0.0f) || !std::isfinite(x)) fail(f, "must be a positive finite number, got " + brief(v));
        return x;
    }
    bool boolean(const char* f, bool fallback) const {
        if (!has(f)) return fallback;
        if (!j_.at(f).is_boolean()) fail(f, "must be true or false, got " + brief(j_.at(f)));
        return j_.at(f).get<bool>();
    }
    std::optional<std::string> string(const char* f) const {
        if (!has(f)) return std::nullopt;
        if (!j_.at(f).is_string()) fail(f, "must be a string, got " + brief(j_.at(f)));
        return j_.at(f).get<std::string>();
    }
    const json& at(const char* f) const { return j_.at(f); }

private:
    const json& j_;
    std::string where_;
};

json read_json(const fs::path& file, const char* what) {
    const std::string where = file.string();
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw input_error(where + ": " + what + " is missing or not a regular file");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw input_error(where + ": cannot open " + what);
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw input_error(where + ": " + what + " is not valid JSON (" + e.what() + ")");
    }
}

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::trunc);
    if (!(out << text) || !out.flush()) throw io_error("write_hf_checkpoint: cannot write " + file.string());
}

const architecture_name& parse_architecture(const config_fields& f, const json& j, const std::string& where) {
    const architecture_name* arch = nullptr;
    std::string named;
    if (j.contains("architectures")) {
        const json& a = j.at("architectures");
        if (!a.is_array() || a.empty() || !a[0].is_string())
            f.fail("architectures", "must be a non-empty array of strings, got " + brief(a));
        named = a[0].get<std::string>();
        arch = find_architecture(named);
    } else if (const auto t = f.string("model_type")) {
        named = *t;
        arch = find_architecture(named);
    } else {
        throw config_error(where + ": neither 'architectures' nor 'model_type' says what model this is");
    }
    if (!arch)
        throw config_error(where + ": unsupported architecture '" + named +
                           "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
    if (const auto t = f.string("model_type"); t && find_architecture(*t) != arch)
        f.fail("model_type", "is '" + *t + "' but architectures names " + arch->hf_class);
    return *arch;
}

/// Where the tensors are: one file, or the shards an index names. Each shard is opened (and its
/// header validated) once.
class tensor_source {
public:
    explicit tensor_source(const fs::path& dir) {
        std::error_code ec;
        if (fs::exists(dir / "model.safetensors", ec)) {
            shards_.emplace_back(dir / "model.safetensors");
            for (const auto& t : shards_[0].contents().tensors) where_[t.name] = 0;
            return;
        }
        const fs::path index = dir / "model.safetensors.index.json";
        if (!fs::exists(index, ec))
            throw input_error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
        const json j = read_json(index, "the shard index");
        if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
            throw input_error(index.string() + ": expected an object with a 'weight_map' object");
        std::map<std::string, std::size_t> shard_no;
        for (const auto& [name, file] : j.at("weight_map").items()) {
            if (!file.is_string())
                throw input_error(index.string() + ": weight_map entry '" + name + "' must be a file name, got " +
                                  brief(file));
            const fs::path rel = file.get<std::string>();
            check_inside(rel, index, name);
            auto [it, added] = shard_no.try_emplace(rel.string(), shards_.size());
            if (added) shards_.emplace_back(dir / rel);
            where_[name] = it->second;
        }
    }

    /// Every tensor name and the file it is in.
    const std::map<std::string, std::size_t>& names() const { return where_; }
    const fs::path& file_of(std::size_t shard) const { return shards_[shard].path(); }

    const safetensors::tensor_info& find(const std::string& name, const fs::path& dir) const {
        const auto it = where_.find(name);
        if (it == where_.end()) throw input_error(dir.string() + ": missing tensor '" + name + "'");
        return shards_[it->second].at(name);  // names the shard when the index lies
    }
    std::vector<float> read(const std::string& name, const safetensors::tensor_info& t) const {
        return shards_[where_.at(name)].read(t);
    }

private:
    /// A shard name must stay inside the checkpoint directory. Checked on the name, not on
    /// canonical paths: the Hugging Face cache links snapshot files to blobs elsewhere.
    static void check_inside(const fs::path& rel, const fs::path& index, const std::string& tensor) {
        bool ok = !rel.empty() && rel.is_relative() && !rel.has_root_name() && !rel.has_root_directory();
        for (const auto& part : rel)
            if (part == ".." || part == ".") ok = false;
        if (!ok)
            throw input_error(index.string() + ": tensor '" + tensor + "' names shard '" + rel.string() +
                              "', which is not a relative path inside the checkpoint directory");
    }

    std::vector<safetensors::reader> shards_;
    std::map<std::string, std::size_t> where_;
};

}  // namespace

hf_config read_hf_config(const fs::path& config_json, const hf_options& o) {
    const std::string where = config_json.string();
    const json j = read_json(config_json, "config.json");
    if (!j.is_object()) throw config_error(where + ": expected a JSON object");
    const config_fields f(j, where);
    hf_config h;
    const architecture_name& arch = parse_architecture(f, j, where);
    h.architecture = arch.model_type;
    h.qkv_bias = h.architecture == "qwen2";  // Qwen2's q/k/v projections always carry biases

    if (const auto act = f.string("hidden_act"); act && *act != "silu")
        f.fail("hidden_act", "is '" + *act + "'; only SiLU (SwiGLU MLP) is supported");
    if (f.has("rope_scaling"))
        f.fail("rope_scaling", "is " + brief(f.at("rope_scaling")) + "; only plain RoPE (rope_scaling null) is supported");
    if (f.boolean("attention_bias", false) && !h.qkv_bias)
        f.fail("attention_bias", "is true; only q/k/v biases (Qwen2) are supported, not o_proj's");
    if (f.boolean("mlp_bias", false)) f.fail("mlp_bias", "is true; MLP biases are not supported");

    model_config& c = h.model;
    c.name = config_json.parent_path().filename().string();
    if (c.name.empty()) c.name = "hf-" + h.architecture;
    c.vocab = f.positive_int("vocab_size");
    c.dim = f.positive_int("hidden_size");
    c.layers = f.positive_int("num_hidden_layers");
    c.heads = f.positive_int("num_attention_heads");
    c.kv_heads = f.positive_int("num_key_value_heads", c.heads);
    c.ffn_dim = f.positive_int("intermediate_size");
    if (!f.has("head_dim") && c.dim % c.heads != 0)
        f.fail("hidden_size", std::to_string(c.dim) + " is not divisible by num_attention_heads " +
                                  std::to_string(c.heads) + " (and no head_dim is given)");
    c.head_dim = f.positive_int("head_dim", c.dim / c.heads);
    c.rope_theta = f.positive_float("rope_theta", 10000.0f);
    c.norm_eps = f.positive_float("rms_norm_eps", 1e-6f);  // HF's default for all three
    const int positions = f.positive_int("max_position_embeddings");
    c.context_window = o.max_context > 0 ? std::min(positions, o.max_context) : positions;
    if (c.context_window > max_auto_context)
        f.fail("max_position_embeddings", std::to_string(positions) + " is more positions than the RoPE table is built "
                                          "for without a cap (" + std::to_string(max_auto_context) +
                                          "): pass a max_context (--max-context)");
    c.block_tokens = o.block_tokens;
    c.type = dtype::f32;
    h.tied_embeddings = f.boolean("tie_word_embeddings", false);

    // Sliding-window attention is only a problem when a window shorter than the context would
    // mask something: Mistral v0.1 says 4096 with a 32K context; Qwen2 only when switched on.
    const bool window_on = h.architecture == "qwen2" ? f.boolean("use_sliding_window", false) : true;
    if (window_on && f.has("sliding_window")) {
        const int window = f.positive_int("sliding_window");
        if (window < c.context_window)
            f.fail("sliding_window", std::to_string(window) + " is shorter than the context window " +
                                         std::to_string(c.context_window) +
                                         ": sliding-window attention is not supported (cap the context to at most "
                                         "the window with max_context)");
    }
    // Informational (the tensors' own dtypes are what is read); newer configs say "dtype".
    for (const char* key : {"torch_dtype", "dtype"}) {
        if (!f.has(key) || !f.at(key).is_string()) continue;
        const auto t = f.at(key).get<std::string>();
        if (t == "float32") h.stored_type = dtype::f32;
        if (t == "float16") h.stored_type = dtype::f16;
        if (t == "bfloat16") h.stored_type = dtype::bf16;
    }
    try {
        c.validate();
    } catch (const config_error& e) {
        throw config_error(where + ": " + e.what());
    }
    return h;
}

checkpoint load_hf_checkpoint(const fs::path& dir, const hf_options& o) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw input_error(dir.string() + ": not a checkpoint directory (missing or not a directory)");
    checkpoint ck;
    ck.config = read_hf_config(dir / "config.json", o);
    const hf_config& h = ck.config;
    const tensor_source src(dir);

    // Every layer has tensors: a layer count the files do not back is refused before anything
    // is sized by it (a 200-byte config could otherwise ask for billions of layers).
    const std::string last_layer = "model.layers." + std::to_string(h.model.layers - 1) + ".input_layernorm.weight";
    if (!src.names().contains(last_layer))
        throw input_error(dir.string() + ": num_hidden_layers is " + std::to_string(h.model.layers) +
                          " but the checkpoint has no tensor '" + last_layer + "'");
    model::weights& w = ck.weights;
    w.layers.resize(static_cast<std::size_t>(h.model.layers));
    const auto slots = tensor_slots(h.model, h.qkv_bias, !h.tied_embeddings, w);
    std::set<std::string> expected;
    for (const auto& s : slots) expected.insert(s.name);
    for (const auto& [name, shard] : src.names()) {
        // Old conversions store RoPE's inverse frequencies (recomputed from rope_theta here);
        // a tied checkpoint may still carry its lm_head copy. Anything else would be ignored
        // weights, so it is an error.
        const bool harmless = name.ends_with(".rotary_emb.inv_freq") || (h.tied_embeddings && name == "lm_head.weight");
        if (!expected.contains(name) && !harmless)
            throw input_error(src.file_of(shard).string() + ": unexpected tensor '" + name + "' for a " +
                              h.architecture + " model with this config.json");
    }
    XXH3_state_t* state = XXH3_createState();
    if (!state) throw std::bad_alloc();
    XXH3_64bits_reset(state);
    try {
        for (const auto& s : slots) {
            const auto& t = src.find(s.name, dir);
            if (t.shape != s.shape)
                throw input_error(src.file_of(src.names().at(s.name)).string() + ": tensor '" + s.name + "' has shape " +
                                  safetensors::shape_string(t.shape) + ", expected " +
                                  safetensors::shape_string(s.shape) + " from config.json");
            *s.data = src.read(s.name, t);
            XXH3_64bits_update(state, s.data->data(), s.data->size() * sizeof(float));
        }
    } catch (...) {
        XXH3_freeState(state);
        throw;
    }
    const std::uint64_t hash = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    if (h.tied_embeddings) w.output = w.embedding;
    w.seed = hash;
    ck.identity = weights_identity(h.model, hash);
    return ck;
}

void write_hf_checkpoint(const fs::path& dir, const model_config& c, const model::weights& w, const hf_write_options& o) {
    w.check_shapes(c);
    const architecture_name* arch = find_architecture(o.architecture);
    if (!arch) throw config_error("write_hf_checkpoint: unknown architecture '" + o.architecture + "'");
    const bool bias = !w.layers.empty() && !w.layers[0].bq.empty();
    if (bias != (std::string(arch->model_type) == "qwen2"))
        throw config_error("write_hf_checkpoint: q/k/v biases are present exactly in qwen2 checkpoints");
    if (o.tie_embeddings && w.output != w.embedding)
        throw config_error("write_hf_checkpoint: tie_embeddings needs output == embedding");
    if (o.shards < 1) throw config_error("write_hf_checkpoint: shards must be >= 1");
    fs::create_directories(dir);

    const char* torch_dtype = o.type == dtype::f32 ? "float32" : o.type == dtype::f16 ? "float16" : "bfloat16";
    const json config = {
        {"architectures", {arch->hf_class}}, {"model_type", arch->model_type},
        {"vocab_size", c.vocab}, {"hidden_size", c.dim}, {"num_hidden_layers", c.layers},
        {"num_attention_heads", c.heads}, {"num_key_value_heads", c.kv_heads}, {"head_dim", c.head_dim},
        {"intermediate_size", c.ffn_dim}, {"rope_theta", c.rope_theta}, {"rms_norm_eps", c.norm_eps},
        {"max_position_embeddings", c.context_window}, {"tie_word_embeddings", o.tie_embeddings},
        {"hidden_act", "silu"}, {"rope_scaling", nullptr}, {"torch_dtype", torch_dtype}};
    write_text(dir / "config.json", config.dump(2) + "\n");

    const auto slots = tensor_slots(c, bias, !o.tie_embeddings, w);
    std::vector<safetensors::tensor_to_write> all;
    for (const auto& s : slots) all.push_back({s.name, o.type, s.shape, *s.data});
    const std::map<std::string, std::string> meta{{"format", "pt"}};
    if (o.shards == 1) {
        safetensors::write(dir / "model.safetensors", all, meta);
        return;
    }
    json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
    const std::size_t per = (all.size() + static_cast<std::size_t>(o.shards) - 1) / static_cast<std::size_t>(o.shards);
    for (int i = 0; i < o.shards; ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i + 1, o.shards);
        const std::size_t begin = std::min(all.size(), static_cast<std::size_t>(i) * per);
        const std::size_t end = std::min(all.size(), begin + per);
        const std::span<const safetensors::tensor_to_write> part(all.data() + begin, end - begin);
        safetensors::write(dir / name, part, meta);
        for (const auto& t : part) index["weight_map"][t.name] = name;
    }
    write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace cachedattn::model
