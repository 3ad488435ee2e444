// Links the installed CUDA library (cachedattn::cuda): built by the consumer test wherever the
// library was built; it runs anywhere and reports how many GPUs it sees (0 on a build machine).
#include <cachedattn/backend/cuda_backend.hpp>

#include <cstdio>

int main() {
    std::printf("consumer cuda ok: %d device(s)\n", cachedattn::cuda::device_count());
    return 0;
}
