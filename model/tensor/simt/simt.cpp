#include "model/tensor/simt/simt.h"

#include <ucontext.h>

#include <algorithm>
#include <exception>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "model/tensor/error.h"

namespace mlamoe::simt {

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

enum class FiberState { Ready, AtBarrier, Done };

struct Fiber {
  ucontext_t ctx;
  dim3 tid;
  FiberState state = FiberState::Ready;
  std::exception_ptr error;
};

// The scheduler of the block this host thread is running.
struct BlockRun {
  ucontext_t scheduler;
  Fiber* current = nullptr;
  const std::function<void()>* kernel = nullptr;
  unsigned char* shared = nullptr;
};
thread_local BlockRun* t_run = nullptr;

void fiber_main() {
  BlockRun* run = t_run;
  Fiber* self = run->current;
  try {
    (*run->kernel)();
  } catch (...) {
    self->error = std::current_exception();
  }
  self->state = FiberState::Done;
  swapcontext(&self->ctx, &run->scheduler);  // never resumed
}

// Runs every thread of block `b` to completion on this host thread.
void run_block(const LaunchConfig& cfg, const std::function<void()>& kernel, unsigned b, std::vector<char>& stacks,
               std::vector<unsigned char>& shared) {
  const unsigned n = cfg.block.count();
  blockIdx = dim3(b % cfg.grid.x, (b / cfg.grid.x) % cfg.grid.y, b / (cfg.grid.x * cfg.grid.y));
  blockDim = cfg.block;
  gridDim = cfg.grid;
  BlockRun run;
  run.kernel = &kernel;
  run.shared = shared.data();
  t_run = &run;
  std::vector<Fiber> fibers(n);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = fibers[i];
    f.tid = dim3(i % cfg.block.x, (i / cfg.block.x) % cfg.block.y, i / (cfg.block.x * cfg.block.y));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks.data() + static_cast<size_t>(i) * cfg.stack_bytes;
    f.ctx.uc_stack.ss_size = cfg.stack_bytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  std::mt19937_64 rng(cfg.seed * 0x9e3779b97f4a7c15ULL + b);
  std::vector<unsigned> order(n);
  std::exception_ptr first_error;
  for (int64_t phase = 0;; ++phase) {
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), rng);
    unsigned done = 0, waiting = 0;
    for (unsigned i : order) {
      Fiber& f = fibers[i];
      if (f.state == FiberState::Done) {
        ++done;
        continue;
      }
      f.state = FiberState::Ready;
      run.current = &f;
      threadIdx = f.tid;
      swapcontext(&run.scheduler, &f.ctx);
      if (f.state == FiberState::Done) {
        ++done;
        if (f.error && !first_error) first_error = f.error;
      } else {
        ++waiting;
      }
    }
    if (first_error) {
      t_run = nullptr;
      std::rethrow_exception(first_error);  // the fibers still waiting are dropped with their stacks
    }
    if (waiting == 0) break;
    MLAMOE_CHECK(done == 0, "simt: block (" << blockIdx.x << ", " << blockIdx.y << ", " << blockIdx.z << "): " << done << " of "
                                            << n << " threads left the kernel while " << waiting
                                            << " wait at __syncthreads (barrier " << phase << ")");
  }
  t_run = nullptr;
}

}  // namespace

void syncthreads() {
  BlockRun* run = t_run;
  MLAMOE_CHECK(run && run->current, "simt: __syncthreads outside a kernel launch");
  Fiber* self = run->current;
  self->state = FiberState::AtBarrier;
  swapcontext(&self->ctx, &run->scheduler);
  // resumed in the next phase: the scheduler has set threadIdx and run->current again
}

unsigned char* dynamic_shared() {
  MLAMOE_CHECK(t_run, "simt: dynamic shared memory outside a kernel launch");
  return t_run->shared;
}

void launch(const LaunchConfig& cfg, const std::function<void()>& kernel) {
  const dim3 g = cfg.grid, bk = cfg.block;
  MLAMOE_CHECK(g.count() > 0 && bk.count() > 0, "simt: empty launch grid (" << g.x << ", " << g.y << ", " << g.z << ") x block ("
                                                                            << bk.x << ", " << bk.y << ", " << bk.z << ")");
  MLAMOE_CHECK(bk.count() <= 1024, "simt: " << bk.count() << " threads per block; CUDA allows at most 1024");
  MLAMOE_CHECK(cfg.stack_bytes >= (16 << 10), "simt: stack_bytes " << cfg.stack_bytes << " is below 16 KiB");
  const unsigned blocks = g.count();
  std::exception_ptr error;
#pragma omp parallel
  {
    // One set of fiber stacks and one shared-memory buffer per host thread, reused by its blocks.
    std::vector<char> stacks(static_cast<size_t>(bk.count()) * cfg.stack_bytes);
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
