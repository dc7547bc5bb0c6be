#include "parallel/watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "model/tensor/cuda/backend.h"
#include "parallel/mpi_runtime.h"

namespace mlamoe {

namespace progress {
std::atomic<uint64_t> seq{0};
std::atomic<uint64_t> what{0};
}  // namespace progress

namespace {

std::atomic<int64_t> g_step{0};         // the step in progress (1-based; 0: start-up)
std::atomic<int64_t> g_steps_begun{0};  // watchdog_step calls: from 2 on, the first step is done
std::atomic<int> g_allowances{0};       // live WatchdogAllowance scopes

std::mutex g_registry_mu;
std::vector<std::vector<int>> g_registry;  // communicator id -> members as world ranks

constexpr const char* kKinds[] = {"world", "dp", "ep", "edp", "pp", "embed", "group"};
constexpr uint32_t kGroupKind = 6;

// One rank's published state, written only by its watchdog thread.
struct alignas(64) BoardSlot {
  std::atomic<int64_t> world_rank;
  std::atomic<int64_t> heartbeat_ns;  // steady clock at its last tick; 0: no watchdog running
  std::atomic<uint64_t> seq;          // progress::seq at that tick (odd: inside a blocking call)
  std::atomic<uint64_t> what;         // progress::what at that tick
  std::atomic<int64_t> step;
  std::atomic<int64_t> since_ns;  // when its watchdog first saw that seq
};
struct alignas(64) BoardHeader {
  std::atomic<int64_t> reporter;  // world rank + 1 of the rank that reports for this node; 0: none yet
};
static_assert(std::atomic<int64_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free,
              "the board needs lock-free 64-bit atomics in shared memory");

int64_t now_ns() {
  // steady_clock is CLOCK_MONOTONIC: one clock for every process of a node.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

CommOp op_of(uint64_t w) { return static_cast<CommOp>(w & 0xffu); }
uint32_t kind_of(uint64_t w) { return static_cast<uint32_t>((w >> 8) & 0xffu); }
uint32_t comm_id_of(uint64_t w) { return static_cast<uint32_t>((w >> 16) & 0xffffu); }
int peer_of(uint64_t w) { return static_cast<int>(static_cast<uint32_t>(w >> 32)) - 1; }
bool is_p2p(CommOp op) { return op == CommOp::Send || op == CommOp::Recv || op == CommOp::WaitSend || op == CommOp::WaitRecv; }

// "recv from rank 2 on pp", "all_to_all_v on ep"
std::string call_text(uint64_t w) {
  std::ostringstream s;
  CommOp op = op_of(w);
  s << comm_op_name(op);
  int peer = peer_of(w);
  if (peer >= 0) s << (op == CommOp::Send || op == CommOp::WaitSend ? " to rank " : " from rank ") << peer;
  s << " on " << comm_kind_name(kind_of(w));
  return s.str();
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string at_step(int64_t step) { return step > 0 ? " at step " + std::to_string(step) : " during start-up"; }

}  // namespace

const char* comm_op_name(CommOp op) {
  switch (op) {
    case CommOp::None:
      return "nothing";
    case CommOp::AllReduce:
      return "all_reduce";
    case CommOp::ReduceScatter:
      return "reduce_scatter";
    case CommOp::AllGatherV:
      return "all_gather_v";
    case CommOp::AllToAllV:
      return "all_to_all_v";
    case CommOp::Broadcast:
      return "broadcast";
    case CommOp::Send:
      return "send";
    case CommOp::Recv:
      return "recv";
    case CommOp::Barrier:
      return "barrier";
    case CommOp::Split:
      return "split";
    case CommOp::WaitAllReduce:
      return "wait(iall_reduce)";
    case CommOp::WaitReduceScatter:
      return "wait(ireduce_scatter)";
    case CommOp::WaitAllGatherV:
      return "wait(iall_gather_v)";
    case CommOp::WaitAllToAllV:
      return "wait(iall_to_all_v)";
    case CommOp::WaitBroadcast:
      return "wait(ibroadcast)";
    case CommOp::WaitSend:
      return "wait(isend)";
    case CommOp::WaitRecv:
      return "wait(irecv)";
    case CommOp::WaitBarrier:
      return "wait(ibarrier)";
    case CommOp::WaitDevice:
      return "a wait for the device's queued work (a collective queued there has not completed)";
  }
  return "an unknown operation";
}

uint32_t comm_kind_of(const std::string& name) {
  for (uint32_t k = 0; k < kGroupKind; ++k)
    if (name == kKinds[k]) return k;
  return kGroupKind;
}

const char* comm_kind_name(uint32_t kind) { return kKinds[std::min(kind, kGroupKind)]; }

uint32_t register_communicator(std::vector<int> world_ranks) {
  std::lock_guard<std::mutex> lk(g_registry_mu);
  g_registry.push_back(std::move(world_ranks));
  return static_cast<uint32_t>(g_registry.size() - 1);
}

namespace {
// Host waits for the device as blocking calls (watch_device_waits). Only the thread that asked is
// watched (BlockingCall's contract: the main thread); nested waits count once, and a wait inside
// a blocking call is that call's.
uint64_t g_device_wait_what = 0;
thread_local bool t_device_waits_watched = false;
thread_local int t_device_wait_depth = 0;
thread_local bool t_device_wait_counted = false;

void device_wait_begin() {
  if (!t_device_waits_watched || t_device_wait_depth++ > 0) return;
  t_device_wait_counted = (progress::seq.load(std::memory_order_relaxed) & 1) == 0;
  if (!t_device_wait_counted) return;  // already inside a blocking call
  progress::what.store(g_device_wait_what, std::memory_order_relaxed);
  progress::seq.store(progress::seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void device_wait_end() {
  if (!t_device_waits_watched || --t_device_wait_depth > 0 || !t_device_wait_counted) return;
  progress::seq.store(progress::seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}
}  // namespace

void watch_device_waits(int world_size) {
  std::vector<int> everyone(world_size);
  for (int r = 0; r < world_size; ++r) everyone[r] = r;
  g_device_wait_what = pack_call(CommOp::WaitDevice, comm_kind_of("world"), register_communicator(std::move(everyone)), -1);
  t_device_waits_watched = true;
  cuda::set_host_wait_watcher({device_wait_begin, device_wait_end});
}

void unwatch_device_waits() {
  cuda::set_host_wait_watcher({});
  t_device_waits_watched = false;
}

void watchdog_step(int64_t step) {
  g_step.store(step, std::memory_order_relaxed);
  g_steps_begun.fetch_add(1, std::memory_order_relaxed);
}

WatchdogAllowance::WatchdogAllowance() { g_allowances.fetch_add(1, std::memory_order_relaxed); }
WatchdogAllowance::~WatchdogAllowance() { g_allowances.fetch_sub(1, std::memory_order_relaxed); }

// ---- the board -------------------------------------------------------------------------------

class WatchdogBoard {
 public:
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Win win = MPI_WIN_NULL;
  BoardHeader* header = nullptr;
  BoardSlot* slots = nullptr;
  int n = 0, mine = 0;
};

WatchdogBoardPtr create_watchdog_board(const void* node) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  auto b = std::make_unique<WatchdogBoard>();
  if (MPI_Comm_dup(*static_cast<const MPI_Comm*>(node), &b->node) != MPI_SUCCESS) return nullptr;
  MPI_Comm_set_errhandler(b->node, MPI_ERRORS_RETURN);
  MPI_Comm_rank(b->node, &b->mine);
  MPI_Comm_size(b->node, &b->n);
  // One segment, on the node's first rank: the header, then a slot per rank of the node.
  // +63: MPI returns the segment 8 bytes past a page boundary; the board starts at the next
  // 64-byte boundary (the same offset in every process, whose mappings are all page-aligned).
  const size_t used = sizeof(BoardHeader) + b->n * sizeof(BoardSlot);
  MPI_Aint bytes = b->mine == 0 ? static_cast<MPI_Aint>(used + 63) : 0;
  void* base = nullptr;
  int ok = MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, b->node, &base, &b->win) == MPI_SUCCESS;
  int all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, b->node);
  if (!all_ok) {
    if (ok) MPI_Win_free(&b->win);
    MPI_Comm_free(&b->node);
    return nullptr;
  }
  MPI_Aint size = 0;
  int disp = 0;
  MPI_Win_shared_query(b->win, 0, &size, &disp, &base);
  size_t space = static_cast<size_t>(size);
  base = std::align(alignof(BoardHeader), used, base, space);
  b->header = static_cast<BoardHeader*>(base);
  b->slots = reinterpret_cast<BoardSlot*>(static_cast<char*>(base) + sizeof(BoardHeader));
  if (b->mine == 0) std::memset(base, 0, used);
  MPI_Barrier(b->node);
  b->slots[b->mine].world_rank.store(rank);
  MPI_Barrier(b->node);
  return WatchdogBoardPtr(b.release());
}

void WatchdogBoardFree::operator()(WatchdogBoard* b) const {
  MPI_Win_free(&b->win);
  MPI_Comm_free(&b->node);
  delete b;
}

// ---- the watchdog ----------------------------------------------------------------------------

Watchdog::Watchdog(const MpiRuntime& mpi, double timeout_s) : mpi_(mpi), board_(mpi.watchdog_board()), timeout_s_(timeout_s) {
  if (!(timeout_s > 0) || mpi.size() <= 1) return;
  // A tick of 1/20 of the timeout (50 ms to 1 s): a wait is seen at most one tick late. A
  // heartbeat older than 4 ticks (at least 2 s, or half the timeout) is a stopped or dead rank.
  double tick = std::clamp(timeout_s / 20, 0.05, 1.0);
  double stale = std::max(4 * tick, std::min(2.0, timeout_s / 2));
  tick_ns_ = static_cast<int64_t>(tick * 1e9);
  stale_ns_ = static_cast<int64_t>(stale * 1e9);
  thread_ = std::thread([this] { run(); });
  watch_device_waits(mpi.size());
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  unwatch_device_waits();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::set_layout(const MeshShape& shape) {
  std::lock_guard<std::mutex> lk(mu_);
  shape_ = shape;
  has_layout_ = true;
}

std::string Watchdog::describe(int64_t world_rank) const {
  std::lock_guard<std::mutex> lk(mu_);
  return has_layout_ ? describe_rank(shape_, world_rank) : "rank " + std::to_string(world_rank);
}

void Watchdog::run() {
  BoardSlot* me = board_ ? &board_->slots[board_->mine] : nullptr;
  uint64_t last_seq = ~uint64_t{0};
  int64_t since = 0;
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    lk.unlock();
    int64_t now = now_ns();
    uint64_t s = progress::seq.load(std::memory_order_acquire);
    uint64_t w = progress::what.load(std::memory_order_relaxed);
    if (s != last_seq) last_seq = s, since = now;
    if (me) {
      me->seq.store(s, std::memory_order_relaxed);
      me->what.store(w, std::memory_order_relaxed);
      me->step.store(g_step.load(std::memory_order_relaxed), std::memory_order_relaxed);
      me->since_ns.store(since, std::memory_order_relaxed);
      me->heartbeat_ns.store(now, std::memory_order_release);
    }
    if (s & 1) {
      bool allowance = g_steps_begun.load(std::memory_order_relaxed) < 2 || g_allowances.load(std::memory_order_relaxed) > 0;
      double limit = timeout_s_ * (allowance ? kStartupFactor : 1.0);
      double waited = static_cast<double>(now - since) / 1e9;
      if (waited > limit) fire(w, waited, limit, now);
    }
    lk.lock();
    cv_.wait_for(lk, std::chrono::nanoseconds(tick_ns_), [this] { return stop_; });
  }
  if (me) me->heartbeat_ns.store(0, std::memory_order_release);
}

void Watchdog::fire(uint64_t what, double waited_s, double limit_s, int64_t now) {
  const int64_t self = mpi_.rank();
  if (board_) {
    int64_t expected = 0;
    if (!board_->header->reporter.compare_exchange_strong(expected, self + 1) && expected != self + 1) {
      // Another rank of this node reports and aborts the job; speak up only if that did not happen.
      if (lost_claim_ns_ == 0) lost_claim_ns_ = now;
      if (now - lost_claim_ns_ < int64_t{30'000'000'000}) return;
    }
  }

  // The peers of the timed-out call: the other side of a send/receive, or the group's members.
  CommOp op = op_of(what);
  std::vector<int64_t> peers;
  if (is_p2p(op)) {
    peers.push_back(peer_of(what));
  } else {
    std::lock_guard<std::mutex> lk(g_registry_mu);
    uint32_t id = comm_id_of(what);
    if (id < g_registry.size())
      for (int r : g_registry[id])
        if (r != self) peers.push_back(r);
  }

  struct View {
    int64_t rank, heartbeat, step, since;
    uint64_t seq, what;
  };
  std::vector<View> node;
  if (board_)
    for (int i = 0; i < board_->n; ++i) {
      const BoardSlot& sl = board_->slots[i];
      View v{sl.world_rank.load(), sl.heartbeat_ns.load(std::memory_order_acquire),
             sl.step.load(),       sl.since_ns.load(),
             sl.seq.load(),        sl.what.load()};
      if (v.rank != self) node.push_back(v);
    }
  auto find = [&](int64_t r) -> const View* {
    for (const View& v : node)
      if (v.rank == r) return &v;
    return nullptr;
  };
  auto where = [](const View& v) { return v.seq & 1 ? "in " + call_text(v.what) : std::string("outside communication"); };

  // Who is silent: a stale heartbeat on this node first (a stopped or dead rank); otherwise follow
  // the wait-for graph from this call's peers (a waiting peer leads to the peers of its own call)
  // to the ranks that are outside communication; otherwise everyone found is waiting.
  std::vector<std::string> silent, busy, waiting, unseen;  // unseen: on another node, or no watchdog
  std::string note;
  for (const View& v : node)
    if (v.heartbeat != 0 && now - v.heartbeat > stale_ns_)
      silent.push_back(describe(v.rank) + " [no heartbeat for " + seconds(static_cast<double>(now - v.heartbeat) / 1e9) +
                       ": stopped or dead; last seen " + where(v) + at_step(v.step) + "]");
  if (silent.empty()) {
    MeshShape shape;
    bool has_layout;
    {
      std::lock_guard<std::mutex> lk(mu_);
      shape = shape_, has_layout = has_layout_;
    }
    std::vector<int64_t> frontier(peers.begin(), peers.end()), seen{self};
    while (!frontier.empty()) {
      int64_t p = frontier.back();
      frontier.pop_back();
      if (std::find(seen.begin(), seen.end(), p) != seen.end()) continue;
      seen.push_back(p);
      const View* v = find(p);
      if (!v) {
        unseen.push_back(describe(p) + (board_ ? " [on another node: not visible from here]" : " [state not visible]"));
      } else if (v->heartbeat == 0) {
        unseen.push_back(describe(p) + " [its watchdog is not running]");
      } else if (!(v->seq & 1)) {
        busy.push_back(describe(p) + " [outside communication (computing or I/O) for " +
                       seconds(static_cast<double>(now - v->since) / 1e9) + at_step(v->step) + "]");
      } else {
        waiting.push_back(describe(p) + " [itself waiting " + seconds(static_cast<double>(now - v->since) / 1e9) + " " +
                          where(*v) + at_step(v->step) + "]");
        if (is_p2p(op_of(v->what))) {
          frontier.push_back(peer_of(v->what));
        } else if (has_layout) {
          for (int64_t q : mesh_group(shape, comm_kind_name(kind_of(v->what)), p)) frontier.push_back(q);
        }
      }
    }
    if (!busy.empty()) {
      silent = busy;
    } else if (!unseen.empty()) {
      silent = unseen;
      if (!waiting.empty()) note = " (the ranks visible from here are all waiting)";
    } else {
      silent = waiting;
      if (!waiting.empty()) note = " (every rank found is waiting too: a stalled network, or ranks waiting on each other)";
    }
  }

  std::ostringstream line;
  line << "mlamoe: error on " << describe(self) << ": collective timeout: waited " << seconds(waited_s) << " in "
       << call_text(what) << at_step(g_step.load(std::memory_order_relaxed)) << " (limit " << seconds(limit_s);
  if (limit_s > timeout_s_)
    line << " = " << kStartupFactor << " x train.collective_timeout_s during start-up, the first step and checkpoint writes)";
  else
    line << ": train.collective_timeout_s)";
  line << "; silent: ";
  const size_t kMaxListed = 8;
  if (silent.empty()) line << "unknown";
  for (size_t i = 0; i < silent.size() && i < kMaxListed; ++i) line << (i ? ", " : "") << silent[i];
  if (silent.size() > kMaxListed) line << " and " << silent.size() - kMaxListed << " more";
  line << note << "; aborting every rank";
  std::fprintf(stderr, "%s\n", line.str().c_str());
  std::fflush(stderr);
  // MPI_Abort from this thread is legal under MPI_THREAD_MULTIPLE; with less, leave it to the
  // launcher (mpirun ends the job when a rank exits non-zero).
  if (mpi_.thread_multiple()) MPI_Abort(MPI_COMM_WORLD, 1);
  _exit(1);
}

}  // namespace mlamoe
