// Runs on 2 ranks (ctest: test_mpi_runtime_np2). Each rank back-propagates its own micro-batch; the
// gradients summed over ranks with MPI_Allreduce must equal the gradient that one process
// accumulates over both micro-batches: the property data parallelism rests on.
#include <gtest/gtest.h>
#include <mpi.h>

#include "model/ops/ops.h"
#include "parallel/mpi_runtime.h"

namespace mlamoe {
namespace {

Tensor micro_batch_loss(const Tensor& w, int micro) {
  Rng rng(100 + micro);
  Tensor x = Tensor::randn({5, 8}, rng);
  Tensor ids = Tensor::randint({5}, rng, 0, 3);
  return cross_entropy(linear(x, w), ids);
}

TEST(MpiRuntime, AllReducedGradientsEqualSingleProcessAccumulation) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ASSERT_EQ(size, 2) << "run with mpirun -np 2";
  Rng rng(1);
  Tensor w_ref = Tensor::randn({3, 8}, rng).set_requires_grad(true);
  for (int micro = 0; micro < size; ++micro) micro_batch_loss(w_ref, micro).backward();

  Tensor w = w_ref.detach().clone().set_requires_grad(true);
  micro_batch_loss(w, rank).backward();
  Tensor g = w.grad();
  MPI_Allreduce(MPI_IN_PLACE, g.data<float>(), static_cast<int>(g.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  std::vector<float> got = g.to_vector<float>(), want = w_ref.grad().to_vector<float>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6f) << "element " << i;
}

}  // namespace
}  // namespace mlamoe

int main(int argc, char** argv) {
  mlamoe::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.rank() != 0) {  // one report, from rank 0
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any_failed;
}
