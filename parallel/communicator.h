// The Communicator interface (parallel/README.md "Core abstractions"): the collectives and point-to-point
// messages the distributed runtime needs, over raw buffers of a dtype, blocking and non-blocking.
// Implementations: MPI (mpi_communicator.cpp, always; device buffers staged through the host) and
// NCCL (nccl_communicator.cpp: the library on a GPU, an MPI stand-in elsewhere) — the same
// interface, so the DP/EP/PP machinery and its tests run unchanged on either.
//
// A checked front (CONTRIBUTING.md "Code habits" item 9, tiny-cuda-nn's `forward` -> `forward_impl`): the public
// collectives are non-virtual (communicator.cpp). Each one
//   1. validates its arguments: counts >= 0; count vectors of size() entries; every count and
//      every displacement (the sum of the counts before it) within count_limit(); root, dest and
//      source ranks of this group; tags >= 0; a dtype of known size; a buffer wherever elements
//      move. A bad argument throws mlamoe::Error naming the collective, the group (name()) and
//      the value, before anything is recorded or sent — on this rank only, so callers pass
//      arguments every rank agrees on (as they must anyway);
//   2. records the payload bytes once in stats(), per collective kind, so a benchmark can print
//      bytes per step next to the analytic value for a layout;
//   3. brackets a blocking call in a BlockingCall for the collective watchdog (parallel/watchdog.h:
//      a couple of relaxed atomic stores, no syscall); a non-blocking call hands its Request the
//      wait to record, and Request::wait records it. With --profile (comm_profile.h) the same
//      stretches are timed as the host's exposed communication;
//   4. calls the protected virtual *_impl, which may assume valid arguments.
// An implementation overrides only the *_impl functions, rank(), size(), count_limit() and, for
// its requests, Request::wait_impl(), and transport() (and waits_on_device() where the device
// waits). The NCCL communicator implements only these too; validation, statistics and watchdog
// recording stay here, identical for every backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/tensor/device.h"
#include "model/tensor/dtype.h"

namespace mlamoe {

enum class ReduceOp { Sum, Max };

// Bytes in `count` elements of `dt` (count >= 0; the backends check counts before they call this).
inline size_t bytes_of(int64_t count, DType dt) { return static_cast<size_t>(count) * dtype_size(dt); }
enum class CommOp : uint8_t;  // parallel/watchdog.h

// A non-blocking operation in flight; wait() completes it (the destructor waits too).
class Request {
 public:
  virtual ~Request() = default;
  // Records the wait for the collective watchdog, then wait_impl().
  void wait();

 protected:
  virtual void wait_impl() = 0;
  // What a wait on this request is, for the watchdog (pack_call(); set by the Communicator front).
  // An implementation whose destructor waits brackets that wait itself with BlockingCall(watched()):
  // the base destructor cannot call wait_impl().
  uint64_t watched() const { return watched_; }

 private:
  friend class Communicator;
  uint64_t watched_ = 0;
  bool host_timed_ = true;  // --profile times the wait on the host (not where the device is timed)
};

struct CommStats {
  std::map<std::string, int64_t> bytes;  // per collective kind: payload bytes this rank contributed
  std::map<std::string, int64_t> calls;
  void add(const char* kind, int64_t b) {
    bytes[kind] += b;
    ++calls[kind];
  }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // What moves the bytes, for the start line: "MPI", "NCCL 22807", "MPI stand-in for NCCL".
  virtual std::string transport() const = 0;
  // True where the compute stream, not the host, waits for this communicator's calls (NCCL): its
  // exposed time is measured on the device (comm_profile.h), and --profile does not count the
  // host's time in its calls again (the host then waits only for what the device waits for too).
  virtual bool waits_on_device() const { return false; }

  // In place over `count` elements.
  void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op);
  std::unique_ptr<Request> iall_reduce(void* buf, int64_t count, DType dt, ReduceOp op);
  // send holds size()·recv_count elements; rank r receives the sum of every rank's block r.
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt);
  std::unique_ptr<Request> ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt);
  // recv holds the concatenation of every rank's `counts[r]` elements (counts known to all).
  void all_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt);
  std::unique_ptr<Request> iall_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt);
  // Block r of `send` (send_counts[r] elements, consecutive) goes to rank r; recv holds, in rank
  // order, recv_counts[r] elements from rank r.
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                    const std::vector<int64_t>& recv_counts, DType dt);
  std::unique_ptr<Request> iall_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                         const std::vector<int64_t>& recv_counts, DType dt);
  void broadcast(void* buf, int64_t count, DType dt, int root);
  std::unique_ptr<Request> ibroadcast(void* buf, int64_t count, DType dt, int root);
  void send(const void* buf, int64_t count, DType dt, int dest, int tag);
  void recv(void* buf, int64_t count, DType dt, int source, int tag);
  std::unique_ptr<Request> isend(const void* buf, int64_t count, DType dt, int dest, int tag);
  std::unique_ptr<Request> irecv(void* buf, int64_t count, DType dt, int source, int tag);
  void barrier();
  std::unique_ptr<Request> ibarrier();

  // A sub-communicator of the ranks passing the same color, ordered by key (collective).
  std::unique_ptr<Communicator> split(int color, int key);

  // The group's name in messages (the mesh's "dp", "ep", "edp", "pp", "embed"; "world"). A rank
  // that times out waiting in one of its calls names it (parallel/watchdog.h).
  void set_name(const std::string& name);
  const std::string& name() const { return name_; }

  CommStats& stats() { return stats_; }

  // Typed conveniences.
  void all_reduce_sum(std::vector<int64_t>& v) {
    all_reduce(v.data(), static_cast<int64_t>(v.size()), DType::I64, ReduceOp::Sum);
  }
  void all_reduce_sum(std::vector<double>& v) { all_reduce(v.data(), static_cast<int64_t>(v.size()), DType::F64, ReduceOp::Sum); }
  double all_reduce_sum(double x) {
    all_reduce(&x, 1, DType::F64, ReduceOp::Sum);
    return x;
  }

 protected:
  // ---- what an implementation supplies; arguments are valid (checked by the front) ----
  // The largest count, and the largest displacement, one call may carry (MPI: INT32_MAX, its
  // counts and displacements are int).
  virtual int64_t count_limit() const = 0;
  virtual void all_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) = 0;
  virtual std::unique_ptr<Request> iall_reduce_impl(void* buf, int64_t count, DType dt, ReduceOp op) = 0;
  virtual void reduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) = 0;
  virtual std::unique_ptr<Request> ireduce_scatter_impl(const void* send, void* recv, int64_t recv_count, DType dt) = 0;
  virtual void all_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) = 0;
  virtual std::unique_ptr<Request> iall_gather_v_impl(const void* send, void* recv, const std::vector<int64_t>& counts,
                                                      DType dt) = 0;
  virtual void all_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                 const std::vector<int64_t>& recv_counts, DType dt) = 0;
  virtual std::unique_ptr<Request> iall_to_all_v_impl(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                                      const std::vector<int64_t>& recv_counts, DType dt) = 0;
  virtual void broadcast_impl(void* buf, int64_t count, DType dt, int root) = 0;
  virtual std::unique_ptr<Request> ibroadcast_impl(void* buf, int64_t count, DType dt, int root) = 0;
  virtual void send_impl(const void* buf, int64_t count, DType dt, int dest, int tag) = 0;
  virtual void recv_impl(void* buf, int64_t count, DType dt, int source, int tag) = 0;
  virtual std::unique_ptr<Request> isend_impl(const void* buf, int64_t count, DType dt, int dest, int tag) = 0;
  virtual std::unique_ptr<Request> irecv_impl(void* buf, int64_t count, DType dt, int source, int tag) = 0;
  virtual void barrier_impl() = 0;
  virtual std::unique_ptr<Request> ibarrier_impl() = 0;
  virtual std::unique_ptr<Communicator> split_impl(int color, int key) = 0;

  // The group's kind as the mesh names it (comm_kind_of(name()), kept by set_name).
  uint32_t kind() const { return watch_kind_; }
  // An implementation's constructor registers the group's members (as world ranks) with the
  // watchdog, which names them in its report.
  void register_members(std::vector<int> world_ranks);

 private:
  // pack_call() of a call on this group (peer: a rank of this group, or -1).
  uint64_t watch_call(CommOp op, int peer = -1) const;
  // r, told what its wait is (checked: an implementation returned a request).
  std::unique_ptr<Request> watched_request(std::unique_ptr<Request> r, const char* what, CommOp wait_op, int peer = -1) const;
  // Validation helpers: each throws Error naming `what` and this group.
  void check_count(const char* what, const char* arg, int64_t count) const;
  void check_buffer(const char* what, const char* arg, const void* buf, int64_t count) const;
  void check_dtype(const char* what, DType dt) const;
  void check_rank(const char* what, const char* arg, int r) const;
  void check_tag(const char* what, int tag) const;
  int64_t check_counts(const char* what, const char* arg, const std::vector<int64_t>& counts) const;  // returns Σ
  // Payload bytes of one call: stats(), and --profile's per-group figures (comm_profile.h).
  void record(const char* kind, int64_t bytes);
  // One collective's checks and byte statistics, shared by its blocking and non-blocking form.
  void admit_all_reduce(const char* what, const void* buf, int64_t count, DType dt);
  void admit_reduce_scatter(const char* what, const void* send, const void* recv, int64_t recv_count, DType dt);
  void admit_all_gather_v(const char* what, const void* send, const void* recv, const std::vector<int64_t>& counts, DType dt);
  void admit_all_to_all_v(const char* what, const void* send, const std::vector<int64_t>& send_counts, const void* recv,
                          const std::vector<int64_t>& recv_counts, DType dt);
  void admit_broadcast(const char* what, const void* buf, int64_t count, DType dt, int root);
  // send/recv and their non-blocking forms; `sending` counts the payload as sent bytes.
  void admit_p2p(const char* what, const char* peer_arg, const void* buf, int64_t count, DType dt, int peer, int tag,
                 bool sending);

  CommStats stats_;
  std::string name_ = "group";
  std::vector<int> world_rank_of_;  // this group's ranks as world ranks (register_members)
  uint32_t watch_id_ = 0, watch_kind_ = 0;
};

// The world communicator over MPI_COMM_WORLD (MPI must be initialised: MpiRuntime).
std::unique_ptr<Communicator> mpi_world_communicator();
// The same ranks over NCCL (nccl_communicator.cpp; in the SIMT emulator, or without NCCL, its MPI
// stand-in), for buffers on `device` (a CUDA device: cuda::set_device first). Collective.
std::unique_ptr<Communicator> nccl_world_communicator(Device device);

}  // namespace mlamoe
