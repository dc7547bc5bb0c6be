#include "model/ops/softmax.h"

#include <cmath>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

template <class T>
void softmax_forward_cpu(const T* x, T* y, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(x + r * n, x + (r + 1) * n, y + r * n);
    softmax_row_inplace(y + r * n, n);
  }
}

// dx = y ⊙ (dy − Σ dy ⊙ y)
template <class T>
void softmax_backward_cpu(const T* y, const T* dy, T* dx, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * n;
    const T* gr = dy + r * n;
    double dot = 0.0;
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(yr[j]) * gr[j];
    T* dr = dx + r * n;
    for (int64_t j = 0; j < n; ++j) dr[j] = yr[j] * (gr[j] - static_cast<T>(dot));
  }
}

struct SoftmaxBackward : Node {
  const char* name() const override { return "SoftmaxBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
    int64_t n = y.shape().back();
    if (on_cuda(y, "softmax")) {
      MLAMOE_CUDA_CALL(softmax_backward_cuda, y.device_data<float>(), g.device_data<float>(), dx.device_data<float>(),
                       y.numel() / n, n);
      return {dx};
    }
    dispatch_float(y.dtype(), "softmax", [&](auto tag) {
      using T = decltype(tag);
      softmax_backward_cpu<T>(y.data<T>(), g.data<T>(), dx.data<T>(), y.numel() / n, n);
    });
    return {dx};
  }
  void release() override { y = Tensor(); }
  Tensor y;  // the output (detached)
};

}  // namespace

Tensor softmax(const Tensor& x) {
  const char* op = "softmax";
  check_defined(x, op, "x");
  MLAMOE_CHECK(x.dim() >= 1 && x.shape().back() > 0, op << ": needs a non-empty last dimension, got " << x.describe());
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  int64_t n = x.shape().back();
  if (on_cuda(x, op)) {
    MLAMOE_CUDA_CALL(softmax_forward_cuda, xc.device_data<float>(), y.device_data<float>(), x.numel() / n, n);
  } else {
    check_cpu(x, op);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      softmax_forward_cpu<T>(xc.data<T>(), y.data<T>(), x.numel() / n, n);
    });
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<SoftmaxBackward>();
    node->y = y.detach();
    connect(y, node, {x});
  }
  return y;
}

}  // namespace mlamoe
