// Must NOT compile: a real stack (a device tier that allocates its pool) on the simulator.
#include <cachedattn/cachedattn.hpp>

namespace ca = cachedattn;

int main() {
    ca::sim::sim_backend sim(ca::model::model_config::tiny(), ca::sim::gpu_profile::a100_pcie4(1));
    ca::stacks::paper::config c;
    ca::stacks::paper kv(c, sim.geometry(), sim.weights_id());
    ca::engine engine(kv, sim);
    return static_cast<int>(engine.queued());
}
