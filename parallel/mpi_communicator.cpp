// The MPI implementation of Communicator. Counts above 2^31 elements are not split: a single
// message of that size is far beyond what one step sends here, and MPI reports it as an error.
// Every call that can block (blocking collectives, send/recv, split, Request::wait and the wait in
// a request's destructor) runs inside a BlockingCall, which tells the collective watchdog what the
// rank waits in (parallel/watchdog.h).
#include <mpi.h>

#include <numeric>

#include "model/tensor/error.h"
#include "parallel/communicator.h"
#include "parallel/watchdog.h"

namespace mlamoe {

namespace {

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::U8:
      return MPI_UINT8_T;
    case DType::BF16:
      return MPI_UINT16_T;  // moved, never reduced
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX; }

int as_int(int64_t n, const char* what) {
  MLAMOE_CHECK(n >= 0 && n <= INT32_MAX, "MPI " << what << ": count " << n << " does not fit a 32-bit MPI count");
  return static_cast<int>(n);
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, len));
  }
}

class MpiRequest final : public Request {
 public:
  explicit MpiRequest(uint64_t call) : call_(call) {}  // call: pack_call() of the operation's wait
  // Counts and displacements of a v-collective must outlive it: the request keeps them.
  std::vector<int> keep[4];
  ~MpiRequest() override {
    if (req_ != MPI_REQUEST_NULL) {
      BlockingCall blocked(call_);
      MPI_Wait(&req_, MPI_STATUS_IGNORE);
    }
  }
  void wait() override {
    BlockingCall blocked(call_);
    check(MPI_Wait(&req_, MPI_STATUS_IGNORE), "wait");
  }
  MPI_Request* handle() { return &req_; }

 private:
  MPI_Request req_ = MPI_REQUEST_NULL;
  uint64_t call_;
};

std::vector<int> to_ints(const std::vector<int64_t>& v, const char* what) {
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = as_int(v[i], what);
  return out;
}

std::vector<int> displacements(const std::vector<int>& counts) {
  std::vector<int> d(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // Errors come back as codes (turned into mlamoe::Error) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    // The members as world ranks, for the watchdog's report and for naming a send/recv peer.
    MPI_Group group, world_group;
    MPI_Comm_group(comm_, &group);
    MPI_Comm_group(MPI_COMM_WORLD, &world_group);
    std::vector<int> local(size_);
    std::iota(local.begin(), local.end(), 0);
    world_rank_of_.resize(size_);
    MPI_Group_translate_ranks(group, size_, local.data(), world_group, world_rank_of_.data());
    MPI_Group_free(&group);
    MPI_Group_free(&world_group);
    id_ = register_communicator(world_rank_of_);
    MpiCommunicator::set_name(comm == MPI_COMM_WORLD ? "world" : "group");
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void set_name(const std::string& name) override {
    name_ = name;
    kind_ = comm_kind_of(name);
  }

  void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) override {
    stats_.add("all_reduce", count * static_cast<int64_t>(dtype_size(dt)));
    BlockingCall blocked(call(CommOp::AllReduce));
    check(MPI_Allreduce(MPI_IN_PLACE, buf, as_int(count, "all_reduce"), mpi_type(dt), mpi_op(op), comm_), "all_reduce");
  }
  std::unique_ptr<Request> iall_reduce(void* buf, int64_t count, DType dt, ReduceOp op) override {
    stats_.add("all_reduce", count * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitAllReduce));
    check(MPI_Iallreduce(MPI_IN_PLACE, buf, as_int(count, "iall_reduce"), mpi_type(dt), mpi_op(op), comm_, r->handle()), "iall_reduce");
    return r;
  }
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) override {
    stats_.add("reduce_scatter", recv_count * size_ * static_cast<int64_t>(dtype_size(dt)));
    BlockingCall blocked(call(CommOp::ReduceScatter));
    check(MPI_Reduce_scatter_block(send, recv, as_int(recv_count, "reduce_scatter"), mpi_type(dt), MPI_SUM, comm_), "reduce_scatter");
  }
  std::unique_ptr<Request> ireduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) override {
    stats_.add("reduce_scatter", recv_count * size_ * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitReduceScatter));
    check(MPI_Ireduce_scatter_block(send, recv, as_int(recv_count, "ireduce_scatter"), mpi_type(dt), MPI_SUM, comm_, r->handle()),
          "ireduce_scatter");
    return r;
  }
  std::unique_ptr<Request> iall_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) override {
    MLAMOE_CHECK(static_cast<int>(counts.size()) == size_, "iall_gather_v: " << counts.size() << " counts for " << size_ << " ranks");
    stats_.add("all_gather", counts[rank_] * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitAllGatherV));
    r->keep[0] = to_ints(counts, "iall_gather_v");
    r->keep[1] = displacements(r->keep[0]);
    check(MPI_Iallgatherv(send, r->keep[0][rank_], mpi_type(dt), recv, r->keep[0].data(), r->keep[1].data(), mpi_type(dt), comm_,
                          r->handle()),
          "iall_gather_v");
    return r;
  }
  std::unique_ptr<Request> iall_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv,
                                         const std::vector<int64_t>& recv_counts, DType dt) override {
    MLAMOE_CHECK(static_cast<int>(send_counts.size()) == size_ && static_cast<int>(recv_counts.size()) == size_,
                 "iall_to_all_v: counts for " << send_counts.size() << "/" << recv_counts.size() << " ranks, the group has " << size_);
    int64_t sent = std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0}) - send_counts[rank_];
    stats_.add("all_to_all", sent * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitAllToAllV));
    r->keep[0] = to_ints(send_counts, "iall_to_all_v");
    r->keep[1] = displacements(r->keep[0]);
    r->keep[2] = to_ints(recv_counts, "iall_to_all_v");
    r->keep[3] = displacements(r->keep[2]);
    check(MPI_Ialltoallv(send, r->keep[0].data(), r->keep[1].data(), mpi_type(dt), recv, r->keep[2].data(), r->keep[3].data(),
                         mpi_type(dt), comm_, r->handle()),
          "iall_to_all_v");
    return r;
  }
  std::unique_ptr<Request> ibroadcast(void* buf, int64_t count, DType dt, int root) override {
    if (rank_ == root) stats_.add("broadcast", count * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitBroadcast));
    check(MPI_Ibcast(buf, as_int(count, "ibroadcast"), mpi_type(dt), root, comm_, r->handle()), "ibroadcast");
    return r;
  }
  std::unique_ptr<Request> ibarrier() override {
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitBarrier));
    check(MPI_Ibarrier(comm_, r->handle()), "ibarrier");
    return r;
  }
  void all_gather_v(const void* send, void* recv, const std::vector<int64_t>& counts, DType dt) override {
    MLAMOE_CHECK(static_cast<int>(counts.size()) == size_, "all_gather_v: " << counts.size() << " counts for " << size_ << " ranks");
    stats_.add("all_gather", counts[rank_] * static_cast<int64_t>(dtype_size(dt)));
    std::vector<int> c = to_ints(counts, "all_gather_v"), d = displacements(c);
    BlockingCall blocked(call(CommOp::AllGatherV));
    check(MPI_Allgatherv(send, c[rank_], mpi_type(dt), recv, c.data(), d.data(), mpi_type(dt), comm_), "all_gather_v");
  }
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, void* recv, const std::vector<int64_t>& recv_counts,
                    DType dt) override {
    MLAMOE_CHECK(static_cast<int>(send_counts.size()) == size_ && static_cast<int>(recv_counts.size()) == size_,
                 "all_to_all_v: counts for " << send_counts.size() << "/" << recv_counts.size() << " ranks, the group has " << size_);
    int64_t sent = std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0}) - send_counts[rank_];
    stats_.add("all_to_all", sent * static_cast<int64_t>(dtype_size(dt)));
    std::vector<int> sc = to_ints(send_counts, "all_to_all_v"), rc = to_ints(recv_counts, "all_to_all_v");
    std::vector<int> sd = displacements(sc), rd = displacements(rc);
    BlockingCall blocked(call(CommOp::AllToAllV));
    check(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type(dt), recv, rc.data(), rd.data(), mpi_type(dt), comm_), "all_to_all_v");
  }
  void broadcast(void* buf, int64_t count, DType dt, int root) override {
    if (rank_ == root) stats_.add("broadcast", count * static_cast<int64_t>(dtype_size(dt)));
    BlockingCall blocked(call(CommOp::Broadcast));
    check(MPI_Bcast(buf, as_int(count, "broadcast"), mpi_type(dt), root, comm_), "broadcast");
  }
  void send(const void* buf, int64_t count, DType dt, int dest, int tag) override {
    stats_.add("send", count * static_cast<int64_t>(dtype_size(dt)));
    BlockingCall blocked(call(CommOp::Send, dest));
    check(MPI_Send(buf, as_int(count, "send"), mpi_type(dt), dest, tag, comm_), "send");
  }
  void recv(void* buf, int64_t count, DType dt, int source, int tag) override {
    BlockingCall blocked(call(CommOp::Recv, source));
    check(MPI_Recv(buf, as_int(count, "recv"), mpi_type(dt), source, tag, comm_, MPI_STATUS_IGNORE), "recv");
  }
  std::unique_ptr<Request> isend(const void* buf, int64_t count, DType dt, int dest, int tag) override {
    stats_.add("send", count * static_cast<int64_t>(dtype_size(dt)));
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitSend, dest));
    check(MPI_Isend(buf, as_int(count, "isend"), mpi_type(dt), dest, tag, comm_, r->handle()), "isend");
    return r;
  }
  std::unique_ptr<Request> irecv(void* buf, int64_t count, DType dt, int source, int tag) override {
    auto r = std::make_unique<MpiRequest>(call(CommOp::WaitRecv, source));
    check(MPI_Irecv(buf, as_int(count, "irecv"), mpi_type(dt), source, tag, comm_, r->handle()), "irecv");
    return r;
  }
  void barrier() override {
    BlockingCall blocked(call(CommOp::Barrier));
    check(MPI_Barrier(comm_), "barrier");
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    BlockingCall blocked(call(CommOp::Split));
    check(MPI_Comm_split(comm_, color, key, &sub), "comm_split");
    return std::make_unique<MpiCommunicator>(sub, true);
  }

 private:
  // What a blocking call or wait on this group is, for the watchdog (peer: a rank of this group).
  uint64_t call(CommOp op, int peer = -1) const {
    return pack_call(op, kind_, id_, peer >= 0 && peer < size_ ? world_rank_of_[peer] : -1);
  }

  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_rank_of_;  // this group's ranks as world ranks
  uint32_t id_ = 0, kind_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> mpi_world_communicator() { return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false); }

}  // namespace mlamoe
