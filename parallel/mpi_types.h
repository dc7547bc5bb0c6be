// What the MPI-backed code shares (mpi_communicator.cpp, nccl_api_mpi.cpp): a reduction's and a
// dtype's MPI equivalents, and a communicator's members as MPI_COMM_WORLD ranks.
#pragma once
#include <mpi.h>

#include <numeric>
#include <vector>

#include "model/tensor/dtype.h"
#include "parallel/communicator.h"

namespace mlamoe {

inline MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX; }

inline MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::U8:
      return MPI_UINT8_T;
    case DType::BF16:
      return MPI_UINT16_T;  // moved, never reduced
  }
  return MPI_BYTE;
}

// comm's ranks 0 .. size−1 as ranks of MPI_COMM_WORLD (for the watchdog's reports).
inline std::vector<int> world_ranks_of(MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  MPI_Group group, world_group;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> local(size), world(size);
  std::iota(local.begin(), local.end(), 0);
  MPI_Group_translate_ranks(group, size, local.data(), world_group, world.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return world;
}

}  // namespace mlamoe
