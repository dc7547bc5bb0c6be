#include "model/tensor/cuda/caching_allocator.h"

#include <algorithm>
#include <bit>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/error.h"

namespace mlamoe::cuda {

namespace {

constexpr int kMaxDevices = 64;

struct DevicePool {
  // (stream, size class) -> cached blocks: a block goes back only to its own stream's requests
  std::map<std::pair<void*, size_t>, std::vector<void*>> free_blocks;
  std::unordered_map<void*, void*> stream_of;  // each block handed out -> the stream it was allocated on
  MemoryStats stats;
};

struct Pools {
  std::mutex mutex;
  DevicePool device[kMaxDevices];
};

Pools& pools() {
  static Pools* p = new Pools;  // never destroyed: tensors freed during exit still find it
  return *p;
}

DevicePool& pool(int device) {
  MLAMOE_CHECK(device >= 0 && device < kMaxDevices, "CUDA device index " << device << " is out of range");
  return pools().device[device];
}

void note_allocated(MemoryStats& s, int64_t bytes) {
  s.allocated_bytes += bytes;
  s.peak_allocated_bytes = std::max(s.peak_allocated_bytes, s.allocated_bytes);
  s.peak_reserved_bytes = std::max(s.peak_reserved_bytes, s.reserved_bytes);
}

void release_locked(DevicePool& p, int device) {
  for (auto& [key, blocks] : p.free_blocks) {
    for (void* b : blocks) {
      raw_free(b, device);
      p.stats.reserved_bytes -= static_cast<int64_t>(key.second);
      ++p.stats.raw_frees;
    }
  }
  p.free_blocks.clear();
}

}  // namespace

size_t device_size_class(size_t nbytes) {
  constexpr size_t kSmall = 64 << 10;
  if (nbytes <= kSmall) return std::max<size_t>(512, (nbytes + 511) / 512 * 512);
  // Eight classes per power of two: round up to a multiple of 2^(floor(log2 n) − 3).
  size_t step = std::bit_floor(nbytes) >> 3;
  return (nbytes + step - 1) / step * step;
}

void* device_alloc(size_t nbytes, int device) {
  size_t size = device_size_class(nbytes);
  std::lock_guard<std::mutex> lock(pools().mutex);
  DevicePool& p = pool(device);
  void* stream = current_stream();  // the block is reused only by this stream's requests (stream.h)
  auto it = p.free_blocks.find({stream, size});
  if (it != p.free_blocks.end() && !it->second.empty()) {
    void* b = it->second.back();
    it->second.pop_back();
    ++p.stats.hits;
    note_allocated(p.stats, static_cast<int64_t>(size));
    p.stream_of[b] = stream;
    return b;
  }
  void* b = raw_alloc(size, device);
  if (!b) {  // out of memory: hand the cache back to the driver and try once more
    release_locked(p, device);
    b = raw_alloc(size, device);
  }
  MLAMOE_CHECK(b, "CUDA out of memory on cuda:" << device << ": asked for " << nbytes << " bytes with " << p.stats.allocated_bytes
                                                << " bytes allocated by tensors");
  ++p.stats.raw_allocs;
  p.stats.reserved_bytes += static_cast<int64_t>(size);
  note_allocated(p.stats, static_cast<int64_t>(size));
  p.stream_of[b] = stream;
  return b;
}

void device_free(void* b, size_t nbytes, int device) {
  if (!b) return;
  size_t size = device_size_class(nbytes);
  std::lock_guard<std::mutex> lock(pools().mutex);
  DevicePool& p = pool(device);
  p.stats.allocated_bytes -= static_cast<int64_t>(size);
  auto it = p.stream_of.find(b);
  void* stream = nullptr;
  if (it != p.stream_of.end()) {
    stream = it->second;
    p.stream_of.erase(it);
  }
  p.free_blocks[{stream, size}].push_back(b);
}

MemoryStats memory_stats(int device) {
  std::lock_guard<std::mutex> lock(pools().mutex);
  return pool(device).stats;
}

void reset_peak_memory_stats(int device) {
  std::lock_guard<std::mutex> lock(pools().mutex);
  MemoryStats& s = pool(device).stats;
  s.peak_allocated_bytes = s.allocated_bytes;
  s.peak_reserved_bytes = s.reserved_bytes;
}

void release_cached_memory(int device) {
  std::lock_guard<std::mutex> lock(pools().mutex);
  release_locked(pool(device), device);
}

}  // namespace mlamoe::cuda
