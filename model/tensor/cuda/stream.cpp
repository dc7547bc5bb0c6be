#include "model/tensor/cuda/stream.h"

#include <atomic>
#include <cstdint>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/error.h"

namespace mlamoe::cuda {

namespace {

thread_local void* g_current = nullptr;

bool gpu() { return backend() == Backend::Gpu; }

// The emulator's streams are tokens: distinct non-null values the allocator can key blocks by.
void* simt_stream_token() {
  static std::atomic<uintptr_t> next{1};
  return reinterpret_cast<void*>(next.fetch_add(1) << 4);
}

}  // namespace

Stream::Stream(int device) : device_(device) {
  MLAMOE_CHECK(backend() != Backend::None, "a CUDA stream was requested, but no CUDA backend is running");
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) {
    handle_ = cuda_gpu::gpu_stream_create(device);
    return;
  }
#endif
  handle_ = simt_stream_token();
}

Stream::~Stream() {
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) cuda_gpu::gpu_stream_destroy(handle_, device_);
#endif
}

void Stream::synchronize() const {
  HostWait waiting;
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) cuda_gpu::gpu_stream_synchronize(handle_);
#endif
}

Event::Event(int device) : device_(device) {
  MLAMOE_CHECK(backend() != Backend::None, "a CUDA event was requested, but no CUDA backend is running");
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) handle_ = cuda_gpu::gpu_event_create(device);
#endif
}

Event::~Event() {
#ifdef MLAMOE_WITH_CUDA
  if (gpu() && handle_) cuda_gpu::gpu_event_destroy(handle_);
#endif
}

void Event::record() {
  recorded_ = true;
  host_time_ = std::chrono::steady_clock::now();
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) cuda_gpu::gpu_event_record(handle_, g_current);
#endif
}

void Event::record(const Stream& s) {
  StreamGuard on(s);
  record();
}

void Event::synchronize() const {
  MLAMOE_CHECK(recorded_, "Event::synchronize: the event was never recorded");
  HostWait waiting;
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) cuda_gpu::gpu_event_synchronize(handle_);
#endif
}

bool Event::query() const {
  MLAMOE_CHECK(recorded_, "Event::query: the event was never recorded");
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) return cuda_gpu::gpu_event_query(handle_);
#endif
  return true;
}

double Event::elapsed_ms(const Event& end) const {
  MLAMOE_CHECK(recorded_ && end.recorded_, "Event::elapsed_ms: both events must be recorded");
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) return cuda_gpu::gpu_event_elapsed_ms(handle_, end.handle_);
#endif
  return std::chrono::duration<double, std::milli>(end.host_time_ - host_time_).count();
}

void* current_stream() { return g_current; }

StreamGuard::StreamGuard(const Stream& s) : saved_(g_current) { g_current = s.handle(); }
StreamGuard::~StreamGuard() { g_current = saved_; }

void stream_wait(void* waiter, const Event& e) {
  MLAMOE_CHECK(e.recorded_, "stream_wait: the event was never recorded");
#ifdef MLAMOE_WITH_CUDA
  if (gpu()) cuda_gpu::gpu_stream_wait_event(waiter, e.handle_);
#endif
  (void)waiter;
}

}  // namespace mlamoe::cuda
