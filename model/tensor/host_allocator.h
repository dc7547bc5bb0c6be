// Host (CPU) memory for tensor storage, with a cache of freed blocks.
//
// A training step allocates the same large buffers every step (activations, logits, gradients).
// Taken from and given back to the operating system each time, every page of them is faulted in
// and zeroed by the kernel again: on configs/small.json that cost 40% of the step. Freed blocks of
// 64 KiB and more are therefore kept, by size class (eight per power of two, so a block is at most
// 12.5% larger than asked), and handed out again for the next request of that class. Smaller
// blocks go straight to malloc, which keeps them in its own arenas.
//
// The cache is bounded: live plus cached bytes never exceed 1.5× the most bytes ever live at once
// (a step's working set; the headroom absorbs sizes that change every step); when a new block would
// take them over,
// the least recently freed blocks go back to the system first (sizes no longer asked for give way).
// MLAMOE_HOST_CACHE_MB bounds the cached bytes instead (0 turns caching off: use it for sanitizer
// runs, which cannot see a use after free inside the cache).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mlamoe {

void* host_alloc(size_t nbytes);         // 64-byte aligned, uninitialised
void host_free(void* p, size_t nbytes);  // nbytes as passed to host_alloc

struct HostAllocatorStats {
  int64_t live_bytes = 0;       // handed out and not yet freed (rounded to the size class)
  int64_t peak_live_bytes = 0;  // the most live at once
  int64_t cached_bytes = 0;     // freed, kept for reuse
  int64_t hits = 0;             // requests served from the cache
  int64_t misses = 0;           // cacheable requests that went to the system
};
HostAllocatorStats host_allocator_stats();

// Start peak_live_bytes afresh from the bytes live now (to measure one phase's peak).
void host_allocator_reset_peak();

// Give every cached block back to the system (e.g. before a phase with different shapes).
void host_allocator_release();

}  // namespace mlamoe
