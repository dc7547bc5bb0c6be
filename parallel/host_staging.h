// Communication buffers on a CUDA device, moved through host memory for MPI (which here is not
// CUDA-aware): the MPI communicator stages every buffer that device memory holds
// (cuda::device_of_pointer) into a host copy before the call and writes received data back after
// it, so every collective and message of the distributed runtime takes tensors on either device
// (parallel/README.md "Devices"). Several ranks may share one GPU this way, which NCCL refuses.
// In the SIMT emulator device memory is host RAM, but it is staged all the same: the emulated
// tests run the staging path that a GPU run takes.
#pragma once
#include <cstddef>
#include <memory>

#include "model/tensor/host_allocator.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

// The buffer a communicator call takes for t, wherever t lives (host or device memory).
inline void* comm_buffer(const Tensor& t) { return t.device_raw_data(); }

// Returns a host_alloc block of `bytes` bytes (the deleter of a staging copy).
struct HostFree {
  size_t bytes = 0;
  void operator()(char* p) const { host_free(p, bytes); }
};

// One buffer of a call: host memory is used in place; device memory through a host copy.
class HostStage {
 public:
  // p: `bytes` bytes in host or device memory (null with 0 bytes); copy_in: the call reads them.
  HostStage(const void* p, size_t bytes, bool copy_in);
  HostStage(const HostStage&) = delete;
  HostStage& operator=(const HostStage&) = delete;
  HostStage(HostStage&&) = default;

  void* host() { return device_ < 0 ? const_cast<void*>(p_) : copy_.get(); }
  // After the call: a device buffer gets the host copy's bytes (what was received).
  void copy_out();

 private:
  const void* p_;
  size_t bytes_;
  int device_;  // -1: host memory, used in place
  // The host copy, from the host allocator's cache (model/tensor/host_allocator.h): a training
  // step stages the same sizes every step, so the steady state allocates nothing.
  std::unique_ptr<char, HostFree> copy_;
};

}  // namespace mlamoe
