// Device memory for CUDA tensors, cached: a training step asks for the same buffers every step,
// and cudaMalloc/cudaFree synchronise the whole device, so freed blocks are kept and handed out
// again instead of going back to the driver (PyTorch's CUDA caching allocator does the same).
//
// Requests are rounded up to a size class (512 B granularity below 64 KiB, then eight classes per
// power of two, so a block is at most 12.5% larger than asked) and a freed block waits in its
// class's free list for the next request of that class. No block is split or merged: a step's
// shapes repeat, so after the first step every request finds a block of its class. When the
// device runs out, every cached block is released and the request is tried once more; if that
// fails too, the error names the request and the device's allocated and cached bytes.
//
// Blocks are reused in stream order: a freed block goes back only to requests made on the stream
// that allocated it (the thread's current stream, stream.h), so it is written again only by work
// queued after its last reader on that stream.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mlamoe::cuda {

struct MemoryStats {
  int64_t allocated_bytes = 0;       // in blocks handed out (rounded to their class)
  int64_t reserved_bytes = 0;        // allocated + cached: what the driver has given us
  int64_t peak_allocated_bytes = 0;  // the most allocated at once since the last reset_peak
  int64_t peak_reserved_bytes = 0;
  int64_t raw_allocs = 0;  // cudaMalloc calls (a warmed-up training step makes none)
  int64_t raw_frees = 0;
  int64_t hits = 0;  // requests served from the cache
};

void* device_alloc(size_t nbytes, int device);         // throws mlamoe::Error when out of memory
void device_free(void* p, size_t nbytes, int device);  // nbytes as passed to device_alloc

MemoryStats memory_stats(int device);
void reset_peak_memory_stats(int device);  // peaks start afresh from what is allocated now
void release_cached_memory(int device);    // give every cached block back to the driver

// The size class a request of nbytes is served from (exposed for the tests).
size_t device_size_class(size_t nbytes);

}  // namespace mlamoe::cuda
