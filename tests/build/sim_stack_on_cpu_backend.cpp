// Must NOT compile: a simulated stack (tiers that hold no KV) on a real model backend.
#include <cachedattn/cachedattn.hpp>

namespace ca = cachedattn;

int main() {
    ca::backend::cpu_backend model(ca::model::model_config::tiny(), 1);
    ca::stacks::sim::paper::config c;
    ca::stacks::sim::paper kv(c, model.geometry(), model.weights_id());
    ca::engine engine(kv, model);
    return static_cast<int>(engine.queued());
}
