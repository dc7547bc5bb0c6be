// The collective watchdog (train.collective_timeout_s): a rank that stops making progress (SIGSTOP,
// a stuck link, an endless loop) must not hang every other rank forever. When a rank has waited
// longer than the timeout inside one blocking communication call (a collective, a receive, or the
// wait of a non-blocking operation), it prints ONE line naming the rank(s) it is waiting for (world
// rank and mesh coordinates) and the operation it was waiting in, then aborts the whole job.
//
// Design, and why:
//  - Detection is local. Every blocking call of MpiCommunicator (and every Request::wait) is
//    bracketed by BlockingCall, which stores what the main thread is blocked in and bumps a
//    sequence number (odd: inside a call): relaxed atomic stores into process memory, no lock, no
//    syscall. A watchdog thread per rank (std::thread: a rank blocked in MPI_Wait cannot run any
//    code of its own) samples that sequence number every tick; an odd number unchanged for longer
//    than the limit is a timed-out wait (seen at most one tick late). No clock is read on the hot
//    path. Waits outside MpiCommunicator (MPI_Finalize, the board's own set-up) are not watched.
//  - Naming the silent rank needs the state of the others, including one that is SIGSTOPped and
//    can answer nothing. Each watchdog thread publishes its rank's state (heartbeat time, sequence
//    number, operation, step) into a board in node-shared memory (MPI_Win_allocate_shared over the
//    node's ranks, allocated by MpiRuntime at start-up). Reading it is a plain load: it works when
//    the target is stopped (its heartbeat just goes stale), needs no MPI call from the thread, no
//    message traffic, and leaves no files behind (the MPI runtime owns the segment). Rejected:
//    passive-target MPI_Get (across nodes it needs the target's progress, so a stopped target would
//    hang the watchdog itself), heartbeat messages from the thread (N² traffic and MPI calls from a
//    second thread racing the main one), files in /dev/shm (left behind by a SIGKILL).
//    Limit: the board is per node. On several nodes every rank still times out and aborts, but a
//    report names only the silent ranks on its own node; peers elsewhere are listed as not visible.
//  - Who is silent: ranks on the node whose heartbeat is stale (stopped or dead); failing that,
//    the ranks found outside communication (computing, I/O: an endless loop, a stuck file system)
//    by following the wait-for graph from the timed-out call's peers (a peer that is itself
//    waiting leads on to the peers of its own call: its send/recv partner, or its group by
//    mesh_group); failing that, peers on other nodes (not visible); failing that, the waiting
//    ranks with what they wait in (everyone waits: a stalled network, or a cycle).
//  - Overhead: the tick is 1/20 of the timeout (50 ms to 1 s); a heartbeat older than 4 ticks
//    (at least 2 s, or half the timeout) is stale.
//  - One line: the first rank of a node to time out claims the report (a compare-and-swap on the
//    board); the others stay quiet (and abort on their own only if the job is still alive 30 s
//    later). The reporter prints and flushes, then calls MPI_Abort. MpiRuntime initialises MPI with
//    MPI_THREAD_MULTIPLE (Open MPI 4.1 provides it), which makes MPI_Abort from the watchdog
//    thread legal; where the library provides less, the thread _exit()s instead and relies on the
//    launcher to end the job (mpirun does: a rank exiting non-zero aborts the job). mpirun then
//    kills every rank, SIGKILL included, which also ends a SIGSTOPped one.
//  - Allowance: until the second step starts (start-up, allocation, a checkpoint load, the sgemm
//    measurement and the whole first step) and while a WatchdogAllowance lives (checkpoint writes,
//    which pass a token rank after rank), the limit is kStartupFactor × the timeout.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/mesh.h"

namespace mlamoe {

class MpiRuntime;

inline constexpr double kStartupFactor = 5.0;

// The blocking operations a rank can wait in (Wait*: the wait of the non-blocking form).
enum class CommOp : uint8_t {
  None,
  AllReduce,
  ReduceScatter,
  AllGatherV,
  AllToAllV,
  Broadcast,
  Send,
  Recv,
  Barrier,
  Split,
  WaitAllReduce,
  WaitReduceScatter,
  WaitAllGatherV,
  WaitAllToAllV,
  WaitBroadcast,
  WaitSend,
  WaitRecv,
  WaitBarrier,
  WaitDevice,  // the host waits for queued device work (a copy, a synchronize): see watch_device_waits
};
const char* comm_op_name(CommOp op);  // "all_to_all_v", "wait(irecv)"

// Communicator kinds as the mesh names its groups ("world", "dp", "ep", "edp", "pp", "embed");
// any other name is "group".
uint32_t comm_kind_of(const std::string& name);
const char* comm_kind_name(uint32_t kind);
// A communicator's members as world ranks, for the report; returns its id.
uint32_t register_communicator(std::vector<int> world_ranks);

// What the main thread is blocked in: op | kind << 8 | comm id << 16 | (peer world rank + 1) << 32.
inline uint64_t pack_call(CommOp op, uint32_t kind, uint32_t comm_id, int peer_world) {
  return uint64_t(op) | uint64_t(kind & 0xffu) << 8 | uint64_t(comm_id & 0xffffu) << 16 |
         uint64_t(static_cast<uint32_t>(peer_world + 1)) << 32;
}

namespace progress {
extern std::atomic<uint64_t> seq;   // odd while the main thread is inside a blocking call
extern std::atomic<uint64_t> what;  // pack_call() of that call
}  // namespace progress

// Brackets one blocking call (main thread only): two relaxed stores in, one out.
class BlockingCall {
 public:
  explicit BlockingCall(uint64_t what) {
    progress::what.store(what, std::memory_order_relaxed);
    progress::seq.store(progress::seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  ~BlockingCall() { progress::seq.store(progress::seq.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  BlockingCall(const BlockingCall&) = delete;
  BlockingCall& operator=(const BlockingCall&) = delete;
};

// Makes the calling thread's host waits for the device (model/tensor/cuda/backend.h, HostWait)
// blocking calls the watchdog watches, as CommOp::WaitDevice on the world group of world_size
// ranks: an NCCL collective on device buffers returns at once, so a peer that never joins it
// leaves this rank waiting at its next read of a device value instead. A host wait inside a
// blocking call (a staging copy) belongs to that call. Called by a running Watchdog; the
// destructor of that Watchdog removes it.
void watch_device_waits(int world_size);
void unwatch_device_waits();

// The trainer calls this at the start of every step (1-based): the step is published for the
// report, and the start-up allowance ends when the second call comes (the first step is done).
void watchdog_step(int64_t step);

// While one lives, waits get the start-up allowance (checkpoint writes).
class WatchdogAllowance {
 public:
  WatchdogAllowance();
  ~WatchdogAllowance();
  WatchdogAllowance(const WatchdogAllowance&) = delete;
  WatchdogAllowance& operator=(const WatchdogAllowance&) = delete;
};

// The node-shared board (MpiRuntime creates it right after MPI_Init and drops it before
// MPI_Finalize; both collective over the node's ranks).
class WatchdogBoard;
struct WatchdogBoardFree {
  void operator()(WatchdogBoard* board) const;
};
using WatchdogBoardPtr = std::unique_ptr<WatchdogBoard, WatchdogBoardFree>;
// node: the MPI_Comm of this node's ranks (MpiRuntime's, as a pointer: no mpi.h here), duplicated for
// the board. Null when node-shared memory is unavailable.
WatchdogBoardPtr create_watchdog_board(const void* node);

class Watchdog {
 public:
  // Starts the watchdog thread of this rank; timeout_s == 0 (or a single rank) starts nothing.
  Watchdog(const MpiRuntime& mpi, double timeout_s);
  ~Watchdog();  // stops and joins the thread (not collective)
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Mesh coordinates for the report, once the mesh is known.
  void set_layout(const MeshShape& shape);
  bool running() const { return thread_.joinable(); }

 private:
  void run();
  void fire(uint64_t what, double waited_s, double limit_s, int64_t now_ns);
  std::string describe(int64_t world_rank) const;

  const MpiRuntime& mpi_;
  WatchdogBoard* board_;
  double timeout_s_;
  int64_t tick_ns_ = 0, stale_ns_ = 0;
  int64_t lost_claim_ns_ = 0;  // when another rank of the node claimed the report
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool has_layout_ = false;
  MeshShape shape_;
  std::thread thread_;
};

}  // namespace mlamoe
