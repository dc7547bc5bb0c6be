// The MPI runtime of one process: initialisation and shutdown, rank and world size, and the one
// way a rank gives up: a message on stderr naming the rank, then MPI_Abort, so every rank of the
// job exits non-zero instead of hanging in a collective.
//
// MPI is initialised with MPI_THREAD_MULTIPLE: the training code still calls MPI from the main
// thread only, but the collective watchdog (parallel/watchdog.h) must be able to call MPI_Abort
// from its own thread while the main thread is blocked inside MPI. The runtime also owns the
// watchdog's node-shared board (allocated right after MPI_Init, freed before MPI_Finalize).
#pragma once
#include <string>
#include <vector>

#include "parallel/watchdog.h"

namespace mlamoe {

class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);  // MPI_Init_thread (multiple, see above)
  ~MpiRuntime();                        // MPI_Finalize
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // This rank's index among the ranks of its node, and their number (MPI_COMM_TYPE_SHARED).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // Every rank of this node's `s` (at most 127 bytes), in local-rank order (collective over the node).
  std::vector<std::string> node_all_gather(const std::string& s) const;
  // Whether the library granted MPI_THREAD_MULTIPLE (Open MPI does).
  bool thread_multiple() const { return thread_multiple_; }
  // The watchdog's board of this node's ranks; null if shared memory was unavailable.
  WatchdogBoard* watchdog_board() const { return board_.get(); }

  // Prints "mlamoe: error on rank R: <message>" and aborts every rank with exit code `code`.
  [[noreturn]] void fail(const std::string& message, int code = 1) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  void* node_ = nullptr;  // the node's MPI_Comm (MPI_COMM_TYPE_SHARED), freed before MPI_Finalize
  bool thread_multiple_ = false;
  WatchdogBoardPtr board_;
};

}  // namespace mlamoe
