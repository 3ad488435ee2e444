// The ShareGPT-like generator's statistics and reproducibility, and the trace readers on good
// and malformed input (every error names the file, line and field).
#include <cachedattn/cachedattn.hpp>
#include <cachedattn/workload/sharegpt_like.hpp>
#include <cachedattn/workload/trace_readers.hpp>

#include "../support.hpp"

using namespace cachedattn;
using namespace cachedattn::workload;

namespace {
std::filesystem::path write(const test::temp_dir& d, const std::string& name, const std::string& text) {
    const auto p = d.path() / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
}

/// The trace_error a call throws (fails the test if it throws nothing or something else).
template <class F>
trace_error error_of(F&& f) {
    try {
        f();
    } catch (const trace_error& e) {
        return e;
    }
    FAIL("expected a trace_error");
    return trace_error("", 0, "", "");
}
}  // namespace

TEST_CASE("sharegpt_like: the paper's workload shape by default, reproducible from the seed") {
    const trace t = sharegpt_like({});
    REQUIRE(t.conversations.size() == 9000);
    double turns = 0, in = 0, out = 0, last = 0;
    std::int32_t max_in = 0;
    for (const auto& c : t.conversations) {
        turns += static_cast<double>(c.turns.size());
        CHECK(c.turns.front().at_s >= last);  // ordered by arrival
        last = c.turns.front().at_s;
        for (std::size_t k = 0; k < c.turns.size(); ++k) {
            const auto& u = c.turns[k];
            in += u.input_tokens;
            out += u.output_tokens;
            max_in = std::max(max_in, u.input_tokens);
            CHECK(u.input_tokens >= 1);
            if (k > 0) CHECK(u.at_s < 0);
        }
    }
    const double n = static_cast<double>(t.turns());
    MESSAGE("turns/conversation " << turns / 9000 << ", input " << in / n << ", output " << out / n
                                  << ", last arrival " << last << " s, max input " << max_in);
    CHECK(turns / 9000 == doctest::Approx(5.75).epsilon(0.03));
    CHECK(in / n == doctest::Approx(161).epsilon(0.05));
    CHECK(out / n == doctest::Approx(338).epsilon(0.05));
    CHECK(last == doctest::Approx(9000).epsilon(0.05));  // Poisson at 1.0/s
    CHECK(max_in > 161 * 8);                             // a heavy tail
    // Same seed, same trace; another seed, another trace.
    const trace again = sharegpt_like({});
    CHECK(again.conversations[1234].turns.size() == t.conversations[1234].turns.size());
    CHECK(again.conversations[1234].turns[0].input_tokens == t.conversations[1234].turns[0].input_tokens);
    sharegpt_like_config other;
    other.seed = 2;
    other.conversations = 100;
    CHECK(sharegpt_like(other).conversations[0].turns[0].at_s != t.conversations[0].turns[0].at_s);
    other.arrival_rate = 0;
    CHECK_THROWS_AS(sharegpt_like(other), config_error);
}

TEST_CASE("read_sharegpt: turns from messages, counts given or estimated") {
    test::temp_dir d("sharegpt");
    const auto p = write(d, "ok.json", R"([
  {"id": "a", "conversations": [
    {"from": "human", "value": "12345678"},
    {"from": "gpt", "value": "abcd"},
    {"from": "human", "value": "x", "tokens": 7},
    {"from": "gpt", "value": "", "num_tokens": 30},
    {"from": "gpt", "value": "more"}
  ]},
  {"id": "b", "conversations": [{"from": "gpt", "value": "only the model speaks"}]},
  {"id": "c", "extra": {"nested": [1, {"from": 3}]}, "conversations": [
    {"from": "system", "value": "be brief"},
    {"from": "user", "value": "héllo wörld"}
  ]}
])");
    const trace t = read_sharegpt(p);
    REQUIRE(t.conversations.size() == 2);  // "b" has no user message
    const auto& a = t.conversations[0].turns;
    REQUIRE(a.size() == 2);
    CHECK(a[0].input_tokens == 2);   // 8 chars / 4
    CHECK(a[0].output_tokens == 1);  // 4 chars
    CHECK(a[1].input_tokens == 7);   // given
    CHECK(a[1].output_tokens == 31); // 30 given + 4 chars
    CHECK(a[0].at_s > 0);
    CHECK(a[1].at_s < 0);
    const auto& c = t.conversations[1].turns;
    REQUIRE(c.size() == 1);
    CHECK(c[0].input_tokens == 2 + 3);  // system "be brief" (8) + 11 code points -> 2 + 3
    CHECK(c[0].output_tokens == 1);     // ends on the user: one token to answer
    CHECK(t.conversations[1].session.value == 2);
}

TEST_CASE("read_sharegpt: malformed input names the file, line and field") {
    test::temp_dir d("sharegpt-bad");
    auto e = error_of([&] { read_sharegpt(write(d, "obj.json", "{\"conversations\": []}")); });
    CHECK(e.line() == 1);
    CHECK(std::string(e.what()).find("obj.json:1") != std::string::npos);
    e = error_of([&] { read_sharegpt(write(d, "from.json", "[\n {\"conversations\": [\n  {\"value\": \"hi\"}\n ]}\n]")); });
    CHECK(e.line() == 3);
    CHECK(e.field() == "from");
    e = error_of([&] {
        read_sharegpt(write(d, "role.json", "[\n {\"conversations\": [\n  {\"from\": \"human\", \"value\": \"a\"},\n"
                                            "  {\"from\": \"robot\", \"value\": \"b\"}\n ]}\n]"));
    });
    CHECK(e.line() == 4);
    CHECK(e.field() == "from");
    CHECK(std::string(e.what()).find("robot") != std::string::npos);
    e = error_of([&] { read_sharegpt(write(d, "type.json", "[\n {\"conversations\": [\n  {\"from\": 1, \"value\": \"a\"}]}]")); });
    CHECK(e.line() == 3);
    CHECK(e.field() == "from");
    e = error_of([&] { read_sharegpt(write(d, "tok.json", "[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\",\n \"tokens\": -3}]}]")); });
    CHECK(e.line() == 2);
    CHECK(e.field() == "tokens");
    e = error_of([&] { read_sharegpt(write(d, "conv.json", "[\n {\"id\": \"x\"},\n]")); });
    CHECK(e.line() >= 2);
    e = error_of([&] { read_sharegpt(write(d, "missing.json", "[\n {\"id\": \"x\"}\n]")); });
    CHECK(e.line() == 2);
    CHECK(e.field() == "conversations");
    e = error_of([&] { read_sharegpt(write(d, "cut.json", "[\n {\"conversations\": [\n  {\"from\": \"human\", \"val")); });
    CHECK(e.line() == 3);
    CHECK(std::string(e.what()).find("malformed JSON") != std::string::npos);
    e = error_of([&] { read_sharegpt(d.path() / "absent.json"); });
    CHECK(std::string(e.what()).find("cannot open") != std::string::npos);
}

TEST_CASE("read_burstgpt: sessions from the Session ID column, single turns without it") {
    test::temp_dir d("burst");
    const auto with = write(d, "with.csv",
                            "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                            "5,s1,1,ChatGPT,100,20,120,Conversation log\n"
                            "1,s2,1,GPT-4,50,10,60,Conversation log\n"
                            "3,s1,1,ChatGPT,30,0,30,Conversation log\n"
                            "2,,1,ChatGPT,7,8,15,API log\n"
                            "4,s1,1,\"Chat, GPT\",40,9,49,Conversation log\r\n");
    trace t = read_burstgpt(with);
    // Conversations by first arrival: s2 (1), single (2), s1 (4; the failed row at 3 is skipped).
    REQUIRE(t.conversations.size() == 3);
    CHECK(t.conversations[0].turns.size() == 1);
    CHECK(t.conversations[0].turns[0].input_tokens == 50);
    CHECK(t.conversations[1].turns[0].input_tokens == 7);
    REQUIRE(t.conversations[2].turns.size() == 2);
    CHECK(t.conversations[2].turns[0].at_s == 4);
    CHECK(t.conversations[2].turns[1].at_s == 5);
    CHECK(t.conversations[2].turns[1].output_tokens == 20);
    t = read_burstgpt(with, {.skip_failed = false});
    CHECK(t.conversations[2].turns.size() == 3);  // s1 now starts at 3 (0 tokens -> 1)
    CHECK(t.conversations[2].turns[0].output_tokens == 1);

    const auto without = write(d, "without.csv",
                               "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                               "0.5,ChatGPT,10,20,30,Conversation log\n"
                               "0.25,ChatGPT,11,21,32,Conversation log\n");
    t = read_burstgpt(without);
    REQUIRE(t.conversations.size() == 2);
    CHECK(t.conversations[0].turns[0].input_tokens == 11);  // sorted by arrival
    CHECK(read_burstgpt(without, {.max_rows = 1}).conversations.size() == 1);
}

TEST_CASE("read_burstgpt: malformed input names the file, line and field") {
    test::temp_dir d("burst-bad");
    auto e = error_of([&] { read_burstgpt(write(d, "h.csv", "Timestamp,Model,Response tokens\n1,a,2\n")); });
    CHECK(e.line() == 1);
    CHECK(e.field() == "Request tokens");
    e = error_of([&] {
        read_burstgpt(write(d, "n.csv", "Timestamp,Request tokens,Response tokens\n1,2,3\n2,abc,3\n"));
    });
    CHECK(e.line() == 3);
    CHECK(e.field() == "Request tokens");
    CHECK(std::string(e.what()).find("n.csv:3: field 'Request tokens'") != std::string::npos);
    e = error_of([&] { read_burstgpt(write(d, "c.csv", "Timestamp,Request tokens,Response tokens\n1,2\n")); });
    CHECK(e.line() == 2);
    e = error_of([&] { read_burstgpt(write(d, "neg.csv", "Timestamp,Request tokens,Response tokens\n-1,2,3\n")); });
    CHECK(e.field() == "Timestamp");
    e = error_of([&] { read_burstgpt(write(d, "q.csv", "Timestamp,Request tokens,Response tokens\n1,\"2,3\n")); });
    CHECK(e.line() == 2);
    e = error_of([&] { read_burstgpt(write(d, "empty.csv", "")); });
    CHECK(e.line() == 1);
}

TEST_CASE("one workload type: the same trace runs on the cpu backend in arrival order and on the simulator") {
    const auto cfg = model::model_config::tiny();
    const trace t = synthetic_chat({.sessions = 4, .turns = 3, .vocab = cfg.vocab, .seed = 5});
    REQUIRE(t.turns() == 12);
    const auto order = in_arrival_order(t, cfg.vocab);
    REQUIRE(order.size() == 12);
    // Arrival order keeps each session's turns in order.
    std::map<std::uint64_t, int> next;
    for (const auto& turn : order) CHECK(turn.turn == next[turn.session.value]++);

    test::temp_dir dir("one-workload");
    backend::cpu_backend cpu(cfg, 1);
    stacks::paper::config rc;
    rc.device().capacity_bytes = 1 << 20;
    rc.host().capacity_bytes = 1 << 20;
    rc.ssd() = {dir.path(), 1 << 20};
    stacks::paper real(rc, cpu.geometry(), cpu.weights_id());
    engine on_cpu(real, cpu);
    const auto done = run_trace(on_cpu, t, 4);
    CHECK(done.size() == 12);

    sim::sim_backend sb(cfg, sim::gpu_profile::a100_pcie4(1));
    stacks::sim::paper::config sc;
    sc.device().capacity_bytes = 1 << 20;
    sc.host().capacity_bytes = 1 << 20;
    sc.ssd().capacity_bytes = 1 << 20;
    stacks::sim::paper simulated(sc, sb.geometry(), sb.weights_id());
    engine on_sim(simulated, sb);
    const auto r = sim::replay(t, on_sim);
    CHECK(r.turns == 12);
    CHECK(r.measured.turns() == 12);
    // The simulator took the trace's own token ids (it used to accept only id 0); on the cpu
    // each session's history starts with its first turn's input.
    for (const auto& c : t.conversations) {
        const auto& first = c.turns[0].input;
        REQUIRE(on_cpu.history(c.session).size() >= first.size());
        CHECK(std::equal(first.begin(), first.end(), on_cpu.history(c.session).begin()));
    }
    // A trace given as counts gets the same ids on every backend and run.
    trace counts;
    counts.conversations.push_back({session_id{9}, {trace_turn{5, 3, 0, 0, {}}}});
    const auto drawn = input_ids(counts.conversations[0], 0, cfg.vocab);
    CHECK(drawn == input_ids(counts.conversations[0], 0, cfg.vocab));
    CHECK(drawn.size() == 5);
    CHECK(std::any_of(drawn.begin(), drawn.end(), [](token_id x) { return x != 0; }));
    CHECK(std::all_of(drawn.begin(), drawn.end(), [&](token_id x) { return x >= 0 && x < cfg.vocab; }));
}
