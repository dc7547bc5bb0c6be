// CUDA streams and events. Work queued on one stream runs in order; work on two streams may
// overlap, and an Event orders it: event.record() on stream A, then B.wait(event), and B's later
// work starts after A's work before the record. Events also time the device: the trainer records
// one before and one after a step and reports the time between them (metrics device_time_s).
//
// Every kernel, cuBLAS call, device copy and fill goes to the calling thread's current stream:
// the default stream unless a StreamGuard names another. In the SIMT emulator each launch has
// finished when it returns, so a Stream there only orders nothing and an Event is complete once
// recorded (its time is the host's clock at the record).
//
// The caching allocator (caching_allocator.h) hands a freed block only to a request on the stream
// that allocated it, so a block is never written by one stream while another still reads it. A
// tensor made on one stream and read on another must be kept alive until that stream's work is
// done (an Event), as with PyTorch's record_stream.
#pragma once
#include <chrono>

namespace mlamoe::cuda {

class Stream {
 public:
  explicit Stream(int device = 0);  // a new stream on `device` (non-blocking: it does not wait for the default stream)
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void synchronize() const;                 // the host waits until everything queued on the stream has finished
  void* handle() const { return handle_; }  // cudaStream_t on the GPU; an opaque token in the emulator
  int device() const { return device_; }

 private:
  void* handle_ = nullptr;
  int device_ = 0;
};

class Event {
 public:
  explicit Event(int device = 0);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record();                              // marks the end of the work queued so far on the current stream
  void record(const Stream& s);               // ... on stream s
  void synchronize() const;                   // the host waits for that work; throws a kernel's error
  bool query() const;                         // has that work finished? (never waits)
  double elapsed_ms(const Event& end) const;  // milliseconds from this event to `end`, both recorded and finished

 private:
  friend void stream_wait(void* waiter, const Event& e);
  void* handle_ = nullptr;  // cudaEvent_t on the GPU
  std::chrono::steady_clock::time_point host_time_{};
  bool recorded_ = false;
  int device_ = 0;
};

// The calling thread's current stream, as launches read it: nullptr is the default stream.
void* current_stream();
// Makes `s` the calling thread's current stream while the guard lives (guards nest).
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  void* saved_;
};
// Later work on stream `waiter` (nullptr: the default stream) waits for `e` (recorded).
void stream_wait(void* waiter, const Event& e);

}  // namespace mlamoe::cuda
