#include "model/ops/cross_entropy.h"

#include <cmath>
#include <vector>

#include "model/autograd/autocast.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/fast_exp.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

constexpr int kLanes = 16;  // independent running values per row: the loops vectorise, in a fixed order

template <class T>
T row_max(const T* x, int64_t v) {
  T lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = x[0];
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  T m = lane[0];
  for (int j = 1; j < kLanes; ++j) m = lane[j] > m ? lane[j] : m;
  for (; i < v; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// Σ exp(x − m), each lane summing v/16 terms in T before the lanes are added in f64.
template <class T>
double sum_exp_shifted(const T* x, int64_t v, T m) {
  T lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += fast_exp(x[i + j] - m);
  double z = 0.0;
  for (int j = 0; j < kLanes; ++j) z += static_cast<double>(lane[j]);
  for (; i < v; ++i) z += static_cast<double>(fast_exp(x[i] - m));
  return z;
}

// Per row: lse = log Σ exp(x), loss_r = lse − x[target]. Returns Σ loss_r over counted rows,
// summed in row order after the parallel loop so the result does not depend on the thread count.
template <class T, class I>
double cross_entropy_forward_cpu(const T* x, const I* tgt, T* lse, int64_t rows, int64_t v, int64_t ignore) {
  std::vector<double> row_loss(rows, 0.0);
#pragma omp parallel for schedule(static) if (rows * v > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * v;
    T m = row_max(xr, v);
    double l = static_cast<double>(m) + std::log(sum_exp_shifted(xr, v, m));
    lse[r] = static_cast<T>(l);
    if (tgt[r] != ignore) row_loss[r] = l - static_cast<double>(xr[tgt[r]]);
  }
  double total = 0.0;
  for (double l : row_loss) total += l;
  return total;
}

// dx_r = g/count · (softmax(x_r) − onehot(target_r)), 0 for ignored rows. X = T, or bf16 for
// logits kept as bf16 (keep_for_backward), read in place rather than widened to a copy.
template <class T, class X, class I>
void cross_entropy_backward_cpu(const X* x, const I* tgt, const T* lse, T* dx, int64_t rows, int64_t v, int64_t ignore,
                                double g) {
#pragma omp parallel for schedule(static) if (rows * v > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    T* dr = dx + r * v;
    if (tgt[r] == ignore) {
      for (int64_t j = 0; j < v; ++j) dr[j] = 0;
      continue;
    }
    const X* xr = x + r * v;
    T gt = static_cast<T>(g), l = lse[r];
    for (int64_t j = 0; j < v; ++j) dr[j] = gt * fast_exp(load_as<T>(xr[j]) - l);
    dr[tgt[r]] -= static_cast<T>(g);
  }
}

struct CrossEntropyBackward : Node {
  const char* name() const override { return "CrossEntropyBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    const Tensor x = widen_kept_on_cuda(kept_logits);
    Tensor dx = Tensor::empty(x.shape(), lse.dtype(), x.device());
    if (on_cuda(x, name())) {  // the loss's gradient is read on the device: no host sync
      Tensor dl = dout.contiguous();
      MLAMOE_CUDA_CALL(cross_entropy_backward_cuda, x.device_data<float>(), targets.device_data<int64_t>(),
                       lse.device_data<float>(), dl.device_data<float>(), dx.device_data<float>(), x.shape()[0], x.shape()[1],
                       ignore, count);
      return {dx, Tensor()};
    }
    double g = count > 0 ? dout.item() / static_cast<double>(count) : 0.0;
    dispatch_float(lse.dtype(), "cross_entropy", [&](auto tt) {
      dispatch_index(targets.dtype(), "cross_entropy", [&](auto it) {
        using T = decltype(tt);
        using I = decltype(it);
        auto run = [&](auto xt) {
          using X = decltype(xt);
          cross_entropy_backward_cpu<T, X, I>(x.data<X>(), targets.data<I>(), lse.data<T>(), dx.data<T>(), x.shape()[0],
                                              x.shape()[1], ignore, g);
        };
        if (x.dtype() == DType::BF16)
          run(bf16{});
        else
          run(T{});
      });
    });
    return {dx, Tensor()};
  }
  void release() override { kept_logits = targets = lse = Tensor(); }
  Tensor kept_logits, targets, lse;  // kept_logits: keep_for_backward(logits); on CUDA targets are i64
  int64_t count = 0, ignore = -100;
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  check_dim(logits, 2, op, "logits [N, V]");
  check_dim(targets, 1, op, "targets [N]");
  MLAMOE_CHECK(targets.shape()[0] == logits.shape()[0], op << ": " << targets.shape()[0] << " targets for " << logits.shape()[0]
                                                           << " rows of logits " << logits.describe());
  MLAMOE_CHECK(logits.shape()[1] > 0, op << ": empty vocabulary in " << logits.describe());
  Tensor x = logits.contiguous(), t = targets.contiguous();
  int64_t rows = x.shape()[0], v = x.shape()[1], count = 0;
  // The check reads the targets on the host (a small copy for device targets); host targets for
  // device logits (the data loader's) are moved to them.
  Tensor th = t.device().is_cpu() ? t : t.to(Device::cpu());
  if (!(t.device() == x.device())) t = t.to(x.device());
  dispatch_index(th.dtype(), op, [&](auto it) {
    using I = decltype(it);
    const I* p = th.data<I>();
    for (int64_t r = 0; r < rows; ++r) {
      if (p[r] == ignore_index) continue;
      MLAMOE_CHECK(p[r] >= 0 && p[r] < v, op << ": target " << static_cast<int64_t>(p[r]) << " at row " << r << " is outside [0, "
                                             << v << ") and is not the ignore index " << ignore_index);
      ++count;
    }
  });
  Tensor lse = Tensor::empty({rows}, x.dtype(), x.device());
  Tensor loss;
  if (on_cuda(x, op)) {
    if (t.dtype() != DType::I64) t = t.to(DType::I64);  // the kernels read i64 targets
    loss = Tensor::empty({}, x.dtype(), x.device());
    Tensor row_loss = Tensor::empty({rows}, x.dtype(), x.device());  // scratch
    MLAMOE_CUDA_CALL(cross_entropy_forward_cuda, x.device_data<float>(), t.device_data<int64_t>(), lse.device_data<float>(),
                     row_loss.device_data<float>(), loss.device_data<float>(), rows, v, ignore_index, count);
  } else {
    check_cpu(logits, op);
    double total = 0.0;
    dispatch_float(x.dtype(), op, [&](auto tt) {
      dispatch_index(t.dtype(), op, [&](auto it) {
        using T = decltype(tt);
        using I = decltype(it);
        total = cross_entropy_forward_cpu<T, I>(x.data<T>(), t.data<I>(), lse.data<T>(), rows, v, ignore_index);
      });
    });
    loss = Tensor::full({}, count > 0 ? total / static_cast<double>(count) : 0.0, x.dtype());
  }
  if (needs_grad({logits})) {
    auto n = std::make_shared<CrossEntropyBackward>();
    n->kept_logits = keep_for_backward(x);  // bf16 when they are lm_head's rounded result
    n->targets = t.detach();
    n->lse = lse;
    n->count = count;
    n->ignore = ignore_index;
    connect(loss, n, {logits, targets});
  }
  return loss;
}

}  // namespace mlamoe
