// The MPI stand-in for NCCL (nccl_api.h): each call is the MPI operation NCCL's call performs, on
// the same buffers (the SIMT emulator's device memory is host RAM), and point-to-point calls
// between group_start and group_end are posted together as non-blocking MPI operations and
// completed at group_end, as NCCL completes a group together. Everything has finished when a
// call returns, as the emulator's kernels have. Sends are synchronous (MPI_Issend: complete only
// once the peer's receive has started), so a rank's groups run strictly one after another and a
// send waits for its receiver, as on NCCL's stream; MPI's eager delivery of small messages would
// hide an ordering that deadlocks on a GPU.
#include <mpi.h>

#include <vector>

#include "model/tensor/error.h"
#include "parallel/mpi_types.h"
#include "parallel/nccl_api.h"

namespace mlamoe {

namespace {

void check(int rc, const char* what) {
  MLAMOE_CHECK(rc == MPI_SUCCESS, "NCCL stand-in: MPI " << what << " failed (code " << rc << ")");
}

// A fixed tag for the stand-in's messages: NCCL has none, and MPI keeps the order of messages
// between two ranks with the same tag, which is NCCL's matching rule.
constexpr int kTag = 7001;

class MpiStandIn final : public NcclApi {
 public:
  explicit MpiStandIn(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiStandIn() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "MPI stand-in for NCCL"; }

  void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) override {
    check(MPI_Allreduce(MPI_IN_PLACE, buf, static_cast<int>(count), mpi_type(dt), mpi_op(op), comm_), "all_reduce");
  }
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) override {
    check(MPI_Reduce_scatter_block(send, recv, static_cast<int>(recv_count), mpi_type(dt), MPI_SUM, comm_), "reduce_scatter");
  }
  void broadcast(void* buf, int64_t count, DType dt, int root) override {
    check(MPI_Bcast(buf, static_cast<int>(count), mpi_type(dt), root, comm_), "broadcast");
  }
  void send(const void* buf, int64_t count, DType dt, int peer) override { post(true, const_cast<void*>(buf), count, dt, peer); }
  void recv(void* buf, int64_t count, DType dt, int peer) override { post(false, buf, count, dt, peer); }
  void group_start() override { ++depth_; }
  void group_end() override {
    MLAMOE_CHECK(depth_ > 0, "NCCL stand-in: group_end without group_start");
    if (--depth_ == 0) complete();
  }
  void synchronize() override {}
  void check_async_error() override {}
  std::unique_ptr<NcclApi> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "comm_split");
    return std::make_unique<MpiStandIn>(sub);
  }
  std::vector<int> world_ranks() const override { return world_ranks_of(comm_); }

 private:
  // Outside a group a send or receive is a group of one, as in NCCL.
  void post(bool sending, void* buf, int64_t count, DType dt, int peer) {
    MPI_Request r;
    if (sending)
      check(MPI_Issend(buf, static_cast<int>(count), mpi_type(dt), peer, kTag, comm_, &r), "issend");
    else
      check(MPI_Irecv(buf, static_cast<int>(count), mpi_type(dt), peer, kTag, comm_, &r), "irecv");
    pending_.push_back(r);
    if (depth_ == 0) complete();
  }
  void complete() {
    check(MPI_Waitall(static_cast<int>(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "waitall");
    pending_.clear();
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, depth_ = 0;
  std::vector<MPI_Request> pending_;
};

}  // namespace

std::unique_ptr<NcclApi> nccl_mpi_standin_world() {
  MPI_Comm dup;
  check(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "comm_dup");  // its own context: no message mixes with the MPI communicator's
  return std::make_unique<MpiStandIn>(dup);
}

}  // namespace mlamoe
