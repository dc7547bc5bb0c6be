// The MoE permutation (model/README.md §3.4): the token·K assignments of the router's top-K
// indices grouped by expert, so that each expert's rows are contiguous for its GEMMs. A stable
// counting sort: within an expert, assignments keep their flat order s·K + k, on the CPU and on a
// CUDA device alike (the same permutation, bit for bit), so the experts' products and the
// un-permute (moe_combine) see the same rows in the same order on both. Not differentiable (the
// rows themselves are moved by index_select and moe_combine, which are).
//
// Dimension letters: the MoE legend in model/modules/moe.h (S tokens, E routed experts, K experts
// per token, N = S·K assignments).
#pragma once
#include <cstdint>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

struct Permutation {
  Tensor token;                  // [N] i64, on the indices' device: the source token of each permuted row
  Tensor slot;                   // [N] i64, on the indices' device: the flat assignment s·K + k of each row
  std::vector<int64_t> offsets;  // [E + 1] on the host: expert e owns rows offsets[e] .. offsets[e+1] − 1
};

// indices [S, K] (i64, CPU or CUDA) -> the permutation. Throws mlamoe::Error for an index outside
// [0, n_experts). On CUDA the sort runs on the device (model/ops/cuda/permute.cu) and only the
// E + 1 offsets (and the range check's count) come back to the host, which the experts' GEMM
// loop needs there.
Permutation permute_by_expert(const Tensor& indices, int64_t n_experts);

}  // namespace mlamoe
