#include "model/tensor/storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/caching_allocator.h"
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
    data_ = cuda::device_alloc(nbytes, device.index);
  }
  g_live_bytes[static_cast<int>(device.type)] += static_cast<int64_t>(nbytes);
}

Storage::~Storage() {
  g_live_bytes[static_cast<int>(device_.type)] -= static_cast<int64_t>(nbytes_);
  if (device_.is_cpu()) {
    host_free(data_, nbytes_);
  } else {
    cuda::device_free(data_, nbytes_, device_.index);
  }
}

int64_t Storage::live_bytes(DeviceType type) { return g_live_bytes[static_cast<int>(type)].load(); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
  } else {
    cuda::copy(dst, dst_device, src, src_device, nbytes);
  }
}

}  // namespace mlamoe
