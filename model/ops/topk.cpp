#include "model/ops/topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/ops/cuda/kernels.h"
#include "model/ops/index.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

template <class T>
void topk_indices_cpu(const T* x, int64_t* idx, int64_t rows, int64_t n, int64_t k, bool& saw_nan) {
  bool nan = false;
#pragma omp parallel for schedule(static) reduction(|| : nan) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    for (int64_t j = 0; j < n; ++j) nan = nan || std::isnan(xr[j]);
    // Larger value first; on equal values the lower index first.
    auto before = [xr](int64_t a, int64_t b) { return xr[a] > xr[b] || (xr[a] == xr[b] && a < b); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    std::copy(order.begin(), order.begin() + k, idx + r * k);
  }
  saw_nan = nan;
}

}  // namespace

TopK topk(const Tensor& x, int64_t k) {
  const char* op = "topk";
  check_defined(x, op, "x");
  MLAMOE_CHECK(x.dim() >= 1, op << ": needs at least one dimension, got " << x.describe());
  int64_t n = x.shape().back();
  MLAMOE_CHECK(k >= 1 && k <= n, op << ": k = " << k << " must be in [1, " << n << "] for " << x.describe());
  Tensor xc = x.contiguous();
  Shape out_shape = x.shape();
  out_shape.back() = k;
  Tensor idx = Tensor::empty(out_shape, DType::I64, x.device());
  bool saw_nan = false;
  if (on_cuda(x, op)) {
    Tensor flag = Tensor::zeros({1}, DType::I32, x.device());
    MLAMOE_CUDA_CALL(topk_indices_cuda, xc.device_data<float>(), idx.device_data<int64_t>(), flag.device_data<int>(),
                     x.numel() / n, n, k);
    saw_nan = flag.item() != 0;  // checked before the gather below reads x at the indices
  } else {
    check_cpu(x, op);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      topk_indices_cpu<T>(xc.data<T>(), idx.data<int64_t>(), x.numel() / n, n, k, saw_nan);
    });
  }
  MLAMOE_CHECK(!saw_nan, op << ": input contains NaN (" << x.describe() << ")");
  return {gather(x, idx), idx};
}

}  // namespace mlamoe
