#include "parallel/mpi_runtime.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>

namespace mlamoe {

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // The ranks sharing this node (its shared-memory domain), ordered by world rank: a rank's GPU is
  // its index among them (bind_cuda_device, train/distributed.cpp).
  auto* node = new MPI_Comm(MPI_COMM_NULL);
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, node) == MPI_SUCCESS) {
    MPI_Comm_rank(*node, &local_rank_);
    MPI_Comm_size(*node, &local_size_);
  } else {
    *node = MPI_COMM_SELF;
    local_rank_ = 0, local_size_ = 1;
  }
  node_ = node;
  board_ = create_watchdog_board(node_);
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  board_.reset();  // collective over the node, like MPI_Finalize
  auto* node = static_cast<MPI_Comm*>(node_);
  if (*node != MPI_COMM_SELF && *node != MPI_COMM_NULL) MPI_Comm_free(node);
  delete node;
  MPI_Finalize();
}

std::vector<std::string> MpiRuntime::node_all_gather(const std::string& s) const {
  constexpr int kWidth = 128;
  char mine[kWidth] = {0};
  s.copy(mine, kWidth - 1);
  std::vector<char> all(static_cast<size_t>(kWidth) * local_size_);
  MPI_Allgather(mine, kWidth, MPI_CHAR, all.data(), kWidth, MPI_CHAR, *static_cast<MPI_Comm*>(node_));
  std::vector<std::string> out;
  for (int r = 0; r < local_size_; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * kWidth);
  return out;
}

void MpiRuntime::fail(const std::string& message, int code) const {
  std::fprintf(stderr, "mlamoe: error on rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);  // not reached: MPI_Abort does not return
}

}  // namespace mlamoe
