// The NCCL calls NcclCommunicator (nccl_communicator.cpp) makes, behind one small interface with
// two implementations:
//   - on a GPU, the NCCL library (nccl_api_gpu.cpp, CUDA builds with NCCL): device buffers,
//     work queued on the calling thread's current CUDA stream (model/tensor/cuda/stream.h);
//   - everywhere, an MPI stand-in with NCCL's semantics (nccl_api_mpi.cpp): the same calls and
//     the same grouping (point-to-point calls between group_start and group_end are posted
//     together and complete together), on the SIMT emulator's device memory, which is host RAM.
// So CI runs the NCCL communicator's own logic (how all-gather-v and all-to-all-v become grouped
// sends and receives, how host buffers are staged, how groups split) without a GPU.
//
// Buffers are device memory; counts are elements; NCCL has no tags, so messages between two
// ranks match in the order they are posted.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/tensor/dtype.h"
#include "parallel/communicator.h"

namespace mlamoe {

class NcclApi {
 public:
  virtual ~NcclApi() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "NCCL 2.x.y" or "MPI stand-in"

  virtual void all_reduce(void* buf, int64_t count, DType dt, ReduceOp op) = 0;  // in place
  // send: size()·recv_count elements; recv: recv_count
  virtual void reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dt) = 0;
  virtual void broadcast(void* buf, int64_t count, DType dt, int root) = 0;  // in place
  virtual void send(const void* buf, int64_t count, DType dt, int peer) = 0;
  virtual void recv(void* buf, int64_t count, DType dt, int peer) = 0;
  virtual void group_start() = 0;
  virtual void group_end() = 0;
  // Waits until this communicator's queued work is done (the host reads a result).
  virtual void synchronize() = 0;
  // Throws mlamoe::Error when the library reports an asynchronous error (a failed peer).
  virtual void check_async_error() = 0;
  // The ranks passing the same color, ordered by key (collective over this communicator).
  virtual std::unique_ptr<NcclApi> split(int color, int key) = 0;
  // This communicator's ranks as MPI_COMM_WORLD ranks (for the watchdog's report).
  virtual std::vector<int> world_ranks() const = 0;
};

// Over MPI_COMM_WORLD (MPI initialised; on a GPU, after cuda::set_device): NCCL where this build
// has it and the CUDA backend is the GPU, else the MPI stand-in.
std::unique_ptr<NcclApi> nccl_world_api();
std::unique_ptr<NcclApi> nccl_mpi_standin_world();  // nccl_api_mpi.cpp
#ifdef MLAMOE_WITH_NCCL
std::unique_ptr<NcclApi> nccl_gpu_world();  // nccl_api_gpu.cpp
#endif

}  // namespace mlamoe
