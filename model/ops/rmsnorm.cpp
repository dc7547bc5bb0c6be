#include "model/ops/rmsnorm.h"

#include <cmath>

#include "model/autograd/autocast.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

template <class T>
void rmsnorm_forward_cpu(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t d, double eps) {
#pragma omp parallel for schedule(static) if (rows * d > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * d;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    T rs = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    rstd[r] = rs;
    T* yr = y + r * d;
    for (int64_t j = 0; j < d; ++j) yr[j] = w[j] * (xr[j] * rs);
  }
}

// With x̂ = x·rstd and g = dy ⊙ w:  dx = rstd·(g − x̂·mean(g ⊙ x̂)),  dw = Σ_rows dy ⊙ x̂.
// dw is summed per fixed block of rows, then the blocks in order, so the result does not depend
// on the number of threads.
template <class T, class X>
void rmsnorm_backward_cpu(const T* dy, const X* x, const T* w, const T* rstd, T* dx, T* dw, int64_t rows, int64_t d) {
  constexpr int64_t kBlock = 32;
  int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> partial(dw ? blocks * d : 0, 0.0);
#pragma omp parallel for schedule(static) if (rows * d > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t r = b * kBlock; r < std::min(rows, (b + 1) * kBlock); ++r) {
      const X* xr = x + r * d;
      const T* gr = dy + r * d;
      double rs = rstd[r], dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(gr[j]) * w[j] * load_as<T>(xr[j]) * rs;
      double m = dot / static_cast<double>(d);
      if (dx) {
        T* dr = dx + r * d;
        for (int64_t j = 0; j < d; ++j) dr[j] = static_cast<T>(rs * (gr[j] * w[j] - load_as<T>(xr[j]) * rs * m));
      }
      if (dw) {
        double* pr = partial.data() + b * d;
        for (int64_t j = 0; j < d; ++j) pr[j] += static_cast<double>(gr[j]) * load_as<T>(xr[j]) * rs;
      }
    }
  }
  if (dw) {
    for (int64_t j = 0; j < d; ++j) dw[j] = 0;
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t j = 0; j < d; ++j) dw[j] += static_cast<T>(partial[b * d + j]);
  }
}

template void rmsnorm_forward_cpu<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_forward_cpu<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_backward_cpu<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                          int64_t);
template void rmsnorm_backward_cpu<float, bf16>(const float*, const bf16*, const float*, const float*, float*, float*, int64_t,
                                                int64_t);
template void rmsnorm_backward_cpu<double>(const double*, const double*, const double*, const double*, double*, double*, int64_t,
                                           int64_t);

namespace {

struct RmsNormBackward : Node {
  const char* name() const override { return "RmsNormBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    const Tensor x = widen_kept_on_cuda(kept_x);  // bf16 (read in place on the CPU) when the forward kept it so
    Tensor g = dout.contiguous();
    int64_t d = w.numel(), rows = x.numel() / std::max<int64_t>(d, 1);
    Tensor dx = next[0] ? Tensor::empty(x.shape(), w.dtype(), x.device()) : Tensor();
    Tensor dw = next[1] ? Tensor::empty(w.shape(), w.dtype(), w.device()) : Tensor();
    if (on_cuda(x, name())) {
      Tensor scratch = dw.defined() ? Tensor::empty({cuda::rmsnorm_dw_scratch(rows, d)}, DType::F32, x.device()) : Tensor();
      auto ptr = [](const Tensor& t) { return t.defined() ? t.device_data<float>() : nullptr; };
      MLAMOE_CUDA_CALL(rmsnorm_backward_cuda, g.device_data<float>(), x.device_data<float>(), w.device_data<float>(),
                       rstd.device_data<float>(), ptr(dx), ptr(dw), ptr(scratch), rows, d);
      return {dx, dw};
    }
    dispatch_float(w.dtype(), "rmsnorm", [&](auto tag) {
      using T = decltype(tag);
      auto run = [&](auto xt) {
        using X = decltype(xt);
        rmsnorm_backward_cpu<T, X>(g.data<T>(), x.data<X>(), w.data<T>(), rstd.data<T>(), dx.defined() ? dx.data<T>() : nullptr,
                                   dw.defined() ? dw.data<T>() : nullptr, rows, d);
      };
      if (x.dtype() == DType::BF16)
        run(bf16{});
      else
        run(T{});
    });
    return {dx, dw};
  }
  void release() override { kept_x = w = rstd = Tensor(); }
  Tensor kept_x, w, rstd;  // kept_x: keep_for_backward(x)
};

}  // namespace

Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
  const char* op = "rmsnorm";
  check_defined(x, op, "x");
  check_dim(weight, 1, op, "weight");
  MLAMOE_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[0],
               op << ": weight has " << weight.shape()[0] << " elements, x's last dim is " << (x.dim() ? x.shape().back() : 0)
                  << " (" << x.describe() << ")");
  check_same_dtype(x, weight, op);
  check_same_device(x, weight, op);
  MLAMOE_CHECK(eps > 0, op << ": eps must be positive, got " << eps);
  Tensor xc = x.contiguous(), wc = weight.contiguous();
  int64_t d = weight.shape()[0], rows = x.numel() / std::max<int64_t>(d, 1);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor rstd = Tensor::empty({rows}, x.dtype(), x.device());
  if (on_cuda(x, op))
    MLAMOE_CUDA_CALL(rmsnorm_forward_cuda, xc.device_data<float>(), wc.device_data<float>(), y.device_data<float>(),
                     rstd.device_data<float>(), rows, d, eps);
  else
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      check_cpu(x, op);
      rmsnorm_forward_cpu<T>(xc.data<T>(), wc.data<T>(), y.data<T>(), rstd.data<T>(), rows, d, eps);
    });
  if (needs_grad({x, weight})) {
    auto n = std::make_shared<RmsNormBackward>();
    n->kept_x = keep_for_backward(xc);  // bf16 when x holds a projection's rounded result
    n->w = wc.detach();
    n->rstd = rstd;
    connect(y, n, {x, weight});
  }
  return y;
}

}  // namespace mlamoe
