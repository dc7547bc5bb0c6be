#include "model/ops/permute.h"

#include "model/ops/cuda/kernel_args.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

Permutation permute_on_cuda(const Tensor& idx_N, int64_t k, int64_t n_experts) {
  int64_t n = idx_N.numel();
  Device dev = idx_N.device();
  Permutation p;
  p.token = Tensor::empty({n}, DType::I64, dev);
  p.slot = Tensor::empty({n}, DType::I64, dev);
  Tensor offsets = Tensor::empty({n_experts + 2}, DType::I64, dev);  // E + 1 offsets, then the out-of-range count
  Tensor scratch = Tensor::empty({n_experts * cuda::kPermuteThreads}, DType::I64, dev);
  MLAMOE_CUDA_CALL(permute_by_expert_cuda, idx_N.device_data<int64_t>(), n, k, n_experts, p.token.device_data<int64_t>(),
                   p.slot.device_data<int64_t>(), offsets.device_data<int64_t>(), scratch.device_data<int64_t>());
  std::vector<int64_t> host = offsets.to(Device::cpu()).to_vector<int64_t>();
  MLAMOE_CHECK(host.back() == 0,
               "permute_by_expert: " << host.back() << " of the " << n << " expert indices are outside [0, " << n_experts << ")");
  p.offsets.assign(host.begin(), host.end() - 1);
  return p;
}

}  // namespace

Permutation permute_by_expert(const Tensor& indices, int64_t n_experts) {
  const char* op = "permute_by_expert";
  check_defined(indices, op, "indices");
  MLAMOE_CHECK(indices.dtype() == DType::I64 && indices.dim() >= 1,
               op << ": indices must be i64 [S, K], got " << indices.describe());
  MLAMOE_CHECK(n_experts > 0, op << ": n_experts must be positive, got " << n_experts);
  Tensor idx_SK = indices.contiguous();
  int64_t n_assign = idx_SK.numel(), k = idx_SK.size(-1);
  if (idx_SK.device().is_cuda()) return permute_on_cuda(idx_SK, k, n_experts);
  const int64_t* idx = idx_SK.data<int64_t>();
  Permutation p;
  p.offsets.assign(n_experts + 1, 0);
  for (int64_t i = 0; i < n_assign; ++i) {
    MLAMOE_CHECK(idx[i] >= 0 && idx[i] < n_experts,
                 op << ": expert index " << idx[i] << " at position " << i << " is outside [0, " << n_experts << ")");
    ++p.offsets[idx[i] + 1];
  }
  for (int64_t e = 0; e < n_experts; ++e) p.offsets[e + 1] += p.offsets[e];
  std::vector<int64_t> fill_E(p.offsets.begin(), p.offsets.end() - 1);
  p.token = Tensor::empty({n_assign}, DType::I64);
  p.slot = Tensor::empty({n_assign}, DType::I64);
  int64_t* token = p.token.data<int64_t>();
  int64_t* slot = p.slot.data<int64_t>();
  for (int64_t i = 0; i < n_assign; ++i) {
    int64_t row = fill_E[idx[i]]++;
    token[row] = i / k;
    slot[row] = i;
  }
  return p;
}

}  // namespace mlamoe
