// Storage: one allocation on one device, shared by every tensor view of it. Host memory comes from
// host_allocator.h, CUDA memory from the caching allocator (model/tensor/cuda/caching_allocator.h).
// Live bytes are counted per device so that tests can prove a finished backward frees its memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/tensor/device.h"

namespace mlamoe {

class Storage {
 public:
  Storage(size_t nbytes, Device device);  // uninitialised memory
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Bytes currently allocated by live Storage objects on that device type.
  static int64_t live_bytes(DeviceType type);

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Copy bytes between (possibly different) devices; the host waits for the copy.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace mlamoe
