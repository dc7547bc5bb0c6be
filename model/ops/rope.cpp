#include "model/ops/rope.h"

#include <cmath>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// sign = +1 rotates forward (forward pass), −1 rotates back (backward pass).
template <class T>
void rope_rotate_cpu(const T* x, const T* cos, const T* sin, T* y, int64_t b, int64_t t, int64_t h, int64_t d, T sign) {
  int64_t half = d / 2;
#pragma omp parallel for collapse(2) schedule(static) if (b * t * h * d > kParallelGrain)
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t ti = 0; ti < t; ++ti) {
      const T* c = cos + ti * half;
      const T* s = sin + ti * half;
      for (int64_t hi = 0; hi < h; ++hi) {
        int64_t base = ((bi * t + ti) * h + hi) * d;
        rope_row(x + base, c, s, y + base, half, sign);
      }
    }
  }
}

void rope_apply(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& y, int sign) {
  if (on_cuda(x, "rope")) {
    MLAMOE_CUDA_CALL(rope_rotate_cuda, x.device_data<float>(), cos.device_data<float>(), sin.device_data<float>(),
                     y.device_data<float>(), x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], static_cast<float>(sign));
    return;
  }
  check_cpu(x, "rope");
  dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_rotate_cpu<T>(x.data<T>(), cos.data<T>(), sin.data<T>(), y.data<T>(), x.shape()[0], x.shape()[1], x.shape()[2],
                       x.shape()[3], static_cast<T>(sign));
  });
}

struct RopeBackward : Node {
  const char* name() const override { return "RopeBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    rope_apply(g, cos, sin, dx, -1);
    return {dx};
  }
  void release() override { cos = sin = Tensor(); }
  Tensor cos, sin;
};

}  // namespace

RopeTables rope_tables(int64_t start, int64_t len, int64_t dim, double theta, DType dtype, const std::vector<double>& inv_freq) {
  MLAMOE_CHECK(dim > 0 && dim % 2 == 0, "rope_tables: rotary dim must be positive and even, got " << dim);
  MLAMOE_CHECK(inv_freq.empty() || static_cast<int64_t>(inv_freq.size()) == dim / 2,
               "rope_tables: " << inv_freq.size() << " frequencies given for rotary dim " << dim);
  int64_t half = dim / 2;
  Tensor c = Tensor::empty({len, half}, DType::F64), s = Tensor::empty({len, half}, DType::F64);
  double* pc = c.data<double>();
  double* ps = s.data<double>();
  for (int64_t p = 0; p < len; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      double w = inv_freq.empty() ? std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim)) : inv_freq[i];
      double a = static_cast<double>(start + p) * w;
      pc[p * half + i] = std::cos(a);
      ps[p * half + i] = std::sin(a);
    }
  }
  return {c.to(dtype), s.to(dtype)};
}

Tensor rope(const Tensor& x, const RopeTables& tables) {
  const char* op = "rope";
  check_dim(x, 4, op, "x [B, T, H, d]");
  check_dim(tables.cos, 2, op, "cos");
  check_dim(tables.sin, 2, op, "sin");
  int64_t t = x.shape()[1], d = x.shape()[3];
  MLAMOE_CHECK(d % 2 == 0, op << ": rotary dim must be even, got " << x.describe());
  MLAMOE_CHECK(tables.cos.shape() == Shape({t, d / 2}) && tables.sin.shape() == Shape({t, d / 2}),
               op << ": tables must be [" << t << ", " << d / 2 << "] for " << x.describe() << ", got " << tables.cos.describe()
                  << " and " << tables.sin.describe());
  check_same_dtype(x, tables.cos, op);
  check_same_dtype(x, tables.sin, op);
  Tensor xc = x.contiguous(), c = tables.cos.contiguous(), s = tables.sin.contiguous();
  if (!(c.device() == x.device() && s.device() == x.device())) {  // rope_tables makes them on the host
    NoGrad no_grad;
    c = c.to(x.device());
    s = s.to(x.device());
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  rope_apply(xc, c, s, y, +1);
  if (needs_grad({x})) {
    auto n = std::make_shared<RopeBackward>();
    n->cos = c.detach();
    n->sin = s.detach();
    connect(y, n, {x});
  }
  return y;
}

}  // namespace mlamoe
