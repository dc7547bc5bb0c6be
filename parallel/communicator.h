// The Communicator interface (DESIGN.md "Core abstractions"): the collectives and point-to-point
// messages the distributed runtime needs, over raw buffers of a dtype, blocking and non-blocking.
// Implementations: MPI (mpi_communicator.cpp, always) and NCCL (CUDA builds, later) — the same
// interface, so the DP/EP/PP machinery and its tests run unchanged on either.
//
// Every communicator counts the payload bytes each collective kind sent from this rank, so a
// benchmark can print bytes per step next to the analytic value for a layout.
//
// Every blocking call (and Request::wait) records what the rank is blocked in for the collective
// watchdog (parallel/watchdog.h): a couple of relaxed atomic stores, no syscall.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/tensor/dtype.h"

namespace mlamoe {

enum class ReduceOp { Sum, Max };

// A non-blocking operation in flight; wait() completes it (the destructor waits too).
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
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

  // In place over `count` elements.
  virtual void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) = 0;
  virtual std::unique_ptr<Request> iall_reduce(void* buf, int64_t count, DType dt, ReduceOp op) = 0;
  // send holds size()·recv_count elements; rank r receives the sum of every rank's block r.
  virtual void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) = 0;
  virtual std::unique_ptr<Request> ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) = 0;
  // recv holds the concatenation of every rank's `counts[r]` elements (counts known to all).
  virtual void all_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) = 0;
  virtual std::unique_ptr<Request> iall_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) = 0;
  // Block r of `send` (send_counts[r] elements, consecutive) goes to rank r; recv holds, in rank
  // order, recv_counts[r] elements from rank r.
  virtual void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                            const std::vector<int64_t>& recv_counts, DType dt) = 0;
  virtual std::unique_ptr<Request> iall_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                                 const std::vector<int64_t>& recv_counts, DType dt) = 0;
  virtual void broadcast(void* buf, int64_t count, DType dt, int root) = 0;
  virtual std::unique_ptr<Request> ibroadcast(void* buf, int64_t count, DType dt, int root) = 0;
  virtual void send(const void* buf, int64_t count, DType dt, int dest, int tag) = 0;
  virtual void recv(void* buf, int64_t count, DType dt, int source, int tag) = 0;
  virtual std::unique_ptr<Request> isend(const void* buf, int64_t count, DType dt, int dest, int tag) = 0;
  virtual std::unique_ptr<Request> irecv(void* buf, int64_t count, DType dt, int source, int tag) = 0;
  virtual void barrier() = 0;
  virtual std::unique_ptr<Request> ibarrier() = 0;

  // A sub-communicator of the ranks passing the same color, ordered by key (collective).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // The group's name in messages (the mesh's "dp", "ep", "edp", "pp", "embed"; "world"). A rank
  // that times out waiting in one of its calls names it (parallel/watchdog.h).
  virtual void set_name(const std::string& name) { name_ = name; }
  const std::string& name() const { return name_; }

  CommStats& stats() { return stats_; }

  // Typed conveniences.
  void all_reduce_sum(std::vector<int64_t>& v) { all_reduce(v.data(), static_cast<int64_t>(v.size()), DType::I64, ReduceOp::Sum); }
  void all_reduce_sum(std::vector<double>& v) { all_reduce(v.data(), static_cast<int64_t>(v.size()), DType::F64, ReduceOp::Sum); }
  double all_reduce_sum(double x) {
    all_reduce(&x, 1, DType::F64, ReduceOp::Sum);
    return x;
  }

 protected:
  CommStats stats_;
  std::string name_ = "group";
};

// The world communicator over MPI_COMM_WORLD (MPI must be initialised: MpiRuntime).
std::unique_ptr<Communicator> mpi_world_communicator();

}  // namespace mlamoe
