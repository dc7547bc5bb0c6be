// NCCL itself (nccl_api.h), for builds with CUDA and NCCL on a GPU. The world communicator is
// bootstrapped through MPI (one ncclUniqueId made by rank 0 and broadcast), groups are split
// with ncclCommSplit, and every call is queued on the calling thread's current CUDA stream
// (stream.h), so it is ordered with the kernels around it without a host wait.
#ifdef MLAMOE_WITH_NCCL
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/error.h"
#include "parallel/nccl_api.h"

namespace mlamoe {

namespace {

void check(ncclResult_t r, const char* what) {
  MLAMOE_CHECK(r == ncclSuccess,
               "NCCL " << what << " failed: " << ncclGetErrorString(r)
                       << (r == ncclInvalidUsage ? " (two ranks on one GPU? NCCL needs one GPU per rank)" : ""));
}

void check_cuda(cudaError_t e, const char* what) {
  MLAMOE_CHECK(e == cudaSuccess, "CUDA " << what << " failed: " << cudaGetErrorString(e));
}

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    case DType::U8:
      return ncclUint8;
    case DType::BF16:
      return ncclBfloat16;
  }
  return ncclUint8;
}

cudaStream_t stream() { return static_cast<cudaStream_t>(cuda::current_stream()); }

class NcclGpu final : public NcclApi {
 public:
  NcclGpu(ncclComm_t comm, std::vector<int> world) : comm_(comm), world_(std::move(world)) {
    check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
    check(ncclCommCount(comm_, &size_), "ncclCommCount");
    int v = 0;
    ncclGetVersion(&v);
    name_ = "NCCL " + std::to_string(v);
  }
  ~NcclGpu() override { ncclCommDestroy(comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return name_.c_str(); }

  void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) override {
    check(ncclAllReduce(buf, buf, static_cast<size_t>(count), nccl_type(dt), op == ReduceOp::Sum ? ncclSum : ncclMax, comm_,
                        stream()),
          "all_reduce");
  }
  void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) override {
    check(ncclReduceScatter(send, recv, static_cast<size_t>(recv_count), nccl_type(dt), ncclSum, comm_, stream()),
          "reduce_scatter");
  }
  void broadcast(void* buf, int64_t count, DType dt, int root) override {
    check(ncclBroadcast(buf, buf, static_cast<size_t>(count), nccl_type(dt), root, comm_, stream()), "broadcast");
  }
  void send(const void* buf, int64_t count, DType dt, int peer) override {
    check(ncclSend(buf, static_cast<size_t>(count), nccl_type(dt), peer, comm_, stream()), "send");
  }
  void recv(void* buf, int64_t count, DType dt, int peer) override {
    check(ncclRecv(buf, static_cast<size_t>(count), nccl_type(dt), peer, comm_, stream()), "recv");
  }
  void group_start() override { check(ncclGroupStart(), "group_start"); }
  void group_end() override { check(ncclGroupEnd(), "group_end"); }
  // Polls instead of cudaStreamSynchronize: a peer that failed or vanished shows up as NCCL's
  // asynchronous error (and the collective watchdog, which sees this wait, aborts the job after
  // train.collective_timeout_s) instead of a wait that never returns.
  void synchronize() override {
    cuda::HostWait waiting;  // the watchdog sees it (inside a blocking call, it is that call's)
    for (;;) {
      cudaError_t e = cudaStreamQuery(stream());
      if (e == cudaSuccess) break;
      MLAMOE_CHECK(e == cudaErrorNotReady, "NCCL: waiting for the stream failed: " << cudaGetErrorString(e));
      check_async_error();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    check_async_error();
  }
  void check_async_error() override {
    ncclResult_t async = ncclSuccess;
    check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
    check(async, "(asynchronous error: a peer failed or the network broke)");
  }
  std::unique_ptr<NcclApi> split(int color, int key) override {
    ncclComm_t sub = nullptr;
    check(ncclCommSplit(comm_, color, key, &sub, nullptr), "ncclCommSplit");
    // The sub-group's world ranks: every rank's (color, key, world rank), gathered over this group.
    std::vector<int> mine = {color, key, world_[rank_]}, all(3 * size_);
    struct DeviceInts {  // freed on every path out, an error's included
      int* p = nullptr;
      ~DeviceInts() { cudaFree(p); }
    } dev;
    check_cuda(cudaMalloc(&dev.p, all.size() * sizeof(int)), "cudaMalloc (split)");
    // On the current stream, in order with the gather; the host reads the result after the wait.
    check_cuda(cudaMemcpyAsync(dev.p + 3 * rank_, mine.data(), 3 * sizeof(int), cudaMemcpyHostToDevice, stream()),
               "cudaMemcpyAsync (split)");
    check(ncclAllGather(dev.p + 3 * rank_, dev.p, 3, ncclInt32, comm_, stream()), "all_gather (split)");
    check_cuda(cudaMemcpyAsync(all.data(), dev.p, all.size() * sizeof(int), cudaMemcpyDeviceToHost, stream()),
               "cudaMemcpyAsync (split)");
    synchronize();
    std::vector<std::pair<int, int>> members;  // (key, world rank) of my color
    for (int r = 0; r < size_; ++r)
      if (all[3 * r] == color) members.push_back({all[3 * r + 1], all[3 * r + 2]});
    std::stable_sort(members.begin(), members.end(), [](auto a, auto b) { return a.first < b.first; });
    std::vector<int> world;
    for (auto& m : members) world.push_back(m.second);
    return std::make_unique<NcclGpu>(sub, std::move(world));
  }
  std::vector<int> world_ranks() const override { return world_; }

 private:
  ncclComm_t comm_;
  std::vector<int> world_;
  int rank_ = 0, size_ = 1;
  std::string name_;
};

}  // namespace

std::unique_ptr<NcclApi> nccl_gpu_world() {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ncclUniqueId id;
  if (rank == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
  ncclComm_t comm = nullptr;
  check(ncclCommInitRank(&comm, size, id, rank), "ncclCommInitRank");
  std::vector<int> world(size);
  std::iota(world.begin(), world.end(), 0);
  return std::make_unique<NcclGpu>(comm, std::move(world));
}

}  // namespace mlamoe
#endif  // MLAMOE_WITH_NCCL
