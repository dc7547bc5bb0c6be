#include "parallel/host_staging.h"

#include "model/tensor/cuda/backend.h"

namespace mlamoe {

HostStage::HostStage(const void* p, size_t bytes, bool copy_in)
    : p_(p), bytes_(bytes), device_(p && bytes ? cuda::device_of_pointer(p) : -1) {
  if (device_ < 0) return;
  copy_ = std::unique_ptr<char, HostFree>(static_cast<char*>(host_alloc(bytes)), HostFree{bytes});
  // cuda::copy waits for the kernels queued before it (stream order): the bytes are final.
  if (copy_in) cuda::copy(copy_.get(), Device::cpu(), p, Device::cuda(device_), bytes);
}

void HostStage::copy_out() {
  if (device_ < 0) return;
  cuda::copy(const_cast<void*>(p_), Device::cuda(device_), copy_.get(), Device::cpu(), bytes_);
}

}  // namespace mlamoe
