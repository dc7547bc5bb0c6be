// The NCCL implementation of Communicator (communicator.h: only the *_impl functions; the front
// validates, records bytes and brackets blocking calls for the watchdog). Collectives go to NCCL
// (nccl_api.h: the library on a GPU, its MPI stand-in in the SIMT emulator and in CI):
//   - all-reduce, reduce-scatter and broadcast are NCCL's own;
//   - all-gather-v and all-to-all-v are one group of sends and receives, one pair per peer with
//     a non-zero count (NCCL's collectives take equal counts only);
//   - send and receive are NCCL's (no tags: messages between two ranks match in posting order).
//     isend and irecv are held until a wait (on any of them) or the next other call, and then
//     posted as one group, as torch's batch_isend_irecv does: NCCL point-to-point calls outside a
//     group block the stream until matched, so a rank posting irecv before isend would wait
//     forever for a peer doing the same.
// Buffers are device memory; a host buffer (a count, a scalar) is staged through a device copy,
// and the call then waits for the result on the host. On device buffers a call is queued on the
// communicator's own stream after the caller's queued work and returns at once: the caller's
// stream waits for its end on the device (a blocking call), or the stream that waits on its
// request does (a non-blocking one), so communication overlaps the kernels queued meanwhile.
#include <functional>
#include <memory>
#include <vector>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/error.h"
#include "model/tensor/tensor.h"
#include "parallel/comm_profile.h"
#include "parallel/communicator.h"
#include "parallel/nccl_api.h"
#include "parallel/watchdog.h"

namespace mlamoe {

namespace {

class DoneRequest final : public Request {
 protected:
  void wait_impl() override {}
};

// A held isend or irecv: waiting on it (or destroying it) posts everything held (flush).
class HeldRequest final : public Request {
 public:
  explicit HeldRequest(std::function<void()> flush) : flush_(std::move(flush)) {}
  ~HeldRequest() override {
    try {
      BlockingCall blocked(watched());  // the flush may wait (a staged buffer): the watchdog sees it
      if (flush_) flush_();
    } catch (const Error&) {  // a destructor must not throw; an explicit wait() reports it
    }
  }

 protected:
  void wait_impl() override {
    auto f = std::move(flush_);
    flush_ = nullptr;
    if (f) f();
  }

 private:
  std::function<void()> flush_;
};

// A call's buffer as NCCL takes it: device memory in place; host memory through a device copy
// (in before the call when `in`, back after it).
class DeviceStage {
 public:
  DeviceStage(NcclApi& api, const void* p, size_t bytes, bool in, Device device) : api_(api), p_(p), bytes_(bytes) {
    if (!p || bytes == 0 || cuda::device_of_pointer(p) >= 0) return;
    copy_ = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8, device);
    if (in) cuda::copy(copy_.device_raw_data(), device, p, Device::cpu(), bytes);
  }
  void* ptr() { return copy_.defined() ? copy_.device_raw_data() : const_cast<void*>(p_); }
  bool staged() const { return copy_.defined(); }
  void copy_out() {  // waits for the call: the host reads its result
    if (!copy_.defined()) return;
    api_.synchronize();
    cuda::copy(const_cast<void*>(p_), Device::cpu(), copy_.device_raw_data(), copy_.device(), bytes_);
  }

 private:
  NcclApi& api_;
  const void* p_;
  size_t bytes_;
  Tensor copy_;
};

// One call queued on the communication stream: where the caller's stream was when it was queued
// (ready), where the call began on the communication stream (begun, after the queued work it
// waits for) and where it ended (done).
struct QueuedCall {
  std::shared_ptr<cuda::Event> ready, begun, done;
  uint32_t kind = 0;  // the group's kind, for --profile (comm_profile.h)
};

// The stream that is current on this thread waits, on the device, for the call's end; with
// --profile the wait is recorded (ready: where that stream starts to wait).
void wait_on_device(const QueuedCall& call, std::shared_ptr<cuda::Event> ready) {
  cuda::stream_wait(cuda::current_stream(), *call.done);
  if (comm_profiling()) add_comm_device_wait(call.kind, std::move(ready), call.begun, call.done);
}

std::shared_ptr<cuda::Event> record_here_if_profiling(int device) {
  if (!comm_profiling()) return nullptr;
  auto e = std::make_shared<cuda::Event>(device);
  e->record();
  return e;
}

// A non-blocking call's request: the stream that waits on it waits for the call's end event.
class EventRequest final : public Request {
 public:
  EventRequest(QueuedCall call, int device) : call_(std::move(call)), device_(device) {}
  ~EventRequest() override {
    try {
      if (call_.done) wait_on_device(call_, record_here_if_profiling(device_));
    } catch (const Error&) {  // a destructor must not throw; an explicit wait() reports it
    }
  }

 protected:
  void wait_impl() override {
    wait_on_device(call_, record_here_if_profiling(device_));
    call_.done.reset();
  }

 private:
  QueuedCall call_;
  int device_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<NcclApi> api, Device device)
      : api_(std::move(api)), device_(device), stream_(std::make_unique<cuda::Stream>(device.index)) {
    register_members(api_->world_ranks());
    set_name("group");
  }
  int rank() const override { return api_->rank(); }
  int size() const override { return api_->size(); }
  std::string transport() const override { return api_->name(); }
  bool waits_on_device() const override { return true; }

 protected:
  int64_t count_limit() const override { return INT64_MAX / 16; }

  void all_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) override {
    blocking([&] { all_reduce_on_stream(buf, count, dt, op); });
  }
  std::unique_ptr<Request> iall_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) override {
    return async([&] { all_reduce_on_stream(buf, count, dt, op); });
  }
  void reduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) override {
    blocking([&] { reduce_scatter_on_stream(send, recv, recv_count, dt); });
  }
  std::unique_ptr<Request> ireduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) override {
    return async([&] { reduce_scatter_on_stream(send, recv, recv_count, dt); });
  }
  void all_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) override {
    blocking([&] { all_gather_v_on_stream(send, recv, counts, dt); });
  }
  std::unique_ptr<Request> iall_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts,
                                              DType dt) override {
    return async([&] { all_gather_v_on_stream(send, recv, counts, dt); });
  }
  void all_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                         const std::vector<int64_t>& recv_counts, DType dt) override {
    blocking([&] { exchange(send, send_counts, recv, recv_counts, dt, false); });
  }
  std::unique_ptr<Request> iall_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                              const std::vector<int64_t>& recv_counts, DType dt) override {
    return async([&] { exchange(send, send_counts, recv, recv_counts, dt, false); });
  }
  void broadcast_impl(void* buf, int64_t count, DType dt, int root) override {
    blocking([&] { broadcast_on_stream(buf, count, dt, root); });
  }
  std::unique_ptr<Request> ibroadcast_impl(void* buf, int64_t count, DType dt, int root) override {
    return async([&] { broadcast_on_stream(buf, count, dt, root); });
  }
  void send_impl(const void* buf, int64_t count, DType dt, int dest, int) override {
    blocking([&] {
      DeviceStage b(*api_, buf, bytes_of(count, dt), true, device_);
      api_->send(b.ptr(), count, dt, dest);
      if (b.staged()) api_->synchronize();  // the staging copy must outlive the send
    });
  }
  void recv_impl(void* buf, int64_t count, DType dt, int source, int) override {
    blocking([&] {
      DeviceStage b(*api_, buf, bytes_of(count, dt), false, device_);
      api_->recv(b.ptr(), count, dt, source);
      b.copy_out();
    });
  }
  std::unique_ptr<Request> isend_impl(const void* buf, int64_t count, DType dt, int dest, int) override {
    held_.push_back(Held{true, const_cast<void*>(buf), count, dt, dest});
    return std::make_unique<HeldRequest>([this] { blocking([] {}); });
  }
  std::unique_ptr<Request> irecv_impl(void* buf, int64_t count, DType dt, int source, int) override {
    held_.push_back(Held{false, buf, count, dt, source});
    return std::make_unique<HeldRequest>([this] { blocking([] {}); });
  }
  void barrier_impl() override {
    int64_t x = 0;
    all_reduce_impl(&x, 1, DType::I64, ReduceOp::Sum);
  }
  std::unique_ptr<Request> ibarrier_impl() override {
    barrier_impl();
    return std::make_unique<DoneRequest>();
  }
  std::unique_ptr<Communicator> split_impl(int color, int key) override {
    blocking([] {});  // held messages first
    return std::make_unique<NcclCommunicator>(api_->split(color, key), device_);
  }

 private:
  // Every call runs on this communicator's own stream (stream_), after the work queued so far on
  // the caller's stream, so NCCL overlaps the caller's later kernels; the caller's stream waits
  // for the call's end (blocking) or its request does (async) — device waits, not host ones.
  // Held isends and irecvs are posted first. A host buffer is staged inside, where the call also
  // waits for its result on the host. (In the SIMT emulator streams order nothing: all of this
  // has happened when the call returns.)
  QueuedCall on_comm_stream(const std::function<void()>& f) {
    QueuedCall call;
    call.ready = std::make_shared<cuda::Event>(device_.index);
    call.ready->record();
    cuda::stream_wait(stream_->handle(), *call.ready);
    if (comm_profiling()) {
      call.kind = kind();
      call.begun = std::make_shared<cuda::Event>(device_.index);
      call.begun->record(*stream_);
    }
    {
      cuda::StreamGuard on(*stream_);
      flush();
      f();
    }
    api_->check_async_error();
    call.done = std::make_shared<cuda::Event>(device_.index);
    call.done->record(*stream_);
    return call;
  }
  // A blocking call: the caller's stream waits from where it was when the call was queued.
  void blocking(const std::function<void()>& f) {
    QueuedCall call = on_comm_stream(f);
    wait_on_device(call, call.ready);
  }
  std::unique_ptr<Request> async(const std::function<void()>& f) {
    return std::make_unique<EventRequest>(on_comm_stream(f), device_.index);
  }

  void all_reduce_on_stream(void* buf, int64_t count, DType dt, ReduceOp op) {
    DeviceStage b(*api_, buf, bytes_of(count, dt), true, device_);
    api_->all_reduce(b.ptr(), count, dt, op);
    b.copy_out();
  }
  void reduce_scatter_on_stream(const void* send, void* recv, int64_t recv_count, DType dt) {
    DeviceStage s(*api_, send, bytes_of(recv_count * size(), dt), true, device_),
        d(*api_, recv, bytes_of(recv_count, dt), false, device_);
    api_->reduce_scatter(s.ptr(), d.ptr(), recv_count, dt);
    d.copy_out();
    if (s.staged() && !d.staged()) api_->synchronize();  // the staging copy must outlive the call
  }
  void all_gather_v_on_stream(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) {
    std::vector<int64_t> mine(counts.size(), counts[rank()]);  // every peer gets this rank's block
    exchange(send, mine, recv, counts, dt, /*same_send=*/true);
  }
  void broadcast_on_stream(void* buf, int64_t count, DType dt, int root) {
    DeviceStage b(*api_, buf, bytes_of(count, dt), rank() == root, device_);
    api_->broadcast(b.ptr(), count, dt, root);
    b.copy_out();
  }

  // One group of sends and receives: to every peer p its send_counts[p] elements (from the
  // displacement of p in send, or all from send's start when same_send: all-gather), from every
  // peer its recv_counts[p] elements at its displacement in recv. A rank's own block goes through
  // NCCL too (a send to itself), so there is one code path.
  void exchange(const void* send, const std::vector<int64_t>& send_counts, void* recv, const std::vector<int64_t>& recv_counts,
                DType dt, bool same_send) {
    int64_t send_total = 0, recv_total = 0;
    for (int64_t c : recv_counts) recv_total += c;
    if (same_send)
      send_total = send_counts[rank()];
    else
      for (int64_t c : send_counts) send_total += c;
    DeviceStage s(*api_, send, bytes_of(send_total, dt), true, device_), d(*api_, recv, bytes_of(recv_total, dt), false, device_);
    char* sp = static_cast<char*>(s.ptr());
    char* rp = static_cast<char*>(d.ptr());
    size_t es = dtype_size(dt);
    api_->group_start();
    int64_t soff = 0, roff = 0;
    for (int p = 0; p < size(); ++p) {
      if (send_counts[p] > 0) api_->send(sp + (same_send ? 0 : soff) * es, send_counts[p], dt, p);
      if (recv_counts[p] > 0) api_->recv(rp + roff * es, recv_counts[p], dt, p);
      soff += same_send ? 0 : send_counts[p];
      roff += recv_counts[p];
    }
    api_->group_end();
    d.copy_out();
    if (s.staged() && !d.staged()) api_->synchronize();  // the staging copy must outlive the sends
  }

  // The held isends and irecvs, posted as one group (nothing when none is held).
  void flush() {
    if (held_.empty()) return;
    std::vector<Held> ops = std::move(held_);
    held_.clear();
    std::vector<DeviceStage> stages;
    stages.reserve(ops.size());
    api_->group_start();
    for (const Held& h : ops) {
      stages.emplace_back(*api_, h.buf, bytes_of(h.count, h.dt), h.sending, device_);
      if (h.sending)
        api_->send(stages.back().ptr(), h.count, h.dt, h.peer);
      else
        api_->recv(stages.back().ptr(), h.count, h.dt, h.peer);
    }
    api_->group_end();
    bool staged_send = false;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (!ops[i].sending) stages[i].copy_out();
      staged_send = staged_send || (ops[i].sending && stages[i].staged());
    }
    if (staged_send) api_->synchronize();  // staged sends' copies are freed below
  }

  struct Held {
    bool sending;
    void* buf;
    int64_t count;
    DType dt;
    int peer;
  };
  std::unique_ptr<NcclApi> api_;
  Device device_;
  std::unique_ptr<cuda::Stream> stream_;  // the communication stream
  std::vector<Held> held_;
};

}  // namespace

std::unique_ptr<NcclApi> nccl_world_api() {
#ifdef MLAMOE_WITH_NCCL
  if (cuda::backend() == cuda::Backend::Gpu) return nccl_gpu_world();
#endif
  return nccl_mpi_standin_world();
}

std::unique_ptr<Communicator> nccl_world_communicator(Device device) {
  MLAMOE_CHECK(device.is_cuda(), "the NCCL communicator needs a CUDA device, got " << device.str());
  auto c = std::make_unique<NcclCommunicator>(nccl_world_api(), device);
  c->set_name("world");
  return c;
}

}  // namespace mlamoe
