#include "cachedattn/cuda/runtime.hpp"

#include <cuda_runtime.h>

namespace cachedattn::cuda {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no device" error
        return 0;
    }
    return n;
}

std::string device_description(int device) {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    return std::string(p.name) + ", sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
           std::to_string(p.multiProcessorCount) + " SMs, " +
           std::to_string(p.totalGlobalMem >> 30) + " GiB";
}

device_buffer::device_buffer(std::size_t bytes) { reserve(bytes); }
device_buffer::~device_buffer() {
    if (p_) cudaFree(p_);
}
void device_buffer::reserve(std::size_t bytes) {
    if (bytes <= n_) return;
    if (p_) check(cudaFree(p_), "cudaFree");
    p_ = nullptr;
    n_ = 0;
    check(cudaMalloc(&p_, bytes == 0 ? 1 : bytes), "cudaMalloc");
    n_ = bytes;
}

pinned_buffer::pinned_buffer(std::size_t bytes) : n_(bytes) {
    check(cudaHostAlloc(&p_, bytes == 0 ? 1 : bytes, cudaHostAllocDefault), "cudaHostAlloc");
}
pinned_buffer::~pinned_buffer() {
    if (p_) cudaFreeHost(p_);
}

stream::stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
stream::~stream() {
    if (s_) cudaStreamDestroy(s_);
}
void stream::synchronize() const { check(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

event::event(bool timing) {
    check(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming), "cudaEventCreate");
}
event::~event() {
    if (e_) cudaEventDestroy(e_);
}
void event::record(cudaStream_t s) { check(cudaEventRecord(e_, s), "cudaEventRecord"); }
void event::synchronize() const { check(cudaEventSynchronize(e_), "cudaEventSynchronize"); }

void wait_on(const fence& f, cudaStream_t s) {
    if (!f) return;
    if (const auto* e = dynamic_cast<const event_fence*>(f.get()))
        check(cudaStreamWaitEvent(s, e->get(), 0), "cudaStreamWaitEvent");
    else
        f->wait();
}

struct pinned_memory_resource::state {
    mutable std::mutex mu;
    std::multimap<std::size_t, void*> free;  // size -> buffer
    std::size_t cached = 0;
};
pinned_memory_resource::pinned_memory_resource(std::size_t cache_bytes)
    : cache_limit_(cache_bytes), st_(std::make_unique<state>()) {}
pinned_memory_resource::~pinned_memory_resource() {
    for (auto& [n, p] : st_->free) cudaFreeHost(p);
}
std::size_t pinned_memory_resource::cached_bytes() const {
    std::lock_guard lock(st_->mu);
    return st_->cached;
}
void* pinned_memory_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
    if (bytes == 0) bytes = 1;
    {
        std::lock_guard lock(st_->mu);
        if (auto it = st_->free.find(bytes); it != st_->free.end()) {
            void* p = it->second;
            st_->free.erase(it);
            st_->cached -= bytes;
            return p;
        }
    }
    void* p = nullptr;
    // cudaHostAlloc returns page-aligned memory: any alignment a vector asks for.
    (void)alignment;
    check(cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "cudaHostAlloc (pinned KV entry)");
    return p;
}
void pinned_memory_resource::do_deallocate(void* p, std::size_t bytes, std::size_t) {
    if (bytes == 0) bytes = 1;
    {
        std::lock_guard lock(st_->mu);
        if (st_->cached + bytes <= cache_limit_) {
            st_->free.emplace(bytes, p);
            st_->cached += bytes;
            return;
        }
    }
    cudaFreeHost(p);
}
pinned_memory_resource& pinned_memory() {
    // Never destroyed: entries may be freed during static destruction, after the CUDA runtime
    // shut down (cudaFreeHost then fails harmlessly; the process is ending).
    static auto* r = new pinned_memory_resource();
    return *r;
}

std::byte* device_pool_memory::allocate(std::size_t bytes) const {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "cudaMalloc of the device tier's pool");
    return static_cast<std::byte*>(p);
}
void device_pool_memory::deallocate(std::byte* p) const noexcept { cudaFree(p); }

namespace {
void copy(std::byte* dst, const std::byte* src, std::size_t n, cudaMemcpyKind kind) {
    check(cudaMemcpyAsync(dst, src, n, kind, cudaStreamPerThread), "cudaMemcpyAsync (device tier)");
    check(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize (device tier)");
}
}  // namespace

void device_pool_memory::to_pool(std::byte* dst, const std::byte* src, std::size_t n) const {
    copy(dst, src, n, cudaMemcpyHostToDevice);
}
void device_pool_memory::from_pool(std::byte* dst, const std::byte* src, std::size_t n) const {
    copy(dst, src, n, cudaMemcpyDeviceToHost);
}
void device_pool_memory::within_pool(std::byte* dst, const std::byte* src, std::size_t n) const {
    copy(dst, src, n, cudaMemcpyDeviceToDevice);
}

namespace {
/// Queues the copies on the calling thread's stream. Runs of equal-sized copies whose sources and destinations
/// advance by constant strides (one layer of consecutive blocks: the usual case, since the
/// device tier hands out low block ids first) become one strided cudaMemcpy2DAsync, so a
/// layer-wise load is a few large DMA transfers instead of one small one per block.
void copy_many(std::span<const tier::copy_op> ops, cudaMemcpyKind kind) {
    std::size_t i = 0;
    while (i < ops.size()) {
        std::size_t j = i + 1;
        if (j < ops.size() && ops[j].n == ops[i].n) {
            const std::ptrdiff_t sp = ops[j].src - ops[i].src, dp = ops[j].dst - ops[i].dst;
            const auto n = static_cast<std::ptrdiff_t>(ops[i].n);
            constexpr std::ptrdiff_t max_pitch = std::ptrdiff_t{1} << 30;  // well inside cudaMemcpy2D's limit
            if (sp >= n && dp >= n && sp <= max_pitch && dp <= max_pitch) {
                while (j + 1 < ops.size() && ops[j + 1].n == ops[i].n && ops[j + 1].src - ops[j].src == sp &&
                       ops[j + 1].dst - ops[j].dst == dp)
                    ++j;
                ++j;  // ops [i, j) form one strided run
                check(cudaMemcpy2DAsync(ops[i].dst, static_cast<std::size_t>(dp), ops[i].src, static_cast<std::size_t>(sp),
                                        ops[i].n, j - i, kind, cudaStreamPerThread),
                      "cudaMemcpy2DAsync (device tier)");
                i = j;
                continue;
            }
        }
        check(cudaMemcpyAsync(ops[i].dst, ops[i].src, ops[i].n, kind, cudaStreamPerThread), "cudaMemcpyAsync (device tier)");
        ++i;
    }
}
void copy_many_and_wait(std::span<const tier::copy_op> ops, cudaMemcpyKind kind) {
    copy_many(ops, kind);
    check(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize (device tier)");
}
}  // namespace

void device_pool_memory::to_pool(std::span<const tier::copy_op> ops) const {
    copy_many_and_wait(ops, cudaMemcpyHostToDevice);
}
void device_pool_memory::from_pool(std::span<const tier::copy_op> ops) const {
    copy_many_and_wait(ops, cudaMemcpyDeviceToHost);
}
fence device_pool_memory::to_pool_async(std::span<const tier::copy_op> ops) const {
    copy_many(ops, cudaMemcpyHostToDevice);
    return std::make_shared<const event_fence>(cudaStreamPerThread);
}

std::shared_ptr<const tier::pool_memory> device_memory() {
    static const auto m = std::make_shared<const device_pool_memory>();
    return m;
}

}  // namespace cachedattn::cuda
