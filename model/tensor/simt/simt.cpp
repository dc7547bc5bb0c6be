#include "model/tensor/simt/simt.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/tensor/error.h"

// AddressSanitizer must be told when execution moves to another stack, or it takes a fiber's
// frames for overflows of the host thread's stack (the calls below are its documented protocol).
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define MLAMOE_SIMT_ASAN 1
#endif

namespace mlamoe::simt {

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

// Waiting: inside a warp collective, until the warp's other lanes get there.
enum class FiberState { Ready, Waiting, AtBarrier, Done };

struct Fiber {
  ucontext_t ctx;
  void* stack = nullptr;
  size_t stack_bytes = 0;
  dim3 tid;
  FiberState state = FiberState::Ready;
  std::exception_ptr error;
};

// One warp's exchange: lane l's value for its k-th collective goes to slot[k % 2][l]; count[l] is
// the number of collectives lane l has deposited for.
struct WarpExchange {
  uint64_t slot[2][kWarpSize] = {};
  uint64_t count[kWarpSize] = {};
  unsigned lanes = kWarpSize;  // fewer in a block's last, partial warp
  uint64_t min_count() const { return *std::min_element(count, count + lanes); }
};

// The scheduler of the block this host thread is running.
struct BlockRun {
  ucontext_t scheduler;
  Fiber* current = nullptr;
  const std::function<void()>* kernel = nullptr;
  unsigned char* shared = nullptr;
  std::vector<WarpExchange> warps;
  uint64_t deposits = 0;                  // the warp collectives' progress (deadlock detection)
  const void* scheduler_stack = nullptr;  // the host thread's stack, for AddressSanitizer
  size_t scheduler_stack_bytes = 0;
};
thread_local BlockRun* t_run = nullptr;

// swapcontext with AddressSanitizer's stack-switch annotations. `to_stack` is the stack being
// entered; `leaving_for_good` marks a fiber's last switch (its fake stack can go).
void switch_to(ucontext_t* from, const ucontext_t* to, const void* to_stack, size_t to_bytes, bool leaving_for_good = false) {
#ifdef MLAMOE_SIMT_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(leaving_for_good ? nullptr : &fake, to_stack, to_bytes);
  swapcontext(from, to);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  (void)to_stack, (void)to_bytes, (void)leaving_for_good;
  swapcontext(from, to);
#endif
}

void fiber_main() {
  BlockRun* run = t_run;
  Fiber* self = run->current;
#ifdef MLAMOE_SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &run->scheduler_stack, &run->scheduler_stack_bytes);
#endif
  try {
    (*run->kernel)();
  } catch (...) {
    self->error = std::current_exception();
  }
  self->state = FiberState::Done;
  switch_to(&self->ctx, &run->scheduler, run->scheduler_stack, run->scheduler_stack_bytes, true);  // never resumed
}

// A fiber that starts in fiber_main on its own stack. Not inlined: getcontext returns twice as far
// as the compiler knows, which would have it distrust the caller's loop variables.
[[gnu::noinline]] void init_fiber(Fiber& f, char* stack, size_t bytes) {
  getcontext(&f.ctx);
  f.stack = stack;
  f.stack_bytes = bytes;
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = bytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
}

[[noreturn]] void block_error(const std::string& what) {
  t_run = nullptr;
  throw Error("simt: block (" + std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) + ", " +
              std::to_string(blockIdx.z) + "): " + what);
}

// This host thread's fiber stacks, at least `bytes` of them.
char* fiber_stacks(size_t bytes) {
  thread_local std::unique_ptr<char[]> stacks;
  thread_local size_t size = 0;
  if (size < bytes) {
    stacks.reset(new char[bytes]);
    size = bytes;
  }
  return stacks.get();
}

std::atomic<uint64_t> g_next_seed{[] {
  const char* e = std::getenv("MLAMOE_SIMT_SEED");
  return e ? std::strtoull(e, nullptr, 10) : uint64_t{1};
}()};

// Runs every thread of block `b` to completion on this host thread.
void run_block(const LaunchConfig& cfg, const std::function<void()>& kernel, unsigned b, char* stacks,
               std::vector<unsigned char>& shared) {
  const unsigned n = cfg.block.count();
  blockIdx = dim3(b % cfg.grid.x, (b / cfg.grid.x) % cfg.grid.y, b / (cfg.grid.x * cfg.grid.y));
  blockDim = cfg.block;
  gridDim = cfg.grid;
  BlockRun run;
  run.kernel = &kernel;
  run.shared = shared.data();
  run.warps.assign((n + kWarpSize - 1) / kWarpSize, WarpExchange{});
  run.warps.back().lanes = n - (static_cast<unsigned>(run.warps.size()) - 1) * kWarpSize;
  t_run = &run;
  std::vector<Fiber> fibers(n);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = fibers[i];
    f.tid = dim3(i % cfg.block.x, (i / cfg.block.x) % cfg.block.y, i / (cfg.block.x * cfg.block.y));
    init_fiber(f, stacks + static_cast<size_t>(i) * cfg.stack_bytes, cfg.stack_bytes);
  }
  std::mt19937_64 rng(cfg.seed * 0x9e3779b97f4a7c15ULL + b);
  std::vector<unsigned> order;
  for (int64_t phase = 0;; ++phase) {
    // Rounds in shuffled order until every thread is done or at the barrier (a thread inside a
    // warp collective yields and is resumed in a later round).
    for (;;) {
      order.clear();
      for (unsigned i = 0; i < n; ++i)
        if (fibers[i].state == FiberState::Ready || fibers[i].state == FiberState::Waiting) order.push_back(i);
      if (order.empty()) break;
      std::shuffle(order.begin(), order.end(), rng);
      uint64_t deposits = run.deposits;
      bool moved = false;
      std::exception_ptr error;
      for (unsigned i : order) {
        Fiber& f = fibers[i];
        run.current = &f;
        threadIdx = f.tid;
        switch_to(&run.scheduler, &f.ctx, f.stack, f.stack_bytes);
        moved = moved || f.state == FiberState::Done || f.state == FiberState::AtBarrier;
        if (f.error && !error) error = f.error;
      }
      if (error) {
        t_run = nullptr;
        std::rethrow_exception(error);  // the fibers still waiting are dropped with their stacks
      }
      if (!moved && deposits == run.deposits) block_error("a warp collective that not every lane of its warp reaches");
    }
    unsigned done = 0, waiting = 0;
    for (const Fiber& f : fibers) (f.state == FiberState::Done ? done : waiting) += 1;
    if (waiting == 0) break;
    if (done != 0)
      block_error(std::to_string(done) + " of " + std::to_string(n) + " threads left the kernel while " +
                  std::to_string(waiting) + " wait at __syncthreads (barrier " + std::to_string(phase) + ")");
    for (Fiber& f : fibers) f.state = FiberState::Ready;  // the barrier opens
  }
  t_run = nullptr;
}

// The running fiber yields until cond() holds; the block's other fibers run meanwhile.
template <class C>
void wait_until(BlockRun* run, C cond) {
  Fiber* self = run->current;
  while (!cond()) {
    self->state = FiberState::Waiting;
    switch_to(&self->ctx, &run->scheduler, run->scheduler_stack, run->scheduler_stack_bytes);
  }
  self->state = FiberState::Ready;
}

}  // namespace

uint64_t next_launch_seed() { return g_next_seed.fetch_add(1); }
void set_launch_seed(uint64_t seed) { g_next_seed = seed; }

void syncthreads() {
  BlockRun* run = t_run;
  MLAMOE_CHECK(run && run->current, "simt: __syncthreads outside a kernel launch");
  Fiber* self = run->current;
  self->state = FiberState::AtBarrier;
  switch_to(&self->ctx, &run->scheduler, run->scheduler_stack, run->scheduler_stack_bytes);
  // resumed after the barrier: the scheduler has set threadIdx and run->current again
}

const uint64_t* warp_exchange(unsigned mask, uint64_t value, unsigned& lane, unsigned& lanes) {
  BlockRun* run = t_run;
  MLAMOE_CHECK(run && run->current, "simt: a warp collective outside a kernel launch");
  unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  WarpExchange& w = run->warps[linear / kWarpSize];
  lane = linear % kWarpSize;
  lanes = w.lanes;
  unsigned whole = lanes == kWarpSize ? 0xffffffffu : (1u << lanes) - 1u;
  MLAMOE_CHECK((mask & whole) == whole, "simt: a warp collective with mask " << mask << ": only whole-warp masks are emulated");
  uint64_t k = w.count[lane];
  // Slot k % 2 is free once every lane has deposited for collective k − 1 (and so read k − 2's).
  if (k >= 1) wait_until(run, [&] { return w.min_count() >= k; });
  w.slot[k % 2][lane] = value;
  w.count[lane] = k + 1;
  ++run->deposits;
  wait_until(run, [&] { return w.min_count() >= k + 1; });
  return w.slot[k % 2];
}

unsigned char* dynamic_shared() {
  MLAMOE_CHECK(t_run, "simt: dynamic shared memory outside a kernel launch");
  return t_run->shared;
}

void launch(const LaunchConfig& cfg, const std::function<void()>& kernel) {
  const dim3 g = cfg.grid, bk = cfg.block;
  MLAMOE_CHECK(g.count() > 0 && bk.count() > 0, "simt: empty launch: grid (" << g.x << ", " << g.y << ", " << g.z << "), block ("
                                                                             << bk.x << ", " << bk.y << ", " << bk.z << ")");
  MLAMOE_CHECK(bk.count() <= 1024, "simt: " << bk.count() << " threads per block; CUDA allows at most 1024");
  MLAMOE_CHECK(cfg.stack_bytes >= (16 << 10), "simt: stack_bytes " << cfg.stack_bytes << " is below 16 KiB");
  const unsigned blocks = g.count();
  std::exception_ptr error;
#pragma omp parallel
  {
    // One set of fiber stacks per host thread, kept from launch to launch (uninitialised: a fiber
    // writes its stack before reading it), and one shared-memory buffer, reused by its blocks.
    char* stacks = fiber_stacks(static_cast<size_t>(bk.count()) * cfg.stack_bytes);
    std::vector<unsigned char> shared(cfg.shared_bytes + 16);
#pragma omp for schedule(dynamic)
    for (unsigned b = 0; b < blocks; ++b) {
      try {
        run_block(cfg, kernel, b, stacks, shared);
      } catch (...) {
#pragma omp critical(simt_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace mlamoe::simt
