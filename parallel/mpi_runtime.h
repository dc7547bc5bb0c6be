// The MPI runtime of one process: initialisation and shutdown, rank and world size, and the one
// way a rank gives up: a message on stderr naming the rank, then MPI_Abort, so every rank of the
// job exits non-zero instead of hanging in a collective.
#pragma once
#include <string>

namespace mlamoe {

class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);  // MPI_Init_thread (funneled: only the main thread calls MPI)
  ~MpiRuntime();                        // MPI_Finalize
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Prints "mlamoe: error on rank R: <message>" and aborts every rank with exit code `code`.
  [[noreturn]] void fail(const std::string& message, int code = 1) const;

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace mlamoe
