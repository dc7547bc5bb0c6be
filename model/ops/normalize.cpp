#include "model/ops/normalize.h"

#include <cmath>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

template <class T>
void normalize_rows_forward_cpu(const T* x, T* y, T* sums, int64_t rows, int64_t n, bool& zero_row) {
  bool zero = false;
#pragma omp parallel for schedule(static) reduction(|| : zero) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    double z = 0.0;
    for (int64_t j = 0; j < n; ++j) z += x[r * n + j];
    zero = zero || z == 0.0;
    sums[r] = static_cast<T>(z);
    T inv = static_cast<T>(1.0 / z);
    for (int64_t j = 0; j < n; ++j) y[r * n + j] = x[r * n + j] * inv;
  }
  zero_row = zero;
}

// y = x / z with z = Σ x:  dx_j = (dy_j − Σ_i dy_i y_i) / z
template <class T>
void normalize_rows_backward_cpu(const T* y, const T* sums, const T* dy, T* dx, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0.0;
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(dy[r * n + j]) * y[r * n + j];
    T inv = static_cast<T>(1.0 / static_cast<double>(sums[r]));
    for (int64_t j = 0; j < n; ++j) dx[r * n + j] = (dy[r * n + j] - static_cast<T>(dot)) * inv;
  }
}

struct NormalizeRowsBackward : Node {
  const char* name() const override { return "NormalizeRowsBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
    int64_t n = y.shape().back();
    if (on_cuda(y, "normalize_rows")) {
      MLAMOE_CUDA_CALL(normalize_rows_backward_cuda, y.device_data<float>(), sums.device_data<float>(), g.device_data<float>(),
                       dx.device_data<float>(), y.numel() / n, n);
      return {dx};
    }
    dispatch_float(y.dtype(), "normalize_rows", [&](auto tag) {
      using T = decltype(tag);
      normalize_rows_backward_cpu<T>(y.data<T>(), sums.data<T>(), g.data<T>(), dx.data<T>(), y.numel() / n, n);
    });
    return {dx};
  }
  void release() override { y = sums = Tensor(); }
  Tensor y;     // the output (detached)
  Tensor sums;  // [rows] Σ x per row
};

}  // namespace

Tensor normalize_rows(const Tensor& x) {
  const char* op = "normalize_rows";
  check_defined(x, op, "x");
  MLAMOE_CHECK(x.dim() >= 1 && x.shape().back() > 0, op << ": needs a non-empty last dimension, got " << x.describe());
  Tensor xc = x.contiguous();
  int64_t n = x.shape().back();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor sums = Tensor::empty({x.numel() / n}, x.dtype(), x.device());
  bool zero_row = false;
  if (on_cuda(x, op)) {
    Tensor flag = Tensor::zeros({1}, DType::I32, x.device());
    MLAMOE_CUDA_CALL(normalize_rows_forward_cuda, xc.device_data<float>(), y.device_data<float>(), sums.device_data<float>(),
                     flag.device_data<int>(), x.numel() / n, n);
    zero_row = flag.item() != 0;  // the check waits for the kernel, as the CPU's does
  } else {
    check_cpu(x, op);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      normalize_rows_forward_cpu<T>(xc.data<T>(), y.data<T>(), sums.data<T>(), x.numel() / n, n, zero_row);
    });
  }
  MLAMOE_CHECK(!zero_row, op << ": a row of " << x.describe() << " sums to 0");
  if (needs_grad({x})) {
    auto node = std::make_shared<NormalizeRowsBackward>();
    node->y = y.detach();
    node->sums = sums;
    connect(y, node, {x});
  }
  return y;
}

}  // namespace mlamoe
