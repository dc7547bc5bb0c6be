#include "model/tensor/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "model/tensor/error.h"
#include "model/tensor/host_allocator.h"

namespace mlamoe {

namespace {
std::atomic<int64_t> g_live_bytes[2];
}  // namespace

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    data_ = host_alloc(nbytes);
  } else {
    data_ = detail::cuda_alloc(nbytes, device.index);
  }
  g_live_bytes[static_cast<int>(device.type)] += static_cast<int64_t>(nbytes);
}

Storage::~Storage() {
  g_live_bytes[static_cast<int>(device_.type)] -= static_cast<int64_t>(nbytes_);
  if (device_.is_cpu()) {
    host_free(data_, nbytes_);
  } else {
    detail::cuda_free(data_, device_.index);
  }
}

int64_t Storage::live_bytes(DeviceType type) { return g_live_bytes[static_cast<int>(type)].load(); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
  } else {
    detail::cuda_copy(dst, dst_device, src, src_device, nbytes);
  }
}

#ifndef MLAMOE_WITH_CUDA
int cuda_device_count() { return 0; }
namespace detail {
void* cuda_alloc(size_t, int) {
  throw Error("CUDA tensor requested, but this build has no CUDA backend (configure with -DMLAMOE_CUDA=ON)");
}
void cuda_free(void*, int) {}
void cuda_copy(void*, Device, const void*, Device, size_t) {
  throw Error("CUDA copy requested, but this build has no CUDA backend");
}
}  // namespace detail
#endif

}  // namespace mlamoe
