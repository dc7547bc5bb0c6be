#include "model/tensor/host_allocator.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tensor/error.h"

namespace mlamoe {

namespace {

constexpr size_t kAlignment = 64;        // one cache line; what AVX-512 loads like
constexpr size_t kMinCached = 64 << 10;  // below this, malloc's own arenas do well
constexpr size_t kClassesPerOctave = 8;

// The size class of a request: rounded up to a multiple of 1/8 of its power of two (and of a page).
size_t size_class(size_t n) {
  if (n < kMinCached) return (n + kAlignment - 1) / kAlignment * kAlignment;
  size_t top = size_t(1) << (63 - __builtin_clzll(n));
  size_t granule = std::max<size_t>(top / kClassesPerOctave, 4096);
  return (n + granule - 1) / granule * granule;
}

struct Block {
  size_t bytes;
  void* p;
};

struct Cache {
  std::mutex mu;
  // Cached blocks from least to most recently freed, and per size class the same blocks (oldest
  // first): a request takes its class's most recent block, an overflow evicts the oldest blocks.
  std::list<Block> lru;
  std::unordered_map<size_t, std::deque<std::list<Block>::iterator>> free_blocks;
  HostAllocatorStats stats;
  int64_t fixed_limit = -1;  // from MLAMOE_HOST_CACHE_MB; -1: follow the peak live bytes

  Cache() {
    if (const char* env = std::getenv("MLAMOE_HOST_CACHE_MB")) {
      char* end = nullptr;
      long long mb = std::strtoll(env, &end, 10);
      if (end != env && *end == '\0' && mb >= 0) fixed_limit = static_cast<int64_t>(mb) << 20;
    }
  }
  // Over budget: with MLAMOE_HOST_CACHE_MB the cached bytes are bounded; otherwise live + cached
  // bytes stay within 1.5× the most bytes ever live at once. (At exactly 1×, the MoE buffers,
  // whose sizes change every step, kept evicting each other: half the requests of a small.json
  // step missed; with train.recompute 1.25× still missed 40%, 1.5× 1%.)
  bool over_budget() const {
    return fixed_limit >= 0 ? stats.cached_bytes > fixed_limit
                            : stats.live_bytes + stats.cached_bytes > stats.peak_live_bytes + stats.peak_live_bytes / 2;
  }
  // Returns the least recently freed blocks to the system (through `out`, freed by the caller
  // outside the lock) until the cache is within budget.
  void evict(std::vector<void*>& out) {
    while (!lru.empty() && over_budget()) {
      Block old = lru.front();
      free_blocks[old.bytes].pop_front();  // a class's oldest block is its oldest entry in lru
      lru.pop_front();
      stats.cached_bytes -= static_cast<int64_t>(old.bytes);
      out.push_back(old.p);
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during static destruction
  return *c;
}

void* system_alloc(size_t bytes) {
  void* p = std::aligned_alloc(kAlignment, bytes == 0 ? kAlignment : bytes);
  MLAMOE_CHECK(p != nullptr, "out of host memory allocating " << bytes << " bytes");
  return p;
}

}  // namespace

void* host_alloc(size_t nbytes) {
  size_t bytes = size_class(nbytes);
  if (bytes < kMinCached) return system_alloc(bytes);
  Cache& c = cache();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.live_bytes += static_cast<int64_t>(bytes);
    c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
    auto it = c.free_blocks.find(bytes);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back()->p;
      c.lru.erase(it->second.back());
      it->second.pop_back();
      c.stats.cached_bytes -= static_cast<int64_t>(bytes);
      ++c.stats.hits;
      return p;
    }
    ++c.stats.misses;
    c.evict(evicted);  // make room for the new block: sizes not asked for lately go first
  }
  for (void* q : evicted) std::free(q);
  return system_alloc(bytes);
}

void host_free(void* p, size_t nbytes) {
  if (p == nullptr) return;
  size_t bytes = size_class(nbytes);
  if (bytes < kMinCached) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.live_bytes -= static_cast<int64_t>(bytes);
    c.free_blocks[bytes].push_back(c.lru.insert(c.lru.end(), Block{bytes, p}));
    c.stats.cached_bytes += static_cast<int64_t>(bytes);
    c.evict(evicted);  // may return this very block when the budget is 0
  }
  for (void* q : evicted) std::free(q);
}

HostAllocatorStats host_allocator_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

void host_allocator_reset_peak() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.peak_live_bytes = c.stats.live_bytes;
}

void host_allocator_release() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (const Block& b : c.lru) std::free(b.p);
  c.lru.clear();
  c.free_blocks.clear();
  c.stats.cached_bytes = 0;
}

}  // namespace mlamoe
