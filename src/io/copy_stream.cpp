// Boost.Asio's thread_pool with one thread: posted handlers run in order, off the caller's
// thread. Kept out of the headers so only this file pays for Asio's compile time.
#include "cachedattn/io/copy_stream.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <future>

namespace cachedattn::io {

struct copy_stream::impl {
    boost::asio::thread_pool pool{1};
};

copy_stream::copy_stream() : impl_(std::make_unique<impl>()) {}

copy_stream::~copy_stream() {
    impl_->pool.join();  // returns once queued handlers have run
}

void copy_stream::post(std::function<void()> work) {
    boost::asio::post(impl_->pool, [w = std::move(work)]() noexcept { w(); });
}

void copy_stream::synchronize() {
    std::promise<void> done;
    auto f = done.get_future();
    boost::asio::post(impl_->pool, [&done]() noexcept { done.set_value(); });
    f.wait();
}

}  // namespace cachedattn::io
