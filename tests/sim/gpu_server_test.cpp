// The simulated GPU's continuous batching, by hand: prefills alone and first, decode steps of
// the whole batch summed by the cost model, joins at step boundaries, slots.
#include <cachedattn/sim/gpu_server.hpp>
#include <cachedattn/sim/sim_backend.hpp>

#include "../support.hpp"

using namespace cachedattn;

namespace {
const sim::cost_model& cost13() {
    static const sim::cost_model c(model::model_config::llama2_13b(), sim::gpu_profile::a100_pcie4(2));
    return c;
}
std::vector<sim::completion> run_all(sim::gpu_server& g) {
    std::vector<sim::completion> out;
    g.run(sim::gpu_server::never, false, out);
    return out;
}
}  // namespace

TEST_CASE("gpu server: one job decodes alone after its prefill") {
    const auto& c = cost13();
    sim::gpu_server g(c, 4);
    g.add_prefill(0, 0.5);
    g.add_job(session_id{1}, 0.5, 1000, 200, 0.25);
    CHECK(g.jobs() == 1);
    const auto done = run_all(g);
    REQUIRE(done.size() == 1);
    const double decode = c.batch_steps_s(1, 1001, 200);  // contexts 1001 .. 1200
    CHECK(done[0].first_token_s == 0.5);
    CHECK(done[0].decode_end_s == doctest::Approx(0.5 + decode).epsilon(1e-12));
    CHECK(done[0].finished_s == doctest::Approx(0.75 + decode).epsilon(1e-12));
    CHECK(g.busy_s() == doctest::Approx(0.5 + decode).epsilon(1e-12));
    CHECK(g.jobs() == 0);
}

TEST_CASE("gpu server: a prefill stops the batch, jobs share decode steps and leave at their last") {
    const auto& c = cost13();
    sim::gpu_server g(c, 4);
    // A prefills [0, 1], B prefills [1, 2]: A cannot step before B's prefill is over.
    g.add_prefill(0, 1);
    g.add_job(session_id{1}, 1, 500, 10, 0);
    g.add_prefill(1, 2);
    g.add_job(session_id{2}, 2, 300, 4, 0);
    const auto done = run_all(g);
    REQUIRE(done.size() == 2);
    // Both decode from t = 2: four steps of two sequences (contexts 501+301 at first), then A
    // alone for six more (its context 505 at the fifth step).
    const double both = c.batch_steps_s(2, 501 + 301, 4);
    const double alone = c.batch_steps_s(1, 505, 6);
    CHECK(done[0].session == session_id{2});
    CHECK(done[0].decode_end_s == doctest::Approx(2 + both).epsilon(1e-12));
    CHECK(done[1].session == session_id{1});
    CHECK(done[1].decode_end_s == doctest::Approx(2 + both + alone).epsilon(1e-12));
    CHECK(g.busy_s() == doctest::Approx(2 + both + alone).epsilon(1e-12));
    // Batching: the two together take less than one after the other.
    CHECK(both < c.batch_steps_s(1, 501, 4) + c.batch_steps_s(1, 301, 4));
}

TEST_CASE("gpu server: a job joins at the next step boundary, a prefill stretches the step under way") {
    const auto& c = cost13();
    sim::gpu_server g(c, 4);
    g.add_prefill(0, 0);
    g.add_job(session_id{1}, 0, 1000, 3, 0);
    const double step1 = c.batch_steps_s(1, 1001, 1);
    std::vector<sim::completion> out;
    // Run into the middle of the first step, then a 1 s prefill arrives there.
    CHECK_FALSE(g.run(step1 / 2, true, out));
    CHECK(g.time() == doctest::Approx(step1 / 2));
    g.add_prefill(step1 / 2, step1 / 2 + 1);
    g.add_job(session_id{2}, step1 / 2 + 1, 100, 1, 0);
    out = run_all(g);
    REQUIRE(out.size() == 2);
    // A's first step ends after the pause (1 s later); B joins there and steps with A once.
    const double boundary = step1 + 1;
    const double joint = c.batch_steps_s(2, 1002 + 101, 1);
    CHECK(out[0].session == session_id{2});
    CHECK(out[0].decode_end_s == doctest::Approx(boundary + joint).epsilon(1e-12));
    CHECK(out[1].session == session_id{1});
    CHECK(out[1].decode_end_s ==
          doctest::Approx(boundary + joint + c.batch_steps_s(1, 1003, 1)).epsilon(1e-12));
}

TEST_CASE("gpu server: slots, stopping at completions, jobs of no decode step") {
    const auto& c = cost13();
    sim::gpu_server g(c, 2);
    g.add_prefill(0, 0.1);
    g.add_job(session_id{1}, 0.1, 10, 0, 0.05);  // one token: done when its prefill is
    g.add_prefill(0.1, 0.2);
    g.add_job(session_id{2}, 0.2, 10, 50, 0);
    CHECK_FALSE(g.has_free_slot());
    std::vector<sim::completion> out;
    CHECK(g.run(sim::gpu_server::never, true, out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].session == session_id{1});
    CHECK(out[0].decode_end_s == 0.1);
    CHECK(out[0].finished_s == doctest::Approx(0.15));
    CHECK(g.time() == doctest::Approx(0.1));
    CHECK(g.has_free_slot());
    CHECK_FALSE(g.run(1e-9 + 0.2, true, out));  // nothing completes by then
    CHECK(g.run(sim::gpu_server::never, true, out));
    CHECK(out.back().decode_end_s == doctest::Approx(0.2 + c.batch_steps_s(1, 11, 50)).epsilon(1e-12));
}

TEST_CASE("sim backend: the SSD and the link serve FCFS, a load behind a busy link stalls the prefill") {
    const auto m = model::model_config::llama2_13b();
    const auto p = sim::gpu_profile::a100_pcie4(2);
    sim::sim_backend b(m, p);
    const auto& c = b.costs();
    const double gb = 1e9;
    const double striped = p.ssd_read_bytes_per_s * p.ssds;  // the profile's SSDs read in parallel
    CHECK(b.ssd_read(gb, 0) == doctest::Approx(gb / striped));
    CHECK(b.ssd_read(gb, 0) == doctest::Approx(2 * gb / striped));  // queued behind the first
    CHECK(b.transfer(gb, 1.0) == doctest::Approx(1.0 + c.link_s(gb)));
    // A prefill with nothing to load starts now; one whose load waits for the link stalls.
    const double alone = b.prefill(0, 512, nullptr, 0);
    CHECK(alone == doctest::Approx(c.prefill_s(512, 0)).epsilon(1e-12));
    const sim::overlapped_load load{gb, 1, 1, 0};
    const double behind = b.prefill(1000, 100, &load, 0);
    // Starts after the first prefill; its copy cannot start before the link is free (1 + link_s).
    CHECK(behind > 1.0 + 2 * c.link_s(gb));
    CHECK(b.busy_s() == doctest::Approx(behind).epsilon(1e-12));  // two prefills back to back
}
