#include "model/ops/activation.h"

#include <cmath>

#include "model/autograd/autocast.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/fast_exp.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

enum class Act { Silu, Sigmoid };

template <class T>
void act_forward_cpu(Act a, const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T s = stable_sigmoid(x[i]);
    y[i] = a == Act::Silu ? x[i] * s : s;
  }
}

// silu'(x) = s·(1 + x·(1 − s)); sigmoid'(x) = s·(1 − s).
template <class T>
void act_backward_cpu(Act a, const T* x, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T s = stable_sigmoid(x[i]);
    dx[i] = dy[i] * (a == Act::Silu ? s * (T(1) + x[i] * (T(1) - s)) : s * (T(1) - s));
  }
}

template <class T>
void swiglu_forward_cpu(const T* g, const T* u, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] * stable_sigmoid(g[i]) * u[i];
}

// X = T, or bf16 for gate and up kept as bf16 under autocast, read in place.
template <class T, class X>
void swiglu_backward_cpu(const X* g, const X* u, const T* dy, T* dg, T* du, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T gi = load_as<T>(g[i]), ui = load_as<T>(u[i]);
    T s = stable_sigmoid(gi);
    if (dg) dg[i] = dy[i] * ui * s * (T(1) + gi * (T(1) - s));
    if (du) du[i] = dy[i] * gi * s;
  }
}

struct ActBackward : Node {
  const char* name() const override { return act == Act::Silu ? "SiluBackward" : "SigmoidBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (on_cuda(x, name())) {
      MLAMOE_CUDA_CALL(act_backward_cuda, act == Act::Silu ? 0 : 1, x.device_data<float>(), g.device_data<float>(),
                       dx.device_data<float>(), x.numel());
      return {dx};
    }
    dispatch_float(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      act_backward_cpu<T>(act, x.data<T>(), g.data<T>(), dx.data<T>(), x.numel());
    });
    return {dx};
  }
  void release() override { x = Tensor(); }
  Act act = Act::Silu;
  Tensor x;
};

struct SwigluBackward : Node {
  const char* name() const override { return "SwigluBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    // gate and up are both bf16 (read in place) or both the op's dtype, as the forward kept them.
    Tensor g = widen_kept(dout.contiguous()), gate = kept_gate, up = kept_up;
    if (gate.dtype() != up.dtype()) gate = widen_kept(gate), up = widen_kept(up);
    gate = widen_kept_on_cuda(gate), up = widen_kept_on_cuda(up);
    Tensor dg = next[0] ? Tensor::empty(gate.shape(), g.dtype(), gate.device()) : Tensor();
    Tensor du = next[1] ? Tensor::empty(up.shape(), g.dtype(), up.device()) : Tensor();
    if (on_cuda(gate, "swiglu")) {
      auto ptr = [](const Tensor& t) { return t.defined() ? t.device_data<float>() : nullptr; };
      MLAMOE_CUDA_CALL(swiglu_backward_cuda, gate.device_data<float>(), up.device_data<float>(), g.device_data<float>(), ptr(dg),
                       ptr(du), gate.numel());
      return {dg, du};
    }
    dispatch_float(g.dtype(), "swiglu", [&](auto tag) {
      using T = decltype(tag);
      auto run = [&](auto xt) {
        using X = decltype(xt);
        swiglu_backward_cpu<T, X>(gate.data<X>(), up.data<X>(), g.data<T>(), dg.defined() ? dg.data<T>() : nullptr,
                                  du.defined() ? du.data<T>() : nullptr, gate.numel());
      };
      if (gate.dtype() == DType::BF16)
        run(bf16{});
      else
        run(T{});
    });
    return {dg, du};
  }
  void release() override { kept_gate = kept_up = Tensor(); }
  Tensor kept_gate, kept_up;  // keep_for_backward(gate), (up): bf16 when they are projections' results
};

Tensor activation(const Tensor& x, Act a, const char* op) {
  check_defined(x, op, "x");
  Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (on_cuda(x, op)) {
    MLAMOE_CUDA_CALL(act_forward_cuda, a == Act::Silu ? 0 : 1, xc.device_data<float>(), y.device_data<float>(), x.numel());
  } else {
    check_cpu(x, op);
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      act_forward_cpu<T>(a, xc.data<T>(), y.data<T>(), x.numel());
    });
  }
  if (needs_grad({x})) {
    auto n = std::make_shared<ActBackward>();
    n->act = a;
    n->x = xc.detach();
    connect(y, n, {x});
  }
  return y;
}

}  // namespace

Tensor silu(const Tensor& x) { return activation(x, Act::Silu, "silu"); }
Tensor sigmoid(const Tensor& x) { return activation(x, Act::Sigmoid, "sigmoid"); }

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu";
  check_defined(gate, op, "gate");
  check_defined(up, op, "up");
  MLAMOE_CHECK(gate.shape() == up.shape(),
               op << ": gate " << gate.describe() << " and up " << up.describe() << " must have the same shape");
  check_same_dtype(gate, up, op);
  check_same_device(gate, up, op);
  Tensor gc = gate.contiguous(), uc = up.contiguous();
  Tensor y = Tensor::empty(gate.shape(), gate.dtype(), gate.device());
  if (on_cuda(gate, op)) {
    MLAMOE_CUDA_CALL(swiglu_forward_cuda, gc.device_data<float>(), uc.device_data<float>(), y.device_data<float>(), y.numel());
  } else {
    check_cpu(gate, op);
    dispatch_float(gate.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      swiglu_forward_cpu<T>(gc.data<T>(), uc.data<T>(), y.data<T>(), y.numel());
    });
  }
  if (needs_grad({gate, up})) {
    auto n = std::make_shared<SwigluBackward>();
    n->kept_gate = keep_for_backward(gc);
    n->kept_up = keep_for_backward(uc);
    connect(y, n, {gate, up});
  }
  return y;
}

}  // namespace mlamoe
