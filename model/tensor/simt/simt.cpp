#include "model/tensor/simt/simt.h"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "model/tensor/error.h"

// Fibers switch through Boost.Context where the build found it (a few instructions per switch),
// else through ucontext (swapcontext saves and restores the signal mask: a system call per switch,
// which makes kernels with many barriers some 10x slower to emulate).
#ifdef MLAMOE_SIMT_BOOST_CONTEXT
#include <boost/context/fiber.hpp>
#else
#include <ucontext.h>
#endif

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

#ifdef MLAMOE_SIMT_BOOST_CONTEXT
namespace bctx = boost::context;
using Context = bctx::fiber;  // the continuation to resume (empty while it runs, or once done)

// A fiber's stack: memory the launch already holds (one block's stacks, reused block after block).
struct FixedStack {
  char* base;
  size_t bytes;
  bctx::stack_context allocate() {
    bctx::stack_context sc;
    sc.size = bytes;
    sc.sp = base + bytes;
    return sc;
  }
  void deallocate(bctx::stack_context&) noexcept {}
};
#else
using Context = ucontext_t;
#endif

struct Fiber {
  Context ctx;
  void* stack = nullptr;
  size_t stack_bytes = 0;
  dim3 tid;
  FiberState state = FiberState::Ready;
  std::exception_ptr error;
};

// One warp's exchange: lane l's value for its k-th collective goes to slot[k % 2][l]; count[l] is
// the number of collectives lane l has deposited for; `complete` the number every lane has
// deposited for (the least count[l], kept as lanes arrive: arrivals[k % 2] counts collective k's).
struct WarpExchange {
  uint64_t slot[2][kWarpSize] = {};
  uint64_t count[kWarpSize] = {};
  unsigned arrivals[2] = {0, 0};
  uint64_t complete = 0;
  unsigned lanes = kWarpSize;  // fewer in a block's last, partial warp
};

// The scheduler of the block this host thread is running.
struct BlockRun {
  Context scheduler;  // resumed when the running fiber yields
  Fiber* current = nullptr;
  const std::function<void()>* kernel = nullptr;
  unsigned char* shared = nullptr;
  std::vector<WarpExchange> warps;
  uint64_t deposits = 0;                  // the warp collectives' progress (deadlock detection)
  bool aborting = false;                  // the block failed: waiting fibers unwind instead of going on
  const void* scheduler_stack = nullptr;  // the host thread's stack, for AddressSanitizer
  size_t scheduler_stack_bytes = 0;
};
thread_local BlockRun* t_run = nullptr;

// Thrown inside a fiber that the scheduler resumes only to unwind it (BlockRun::aborting).
struct BlockAborted {};

// AddressSanitizer's half of a switch: before it (`to`: the stack being entered; a null
// `fake_out` when the stack being left is done for good) and after it.
inline void asan_leaving(void** fake_out, const void* to, size_t bytes) {
#ifdef MLAMOE_SIMT_ASAN
  __sanitizer_start_switch_fiber(fake_out, to, bytes);
#else
  (void)fake_out, (void)to, (void)bytes;
#endif
}
inline void asan_arrived(void* fake, const void** from = nullptr, size_t* from_bytes = nullptr) {
#ifdef MLAMOE_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake, from, from_bytes);
#else
  (void)fake, (void)from, (void)from_bytes;
#endif
}

// The body every fiber runs: the kernel, its exception kept for the scheduler.
void fiber_body(BlockRun* run) {
  Fiber* self = run->current;
  try {
    (*run->kernel)();
  } catch (const BlockAborted&) {  // unwound by the scheduler after another thread's error
  } catch (...) {
    self->error = std::current_exception();
  }
  self->state = FiberState::Done;
}

#ifdef MLAMOE_SIMT_BOOST_CONTEXT

void init_fiber(Fiber& f, char* stack, size_t bytes) {
  f.stack = stack;
  f.stack_bytes = bytes;
  f.ctx = bctx::fiber(std::allocator_arg, FixedStack{stack, bytes}, [](bctx::fiber&& scheduler) {
    BlockRun* run = t_run;
    run->scheduler = std::move(scheduler);
    asan_arrived(nullptr, &run->scheduler_stack, &run->scheduler_stack_bytes);
    fiber_body(run);
    asan_leaving(nullptr, run->scheduler_stack, run->scheduler_stack_bytes);
    return std::move(run->scheduler);
  });
}

// Scheduler -> fiber f, until it yields or ends.
void enter(BlockRun& run, Fiber& f) {
  void* fake = nullptr;
  asan_leaving(&fake, f.stack, f.stack_bytes);
  f.ctx = std::move(f.ctx).resume();
  asan_arrived(fake);
}

// The running fiber -> its scheduler, until the scheduler resumes it.
void yield(BlockRun* run) {
  void* fake = nullptr;
  asan_leaving(&fake, run->scheduler_stack, run->scheduler_stack_bytes);
  run->scheduler = std::move(run->scheduler).resume();
  asan_arrived(fake);
}

#else

void fiber_main() {
  BlockRun* run = t_run;
  asan_arrived(nullptr, &run->scheduler_stack, &run->scheduler_stack_bytes);
  fiber_body(run);
  asan_leaving(nullptr, run->scheduler_stack, run->scheduler_stack_bytes);
  setcontext(&run->scheduler);  // never resumed
}

// Not inlined: getcontext returns twice as far as the compiler knows, which would have it
// distrust the caller's loop variables.
[[gnu::noinline]] void init_fiber(Fiber& f, char* stack, size_t bytes) {
  getcontext(&f.ctx);
  f.stack = stack;
  f.stack_bytes = bytes;
  f.ctx.uc_stack.ss_sp = stack;
  f.ctx.uc_stack.ss_size = bytes;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
}

void enter(BlockRun& run, Fiber& f) {
  void* fake = nullptr;
  asan_leaving(&fake, f.stack, f.stack_bytes);
  swapcontext(&run.scheduler, &f.ctx);
  asan_arrived(fake);
}

void yield(BlockRun* run) {
  void* fake = nullptr;
  asan_leaving(&fake, run->scheduler_stack, run->scheduler_stack_bytes);
  swapcontext(&run->current->ctx, &run->scheduler);
  asan_arrived(fake);
}

#endif

// After a yield: a fiber resumed only to unwind leaves the kernel.
void resumed(BlockRun* run) {
  if (run->aborting) throw BlockAborted{};
}

std::string block_name() {
  return "simt: block (" + std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) + ", " + std::to_string(blockIdx.z) +
         "): ";
}

// The distance between two fibers' stacks: a little more than a stack, so that their tops (the
// lines every switch touches) do not all fall into the same cache sets, as a power-of-two stride
// would have them: with 256 fibers that cost more than the switches themselves.
size_t stack_stride(const LaunchConfig& cfg) { return cfg.stack_bytes + 320; }

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

// Runs the fibers of a block in shuffled rounds until every one is done; returns an error message
// ("" when none) for a barrier or warp collective that not every thread reaches.
std::string schedule(BlockRun& run, std::vector<Fiber>& fibers, const LaunchConfig& cfg, unsigned b) {
  const unsigned n = static_cast<unsigned>(fibers.size());
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
      bool moved = false, failed = false;
      for (unsigned i : order) {
        Fiber& f = fibers[i];
        run.current = &f;
        threadIdx = f.tid;
        enter(run, f);
        moved = moved || f.state == FiberState::Done || f.state == FiberState::AtBarrier;
        failed = failed || f.error;
      }
      if (failed) return "";  // the thread's own exception is rethrown
      if (!moved && deposits == run.deposits) return "a warp collective that not every lane of its warp reaches";
    }
    unsigned done = 0, waiting = 0;
    for (const Fiber& f : fibers) (f.state == FiberState::Done ? done : waiting) += 1;
    if (waiting == 0) return "";
    if (done != 0)
      return std::to_string(done) + " of " + std::to_string(n) + " threads left the kernel while " + std::to_string(waiting) +
             " wait at __syncthreads (barrier " + std::to_string(phase) + ")";
    for (Fiber& f : fibers) f.state = FiberState::Ready;  // the barrier opens
  }
}

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
    init_fiber(f, stacks + static_cast<size_t>(i) * stack_stride(cfg), cfg.stack_bytes);
  }
  std::string error = schedule(run, fibers, cfg, b);
  // A failed block: the threads still waiting are resumed once more, to unwind (their stacks'
  // objects destroyed) and leave; then the first error is reported.
  run.aborting = true;
  for (Fiber& f : fibers) {
    if (f.state == FiberState::Done) continue;
    run.current = &f;
    threadIdx = f.tid;
    enter(run, f);
  }
  t_run = nullptr;
  for (Fiber& f : fibers)
    if (f.error) std::rethrow_exception(f.error);
  if (!error.empty()) throw Error(block_name() + error);
}

// The running fiber yields until cond() holds; the block's other fibers run meanwhile.
template <class C>
void wait_until(BlockRun* run, C cond) {
  Fiber* self = run->current;
  while (!cond()) {
    self->state = FiberState::Waiting;
    yield(run);
    resumed(run);
  }
  self->state = FiberState::Ready;
}

}  // namespace

uint64_t next_launch_seed() { return g_next_seed.fetch_add(1); }

namespace {
std::mutex g_shared_mutex;
std::map<const void*, size_t>& shared_grants() {
  static auto* m = new std::map<const void*, size_t>;
  return *m;
}
size_t shared_allowed(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_shared_mutex);
  auto it = shared_grants().find(kernel);
  return it == shared_grants().end() ? 0 : it->second;
}
}  // namespace

void allow_shared(const void* kernel, size_t bytes) {
  MLAMOE_CHECK(bytes <= kMaxSharedBytes,
               "simt: MLAMOE_ALLOW_SHARED of " << bytes << " bytes; a GPU (sm_90) has at most " << kMaxSharedBytes);
  std::lock_guard<std::mutex> lock(g_shared_mutex);
  size_t& b = shared_grants()[kernel];
  b = std::max(b, bytes);
}
void set_launch_seed(uint64_t seed) { g_next_seed = seed; }

void syncthreads() {
  BlockRun* run = t_run;
  MLAMOE_CHECK(run && run->current, "simt: __syncthreads outside a kernel launch");
  run->current->state = FiberState::AtBarrier;
  yield(run);
  resumed(run);
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
  if (k >= 1) wait_until(run, [&] { return w.complete >= k; });
  w.slot[k % 2][lane] = value;
  w.count[lane] = k + 1;
  if (++w.arrivals[k % 2] == lanes) {  // the last lane in: collective k is complete
    w.arrivals[k % 2] = 0;
    w.complete = k + 1;
  }
  ++run->deposits;
  wait_until(run, [&] { return w.complete >= k + 1; });
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
  MLAMOE_CHECK(
      cfg.shared_bytes <= kMaxSharedBytes,
      "simt: " << cfg.shared_bytes << " bytes of dynamic shared memory per block; a GPU (sm_90) has at most " << kMaxSharedBytes);
  MLAMOE_CHECK(cfg.shared_bytes <= kDefaultSharedBytes || shared_allowed(cfg.kernel) >= cfg.shared_bytes,
               "simt: a launch asks for " << cfg.shared_bytes << " bytes of dynamic shared memory, more than "
                                          << kDefaultSharedBytes
                                          << " without the kernel's MLAMOE_ALLOW_SHARED (a GPU refuses it)");
  const unsigned blocks = g.count();
  std::exception_ptr error;
#pragma omp parallel
  {
    // One set of fiber stacks per host thread, kept from launch to launch (uninitialised: a fiber
    // writes its stack before reading it), and one shared-memory buffer, reused by its blocks.
    // Exactly shared_bytes (AddressSanitizer sees an overrun), refilled with NaN bits for each
    // block: a kernel that reads shared memory it did not write gets garbage, as on a GPU, not 0.
    char* stacks = nullptr;
    std::vector<unsigned char> shared;
    try {
      stacks = fiber_stacks(static_cast<size_t>(bk.count()) * stack_stride(cfg));
      shared.resize(cfg.shared_bytes);
    } catch (...) {
#pragma omp critical(simt_error)
      if (!error) error = std::current_exception();
    }
#pragma omp for schedule(dynamic)
    for (unsigned b = 0; b < blocks; ++b) {
      if (!stacks) continue;  // this thread could not set up (the error is kept)
      try {
        std::fill(shared.begin(), shared.end(), 0xff);
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
