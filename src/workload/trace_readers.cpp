// ShareGPT JSON (nlohmann SAX, so 600 MB files stream and every error has a line) and BurstGPT
// CSV readers. Kept out of the headers: nlohmann/json costs seconds per translation unit.
#include "cachedattn/workload/trace_readers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "cachedattn/workload/sharegpt_like.hpp"

namespace cachedattn::workload {
namespace {

/// A trace must be a regular file: a directory opens as a stream on Linux and reads as empty.
void require_regular_file(const std::filesystem::path& file) {
    std::error_code ec;
    const auto st = std::filesystem::status(file, ec);
    if (ec || !std::filesystem::exists(st)) throw trace_error(file, 0, "", "cannot open the file (no such file)");
    if (!std::filesystem::is_regular_file(st)) throw trace_error(file, 0, "", "not a regular file");
}

std::string read_all(const std::filesystem::path& file) {
    require_regular_file(file);
    std::ifstream in(file, std::ios::binary);
    if (!in) throw trace_error(file, 0, "", "cannot open the file");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw trace_error(file, 0, "", "read failed");
    return s;
}

// ------------------------------------------------------------------------------------ ShareGPT
/// A char iterator that counts the newlines it has moved past: the SAX callbacks read the
/// line of the token the parser just finished.
struct line_counting_iterator {
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;
    const char* p = nullptr;
    std::size_t* line = nullptr;
    reference operator*() const { return *p; }
    line_counting_iterator& operator++() {
        if (*p == '\n') ++*line;
        ++p;
        return *this;
    }
    line_counting_iterator operator++(int) {
        auto t = *this;
        ++*this;
        return t;
    }
    bool operator==(const line_counting_iterator& o) const { return p == o.p; }
    bool operator!=(const line_counting_iterator& o) const { return p != o.p; }
};

enum class role { user, model };

std::optional<role> role_of(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (s == "human" || s == "user" || s == "system") return role::user;
    if (s == "gpt" || s == "chatgpt" || s == "bard" || s == "bing" || s == "assistant" || s == "model") return role::model;
    return std::nullopt;
}

std::size_t code_points(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

using json = nlohmann::json;

class sharegpt_sax : public nlohmann::json_sax<json> {
public:
    sharegpt_sax(const std::filesystem::path& file, const std::size_t& line, const sharegpt_options& opt, trace& out)
        : file_(file), line_(line), opt_(opt), out_(out), rng_(opt.seed) {}

    bool null() override { return scalar("null"); }
    bool boolean(bool) override { return scalar("a boolean"); }
    bool number_integer(number_integer_t v) override { return number(static_cast<double>(v), true); }
    bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v), true); }
    bool number_float(number_float_t v, const string_t&) override { return number(v, false); }
    bool binary(binary_t&) override { return scalar("binary"); }
    bool string(string_t& v) override {
        if (depth_ == 4 && in_messages_) {
            if (key_[4] == "from") {
                from_ = v;
                from_line_ = line_;
            } else if (key_[4] == "value") {
                chars_ = code_points(v);
                have_value_ = true;
            }
        }
        if (depth_ == 2 && key_[2] == "id") id_ = v;
        return check_scalar_container("a string");
    }
    bool start_object(std::size_t) override {
        if (depth_ == 0) fail("", "expected an array of conversations, found an object");
        ++depth_;
        key_.resize(static_cast<std::size_t>(depth_) + 1);
        key_[static_cast<std::size_t>(depth_)].clear();
        if (depth_ == 2) begin_conversation();
        if (depth_ == 4 && in_messages_) begin_message();
        if (depth_ == 3 && key_[2] == "conversations") fail("conversations", "expected an array of messages, found an object");
        return true;
    }
    bool key(string_t& k) override {
        key_[static_cast<std::size_t>(depth_)] = k;
        return true;
    }
    bool end_object() override {
        if (depth_ == 4 && in_messages_) end_message();
        if (depth_ == 2) end_conversation();
        --depth_;
        return true;
    }
    bool start_array(std::size_t) override {
        ++depth_;
        key_.resize(static_cast<std::size_t>(depth_) + 1);
        key_[static_cast<std::size_t>(depth_)].clear();
        if (depth_ == 2) fail("", "element " + std::to_string(conversations_seen_) + ": expected a conversation object, found an array");
        if (depth_ == 3 && key_[2] == "conversations") {
            in_messages_ = true;
            have_messages_ = true;
        }
        if (depth_ == 4 && in_messages_) fail("conversations", "a message must be an object, found an array");
        return true;
    }
    bool end_array() override {
        if (depth_ == 3 && in_messages_) in_messages_ = false;
        --depth_;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
        std::string what = ex.what();
        // "[json.exception.parse_error.101] parse error at line 3, column 5: ..." -> keep the reason
        if (auto p = what.find(": "); p != std::string::npos) what = what.substr(p + 2);
        fail("", "malformed JSON: " + what);
    }

private:
    [[noreturn]] void fail(const std::string& field, const std::string& what) const {
        throw trace_error(file_, line_, field, what);
    }
    bool scalar(const char* kind) { return check_scalar_container(kind); }
    bool check_scalar_container(const char* kind) {
        if (depth_ == 0) fail("", std::string("expected an array of conversations, found ") + kind);
        if (depth_ == 1) fail("", "element " + std::to_string(conversations_seen_) + ": expected a conversation object, found " + kind);
        if (depth_ == 2 && key_[2] == "conversations") fail("conversations", std::string("expected an array of messages, found ") + kind);
        if (depth_ == 3 && in_messages_) fail("conversations", std::string("a message must be an object, found ") + kind);
        if (depth_ == 4 && in_messages_) {
            const auto& k = key_[4];
            if ((k == "from" || k == "value") && std::string_view(kind) != "a string")
                fail(k, std::string("expected a string, found ") + kind);
            if ((k == "tokens" || k == "num_tokens") && std::string_view(kind) != "a number")
                fail(k, std::string("expected a token count, found ") + kind);
        }
        return true;
    }
    bool number(double v, bool integral) {
        if (depth_ == 4 && in_messages_ && (key_[4] == "tokens" || key_[4] == "num_tokens")) {
            if (!integral || v < 0 || v > 1e9) fail(key_[4], "expected a non-negative whole token count");
            tokens_ = static_cast<std::int64_t>(v);
        }
        return check_scalar_container("a number");
    }

    void begin_conversation() {
        ++conversations_seen_;
        conv_line_ = line_;
        have_messages_ = false;
        id_.clear();
        messages_.clear();
    }
    void begin_message() {
        from_.reset();
        have_value_ = false;
        chars_ = 0;
        tokens_.reset();
        msg_line_ = line_;
    }
    void end_message() {
        if (!from_) throw trace_error(file_, msg_line_, "from", "missing");
        if (!have_value_ && !tokens_) throw trace_error(file_, msg_line_, "value", "missing");
        const auto r = role_of(*from_);
        if (!r) throw trace_error(file_, from_line_, "from", "unknown speaker '" + *from_ + "' (expected human/user/system or gpt/assistant/...)");
        const std::int64_t n =
            tokens_ ? *tokens_ : static_cast<std::int64_t>(std::ceil(static_cast<double>(chars_) / opt_.chars_per_token));
        messages_.push_back({*r, n});
    }
    void end_conversation() {
        if (!have_messages_) throw trace_error(file_, conv_line_, "conversations", "missing");
        // Turns: user messages (and any model text before the first one) are input; the model's
        // replies that follow are output; the next user message starts a new turn.
        conversation conv;
        trace_turn cur;
        std::int64_t in = 0, outp = 0;
        bool any_user = false;
        auto close = [&] {
            cur.input_tokens = static_cast<std::int32_t>(std::clamp<std::int64_t>(in, 1, INT32_MAX));
            cur.output_tokens = static_cast<std::int32_t>(std::clamp<std::int64_t>(outp, 1, INT32_MAX));
            conv.turns.push_back(cur);
            in = outp = 0;
        };
        for (const auto& [r, n] : messages_) {
            if (r == role::user) {
                if (outp > 0 && any_user) close();
                any_user = true;
                in += n;
            } else if (!any_user) {
                in += n;  // a model message before any user message: context of the first turn
            } else {
                outp += n;
            }
        }
        if (!any_user) return;  // nothing a user asked: not a conversation we can replay
        close();
        conv.session = session_id{out_.conversations.size() + 1};
        clock_ += detail::exponential(rng_, 1.0 / opt_.arrival_rate);
        for (std::size_t k = 0; k < conv.turns.size(); ++k) {
            if (k == 0) conv.turns[k].at_s = clock_;
            else conv.turns[k].think_s = detail::exponential(rng_, opt_.mean_think_s);
        }
        out_.conversations.push_back(std::move(conv));
    }

    const std::filesystem::path& file_;
    const std::size_t& line_;
    const sharegpt_options& opt_;
    trace& out_;
    std::mt19937_64 rng_;
    double clock_ = 0;
    int depth_ = 0;
    std::vector<std::string> key_{1};
    bool in_messages_ = false, have_messages_ = false, have_value_ = false;
    std::size_t conversations_seen_ = 0, conv_line_ = 0, msg_line_ = 0, from_line_ = 0, chars_ = 0;
    std::optional<std::string> from_;
    std::optional<std::int64_t> tokens_;
    std::string id_;
    struct message {
        role r;
        std::int64_t tokens;
    };
    std::vector<message> messages_;
};

// ------------------------------------------------------------------------------------ BurstGPT
std::string normalize(std::string_view s) {
    std::string o;
    for (unsigned char c : s)
        if (!std::isspace(c) && c != '_' && c != '"') o.push_back(static_cast<char>(std::tolower(c)));
    return o;
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
std::vector<std::string> split_csv(std::string_view line, const std::filesystem::path& file, std::size_t lineno) {
    std::vector<std::string> f;
    std::string cur;
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < line.size() && line[i + 1] == '"') {
                    cur.push_back('"');
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                cur.push_back(c);
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            f.push_back(std::move(cur));
            cur.clear();
        } else if (c != '\r') {
            cur.push_back(c);
        }
    }
    if (quoted) throw trace_error(file, lineno, "", "unterminated quoted field");
    f.push_back(std::move(cur));
    return f;
}

template <class T>
T parse_number(const std::string& s, const std::filesystem::path& file, std::size_t line, const std::string& field) {
    T v{};
    const char* b = s.data();
    const char* e = s.data() + s.size();
    while (b < e && *b == ' ') ++b;
    while (e > b && e[-1] == ' ') --e;
    const auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e || b == e)
        throw trace_error(file, line, field, "expected a number, found '" + s + "'");
    if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(v)) throw trace_error(file, line, field, "expected a finite number, found '" + s + "'");
    }
    if (v < 0) throw trace_error(file, line, field, "must be >= 0, found '" + s + "'");
    return v;
}

}  // namespace

trace read_sharegpt(const std::filesystem::path& file, const sharegpt_options& opt) {
    if (!(opt.chars_per_token > 0) || !(opt.arrival_rate > 0) || !(opt.mean_think_s >= 0))
        throw config_error("read_sharegpt: need chars_per_token > 0, arrival_rate > 0, mean_think_s >= 0");
    const std::string text = read_all(file);
    trace out;
    out.source = file.filename().string();
    std::size_t line = 1;
    sharegpt_sax sax(file, line, opt, out);
    line_counting_iterator first{text.data(), &line}, last{text.data() + text.size(), &line};
    json::sax_parse(first, last, &sax);
    return out;
}

trace read_burstgpt(const std::filesystem::path& file, const burstgpt_options& opt) {
    require_regular_file(file);
    std::ifstream in(file, std::ios::binary);
    if (!in) throw trace_error(file, 0, "", "cannot open the file");
    std::string line;
    std::size_t lineno = 0;
    if (!std::getline(in, line)) throw trace_error(file, 1, "", "empty file: expected a header row");
    ++lineno;
    const auto header = split_csv(line, file, lineno);
    std::optional<std::size_t> c_time, c_req, c_resp, c_session;
    for (std::size_t i = 0; i < header.size(); ++i) {
        const std::string h = normalize(header[i]);
        if (h == "timestamp") c_time = i;
        else if (h == "requesttokens") c_req = i;
        else if (h == "responsetokens") c_resp = i;
        else if (h == "sessionid") c_session = i;
    }
    if (!c_time) throw trace_error(file, 1, "Timestamp", "missing column in the header row");
    if (!c_req) throw trace_error(file, 1, "Request tokens", "missing column in the header row");
    if (!c_resp) throw trace_error(file, 1, "Response tokens", "missing column in the header row");

    struct row {
        double at;
        std::int32_t in, out;
        std::size_t order;
    };
    std::unordered_map<std::string, std::vector<row>> sessions;
    std::vector<std::string> session_order;
    std::vector<row> singles;
    std::size_t rows = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.empty() || line == "\r") continue;
        const auto f = split_csv(line, file, lineno);
        if (f.size() != header.size())
            throw trace_error(file, lineno, "", "expected " + std::to_string(header.size()) + " columns, found " +
                                                    std::to_string(f.size()));
        const double at = parse_number<double>(f[*c_time], file, lineno, header[*c_time]);
        const auto req = parse_number<std::int64_t>(f[*c_req], file, lineno, header[*c_req]);
        const auto resp = parse_number<std::int64_t>(f[*c_resp], file, lineno, header[*c_resp]);
        if (resp == 0 && opt.skip_failed) continue;
        const row r{at, static_cast<std::int32_t>(std::clamp<std::int64_t>(req, 1, INT32_MAX)),
                    static_cast<std::int32_t>(std::clamp<std::int64_t>(resp, 1, INT32_MAX)), rows};
        const std::string sid = c_session ? f[*c_session] : std::string();
        if (sid.empty()) {
            singles.push_back(r);
        } else {
            auto [it, fresh] = sessions.try_emplace(sid);
            if (fresh) session_order.push_back(sid);
            it->second.push_back(r);
        }
        if (++rows == opt.max_rows) break;
    }
    if (in.bad()) throw trace_error(file, lineno, "", "read failed");

    // One conversation per session id (turns by timestamp), one per row without one; all
    // ordered by first arrival (ties: file order).
    struct pending {
        double first;
        std::size_t order;
        std::vector<row> turns;
    };
    std::vector<pending> convs;
    convs.reserve(singles.size() + sessions.size());
    for (const auto& r : singles) convs.push_back({r.at, r.order, {r}});
    for (const auto& sid : session_order) {
        auto& v = sessions[sid];
        std::stable_sort(v.begin(), v.end(), [](const row& a, const row& b) { return a.at < b.at; });
        convs.push_back({v.front().at, v.front().order, std::move(v)});
    }
    std::sort(convs.begin(), convs.end(), [](const pending& a, const pending& b) {
        return a.first != b.first ? a.first < b.first : a.order < b.order;
    });
    trace out;
    out.source = file.filename().string();
    out.conversations.reserve(convs.size());
    for (auto& p : convs) {
        conversation c;
        c.session = session_id{out.conversations.size() + 1};
        c.turns.reserve(p.turns.size());
        for (const auto& r : p.turns) c.turns.push_back({r.in, r.out, r.at, 0});
        out.conversations.push_back(std::move(c));
    }
    return out;
}

}  // namespace cachedattn::workload
