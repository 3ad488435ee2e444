// The closed-form replay of layer-wise pre-loading, on cases worked out by hand.
#include <cachedattn/engine/layer_timeline.hpp>

#include "../support.hpp"

using namespace cachedattn;

TEST_CASE("layer timeline: overlap, read buffer and next-job pre-loading, by hand") {
    const std::vector<double> one(3, 1.0);
    // Equal load and compute, no buffer: only the first layer's load is exposed.
    auto r = layer_timeline(one, one, 0);
    CHECK(r.compute_done == 4);
    CHECK(r.stall == 1);
    // Loading 1 s ahead (during the previous job) hides that too: max(load, compute).
    r = layer_timeline(one, one, 0, -1);
    CHECK(r.compute_done == 3);
    CHECK(r.stall == 0);
    // ...but only 1 + k layers may load ahead: 10 s of head start buys one layer with k = 0.
    const std::vector<double> slow(3, 2.0);
    CHECK(layer_timeline(slow, one, 0, -10).compute_done == 2 + 2 + 1);  // l0 ready, l1 at 2, l2 at 4
    CHECK(layer_timeline(slow, one, 2, -10).compute_done == 3);          // all three ahead
    // Loads twice as slow as compute, in the job: the buffer cannot help, the link is the limit.
    for (int k : {0, 1, 3}) CHECK(layer_timeline(slow, one, k).compute_done == 7);  // 3 x 2 + last compute
    // Fast loads: compute-bound once the first layer is in.
    const std::vector<double> fast(3, 0.25);
    CHECK(layer_timeline(fast, one, 0).compute_done == doctest::Approx(3.25));
    // Buffer 0 vs 1 when a load may only start once compute asked for the previous layer:
    // loads 1, compute 0.5: k=0 serialises on compute's progress less than on the link here.
    const std::vector<double> half(4, 0.5), unit(4, 1.0);
    CHECK(layer_timeline(unit, half, 0).compute_done == doctest::Approx(4.5));
    CHECK(layer_timeline(unit, half, 1).compute_done == doctest::Approx(4.5));
    // Compute-heavy first layer with k = 0: layer 2's load waits for compute to ask for layer 1.
    const std::vector<double> loads{0.1, 0.1, 0.1}, comp{5, 1, 1};
    r = layer_timeline(loads, comp, 0);
    CHECK(r.compute_done == doctest::Approx(0.1 + 5 + 1 + 1));
    CHECK(r.load_done == doctest::Approx(5.1 + 0.1));  // layer 2 starts when layer 1 is asked for (5.1)
    // A loader that starts after the job (the link busy with other copies): compute waits.
    r = layer_timeline(fast, one, 0, 2);  // loads 0.25 from t=2, compute 1 per layer
    CHECK(r.compute_done == doctest::Approx(2.25 + 3));
    CHECK(r.stall == doctest::Approx(2.25));
    CHECK_THROWS_AS(layer_timeline(one, std::vector<double>(2, 1.0), 0), config_error);
}
