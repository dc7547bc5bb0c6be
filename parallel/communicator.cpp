// The checked front of Communicator (communicator.h): validation, byte statistics and watchdog
// recording, once for every implementation, around the protected *_impl calls.
#include "parallel/communicator.h"

#include <chrono>

#include "model/tensor/error.h"
#include "parallel/comm_profile.h"
#include "parallel/watchdog.h"

namespace mlamoe {

namespace {
// A stretch in which the training thread is blocked in communication: told to the watchdog, and
// timed for --profile's exposed communication (comm_profile.h) when that is on.
class Blocked {
 public:
  // timed: false where the communicator times its waits on the device (waits_on_device()).
  Blocked(uint64_t what, bool timed) : watch_(what), what_(what) {
    if (timed && comm_profiling()) t0_ = std::chrono::steady_clock::now(), timed_ = true;
  }
  ~Blocked() {
    if (timed_)
      add_comm_host_wait(static_cast<uint32_t>(what_ >> 8 & 0xffu),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
  }
  Blocked(const Blocked&) = delete;
  Blocked& operator=(const Blocked&) = delete;

 private:
  BlockingCall watch_;
  uint64_t what_;
  bool timed_ = false;
  std::chrono::steady_clock::time_point t0_;
};
}  // namespace

void Request::wait() {
  Blocked blocked(watched_, host_timed_);
  wait_impl();
}

void Communicator::set_name(const std::string& name) {
  name_ = name;
  watch_kind_ = comm_kind_of(name);
}

void Communicator::register_members(std::vector<int> world_ranks) {
  world_rank_of_ = world_ranks;
  watch_id_ = register_communicator(std::move(world_ranks));
}

uint64_t Communicator::watch_call(CommOp op, int peer) const {
  int peer_world = peer >= 0 && peer < static_cast<int>(world_rank_of_.size()) ? world_rank_of_[peer] : -1;
  return pack_call(op, watch_kind_, watch_id_, peer_world);
}

std::unique_ptr<Request> Communicator::watched_request(std::unique_ptr<Request> r, const char* what, CommOp wait_op,
                                                       int peer) const {
  MLAMOE_CHECK(r, what << " on group '" << name_ << "': the implementation returned no request");
  r->watched_ = watch_call(wait_op, peer);
  r->host_timed_ = !waits_on_device();
  return r;
}

// ---------------------------------------------------------------- validation

void Communicator::check_count(const char* what, const char* arg, int64_t count) const {
  MLAMOE_CHECK(count >= 0, what << " on group '" << name_ << "': " << arg << " = " << count << " is negative");
  MLAMOE_CHECK(count <= count_limit(), what << " on group '" << name_ << "': " << arg << " = " << count
                                            << " exceeds this communicator's count limit " << count_limit());
}

void Communicator::check_buffer(const char* what, const char* arg, const void* buf, int64_t count) const {
  MLAMOE_CHECK(buf != nullptr || count == 0,
               what << " on group '" << name_ << "': " << arg << " is null for " << count << " elements");
}

void Communicator::check_dtype(const char* what, DType dt) const {
  MLAMOE_CHECK(dtype_size(dt) > 0,
               what << " on group '" << name_ << "': unknown dtype (value " << static_cast<int>(dt) << ") of no known size");
}

void Communicator::check_rank(const char* what, const char* arg, int r) const {
  MLAMOE_CHECK(r >= 0 && r < size(),
               what << " on group '" << name_ << "': " << arg << " = " << r << " is not a rank of this group of " << size());
}

void Communicator::check_tag(const char* what, int tag) const {
  MLAMOE_CHECK(tag >= 0, what << " on group '" << name_ << "': tag = " << tag << " is negative");
}

int64_t Communicator::check_counts(const char* what, const char* arg, const std::vector<int64_t>& counts) const {
  MLAMOE_CHECK(static_cast<int64_t>(counts.size()) == size(), what << " on group '" << name_ << "': " << counts.size() << " "
                                                                   << arg << " for a group of " << size() << " ranks");
  int64_t limit = count_limit(), displacement = 0;
  for (size_t r = 0; r < counts.size(); ++r) {
    MLAMOE_CHECK(counts[r] >= 0,
                 what << " on group '" << name_ << "': " << arg << "[" << r << "] = " << counts[r] << " is negative");
    MLAMOE_CHECK(counts[r] <= limit, what << " on group '" << name_ << "': " << arg << "[" << r << "] = " << counts[r]
                                          << " exceeds this communicator's count limit " << limit);
    // Block r + 1 starts at the sum of the counts before it: that displacement must fit too.
    MLAMOE_CHECK(r + 1 == counts.size() || counts[r] <= limit - displacement,
                 what << " on group '" << name_ << "': the sum of " << arg << "[0.." << r
                      << "] = " << static_cast<double>(displacement) + static_cast<double>(counts[r])
                      << " (the displacement of block " << r + 1 << ") exceeds this communicator's count limit " << limit);
    displacement += counts[r];  // the total may pass the limit: it is no displacement
  }
  return displacement;
}

// ---------------------------------------------------------------- collectives

void Communicator::record(const char* kind, int64_t bytes) {
  stats_.add(kind, bytes);
  if (comm_profiling()) add_comm_call(watch_kind_, bytes);
}

// Each collective's checks and statistics, shared by its blocking and non-blocking form.
void Communicator::admit_all_reduce(const char* what, const void* buf, int64_t count, DType dt) {
  check_count(what, "count", count);
  check_dtype(what, dt);
  check_buffer(what, "buf", buf, count);
  record("all_reduce", static_cast<int64_t>(bytes_of(count, dt)));
}

void Communicator::admit_reduce_scatter(const char* what, const void* send, const void* recv, int64_t recv_count, DType dt) {
  check_count(what, "recv_count", recv_count);
  check_dtype(what, dt);
  check_buffer(what, "send", send, recv_count);
  check_buffer(what, "recv", recv, recv_count);
  record("reduce_scatter", static_cast<int64_t>(bytes_of(recv_count * size(), dt)));
}

void Communicator::admit_all_gather_v(const char* what, const void* send, const void* recv, const std::vector<int64_t>& counts,
                                      DType dt) {
  int64_t total = check_counts(what, "counts", counts);
  check_dtype(what, dt);
  check_buffer(what, "send", send, counts[rank()]);
  check_buffer(what, "recv", recv, total);
  record("all_gather", static_cast<int64_t>(bytes_of(counts[rank()], dt)));
}

void Communicator::admit_all_to_all_v(const char* what, const void* send, const std::vector<int64_t>& send_counts,
                                      const void* recv, const std::vector<int64_t>& recv_counts, DType dt) {
  int64_t sent = check_counts(what, "send_counts", send_counts), received = check_counts(what, "recv_counts", recv_counts);
  check_dtype(what, dt);
  check_buffer(what, "send", send, sent);
  check_buffer(what, "recv", recv, received);
  record("all_to_all", static_cast<int64_t>(bytes_of(sent - send_counts[rank()], dt)));  // what leaves this rank
}

void Communicator::admit_broadcast(const char* what, const void* buf, int64_t count, DType dt, int root) {
  check_count(what, "count", count);
  check_dtype(what, dt);
  check_rank(what, "root", root);
  check_buffer(what, "buf", buf, count);
  if (rank() == root) record("broadcast", static_cast<int64_t>(bytes_of(count, dt)));
}

void Communicator::admit_p2p(const char* what, const char* peer_arg, const void* buf, int64_t count, DType dt, int peer, int tag,
                             bool sending) {
  check_count(what, "count", count);
  check_dtype(what, dt);
  check_rank(what, peer_arg, peer);
  check_tag(what, tag);
  check_buffer(what, "buf", buf, count);
  if (sending)
    record("send", static_cast<int64_t>(bytes_of(count, dt)));
  else if (comm_profiling())
    add_comm_call(watch_kind_, 0);  // a receive: a call of the group, its bytes counted by the sender
}

void Communicator::all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) {
  admit_all_reduce("all_reduce", buf, count, dt);
  Blocked blocked(watch_call(CommOp::AllReduce), !waits_on_device());
  all_reduce_impl(buf, count, dt, op);
}

std::unique_ptr<Request> Communicator::iall_reduce(void* buf, int64_t count, DType dt, ReduceOp op) {
  admit_all_reduce("iall_reduce", buf, count, dt);
  return watched_request(iall_reduce_impl(buf, count, dt, op), "iall_reduce", CommOp::WaitAllReduce);
}

void Communicator::reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) {
  admit_reduce_scatter("reduce_scatter", send, recv, recv_count, dt);
  Blocked blocked(watch_call(CommOp::ReduceScatter), !waits_on_device());
  reduce_scatter_impl(send, recv, recv_count, dt);
}

std::unique_ptr<Request> Communicator::ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) {
  admit_reduce_scatter("ireduce_scatter", send, recv, recv_count, dt);
  return watched_request(ireduce_scatter_impl(send, recv, recv_count, dt), "ireduce_scatter", CommOp::WaitReduceScatter);
}

void Communicator::all_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) {
  admit_all_gather_v("all_gather_v", send, recv, counts, dt);
  Blocked blocked(watch_call(CommOp::AllGatherV), !waits_on_device());
  all_gather_v_impl(send, recv, counts, dt);
}

std::unique_ptr<Request> Communicator::iall_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) {
  admit_all_gather_v("iall_gather_v", send, recv, counts, dt);
  return watched_request(iall_gather_v_impl(send, recv, counts, dt), "iall_gather_v", CommOp::WaitAllGatherV);
}

void Communicator::all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                const std::vector<int64_t>& recv_counts, DType dt) {
  admit_all_to_all_v("all_to_all_v", send, send_counts, recv, recv_counts, dt);
  Blocked blocked(watch_call(CommOp::AllToAllV), !waits_on_device());
  all_to_all_v_impl(send, send_counts, recv, recv_counts, dt);
}

std::unique_ptr<Request> Communicator::iall_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                                     const std::vector<int64_t>& recv_counts, DType dt) {
  admit_all_to_all_v("iall_to_all_v", send, send_counts, recv, recv_counts, dt);
  return watched_request(iall_to_all_v_impl(send, send_counts, recv, recv_counts, dt), "iall_to_all_v", CommOp::WaitAllToAllV);
}

void Communicator::broadcast(void* buf, int64_t count, DType dt, int root) {
  admit_broadcast("broadcast", buf, count, dt, root);
  Blocked blocked(watch_call(CommOp::Broadcast), !waits_on_device());
  broadcast_impl(buf, count, dt, root);
}

std::unique_ptr<Request> Communicator::ibroadcast(void* buf, int64_t count, DType dt, int root) {
  admit_broadcast("ibroadcast", buf, count, dt, root);
  return watched_request(ibroadcast_impl(buf, count, dt, root), "ibroadcast", CommOp::WaitBroadcast);
}

void Communicator::send(const void* buf, int64_t count, DType dt, int dest, int tag) {
  admit_p2p("send", "dest", buf, count, dt, dest, tag, true);
  Blocked blocked(watch_call(CommOp::Send, dest), !waits_on_device());
  send_impl(buf, count, dt, dest, tag);
}

void Communicator::recv(void* buf, int64_t count, DType dt, int source, int tag) {
  admit_p2p("recv", "source", buf, count, dt, source, tag, false);
  Blocked blocked(watch_call(CommOp::Recv, source), !waits_on_device());
  recv_impl(buf, count, dt, source, tag);
}

std::unique_ptr<Request> Communicator::isend(const void* buf, int64_t count, DType dt, int dest, int tag) {
  admit_p2p("isend", "dest", buf, count, dt, dest, tag, true);
  return watched_request(isend_impl(buf, count, dt, dest, tag), "isend", CommOp::WaitSend, dest);
}

std::unique_ptr<Request> Communicator::irecv(void* buf, int64_t count, DType dt, int source, int tag) {
  admit_p2p("irecv", "source", buf, count, dt, source, tag, false);
  return watched_request(irecv_impl(buf, count, dt, source, tag), "irecv", CommOp::WaitRecv, source);
}

void Communicator::barrier() {
  Blocked blocked(watch_call(CommOp::Barrier), !waits_on_device());
  barrier_impl();
}

std::unique_ptr<Request> Communicator::ibarrier() { return watched_request(ibarrier_impl(), "ibarrier", CommOp::WaitBarrier); }

std::unique_ptr<Communicator> Communicator::split(int color, int key) {
  Blocked blocked(watch_call(CommOp::Split), !waits_on_device());
  return split_impl(color, key);
}

}  // namespace mlamoe
