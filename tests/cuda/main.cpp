// GPU tests: exit code 77 (ctest: skipped) when this machine has no CUDA device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cachedattn/cuda/runtime.hpp>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    bool listing = false;
    for (int i = 1; i < argc; ++i) listing = listing || std::strncmp(argv[i], "--list", 6) == 0 || std::strncmp(argv[i], "-l", 2) == 0;
    if (!listing && cachedattn::cuda::device_count() == 0) {
        std::puts("cachedattn GPU tests: no CUDA device here; skipped");
        return 77;
    }
    if (!listing) std::printf("device: %s\n", cachedattn::cuda::device_description().c_str());
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
