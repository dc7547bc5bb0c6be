#include "model/ops/attention.h"

#include "model/ops/attention_head.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

struct AttnShape {
  int64_t b, t, h, dqk, dv;
};

// lse is [B, H, T]. One task per (batch, head).
template <class T>
void attention_forward_cpu(const T* q, const T* k, const T* v, T* o, T* lse, const AttnShape& a, T scale) {
  int64_t ldq = a.h * a.dqk, ldv = a.h * a.dv;
  attention_head::ThreadScratch<T> scratch(attention_head::forward_scratch(a.t, a.dqk, a.dv));
#pragma omp parallel
  {
    T* s = scratch.mine();
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t hi = 0; hi < a.h; ++hi) {
        int64_t qoff = bi * a.t * ldq + hi * a.dqk, voff = bi * a.t * ldv + hi * a.dv;
        attention_head::forward<T>({q + qoff, ldq}, {k + qoff, ldq}, {v + voff, ldv}, {o + voff, ldv},
                                   lse + (bi * a.h + hi) * a.t, a.t, a.dqk, a.dv, scale, s);
      }
    }
  }
}

template <class T>
void attention_backward_cpu(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk, T* dv,
                            const AttnShape& a, T scale) {
  int64_t ldq = a.h * a.dqk, ldv = a.h * a.dv;
  attention_head::ThreadScratch<T> scratch(attention_head::backward_scratch(a.t, a.dqk, a.dv));
#pragma omp parallel
  {
    T* work = scratch.mine();
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t hi = 0; hi < a.h; ++hi) {
        int64_t qoff = bi * a.t * ldq + hi * a.dqk, voff = bi * a.t * ldv + hi * a.dv;
        attention_head::backward<T>({q + qoff, ldq}, {k + qoff, ldq}, {v + voff, ldv}, {o + voff, ldv}, {dout + voff, ldv},
                                    lse + (bi * a.h + hi) * a.t, {dq + qoff, ldq}, {dk + qoff, ldq}, {dv + voff, ldv}, a.t, a.dqk,
                                    a.dv, scale, work);
      }
    }
  }
}

struct AttentionBackward : Node {
  const char* name() const override { return "AttentionBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device());
    Tensor dk = Tensor::zeros(k.shape(), k.dtype(), k.device());
    Tensor dv = Tensor::zeros(v.shape(), v.dtype(), v.device());
    if (on_cuda(q, "causal_attention")) {
      cuda::AttnDims a{shape.b, shape.t, shape.h, shape.dqk, shape.dv, static_cast<float>(scale)};
      cuda::AttnLayout lqk = cuda::attn_layout(a.t, a.h, a.dqk), lv = cuda::attn_layout(a.t, a.h, a.dv);
      Tensor rowdot = Tensor::empty({a.b, a.h, a.t}, DType::F32, q.device());
      MLAMOE_CUDA_CALL(attention_backward_cuda, a, q.device_data<float>(), lqk, k.device_data<float>(), lqk,
                       v.device_data<float>(), lv, o.device_data<float>(), lv, lse.device_data<float>(), g.device_data<float>(),
                       lv, dq.device_data<float>(), lqk, dk.device_data<float>(), lqk, dv.device_data<float>(), lv,
                       rowdot.device_data<float>());
      return {dq, dk, dv};
    }
    dispatch_float(q.dtype(), "causal_attention", [&](auto tag) {
      using T = decltype(tag);
      attention_backward_cpu<T>(q.data<T>(), k.data<T>(), v.data<T>(), o.data<T>(), lse.data<T>(), g.data<T>(), dq.data<T>(),
                                dk.data<T>(), dv.data<T>(), shape, static_cast<T>(scale));
    });
    return {dq, dk, dv};
  }
  void release() override { q = k = v = o = lse = Tensor(); }
  Tensor q, k, v, o, lse;
  AttnShape shape{};
  double scale = 1.0;
};

}  // namespace

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const char* op = "causal_attention";
  check_dim(q, 4, op, "q [B, T, H, Dqk]");
  check_dim(k, 4, op, "k [B, T, H, Dqk]");
  check_dim(v, 4, op, "v [B, T, H, Dv]");
  MLAMOE_CHECK(k.shape() == q.shape(), op << ": k " << k.describe() << " must have q's shape " << q.describe());
  MLAMOE_CHECK(v.shape()[0] == q.shape()[0] && v.shape()[1] == q.shape()[1] && v.shape()[2] == q.shape()[2],
               op << ": v " << v.describe() << " must match q " << q.describe() << " in B, T and H");
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  AttnShape a{q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3], v.shape()[3]};
  Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  Tensor o = Tensor::empty({a.b, a.t, a.h, a.dv}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({a.b, a.h, a.t}, q.dtype(), q.device());
  if (on_cuda(q, op)) {
    cuda::AttnDims d{a.b, a.t, a.h, a.dqk, a.dv, static_cast<float>(scale)};
    cuda::AttnLayout lqk = cuda::attn_layout(a.t, a.h, a.dqk), lv = cuda::attn_layout(a.t, a.h, a.dv);
    MLAMOE_CUDA_CALL(attention_forward_cuda, d, qc.device_data<float>(), lqk, kc.device_data<float>(), lqk,
                     vc.device_data<float>(), lv, o.device_data<float>(), lv, lse.device_data<float>());
  } else {
    check_cpu(q, op);
    dispatch_float(q.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      attention_forward_cpu<T>(qc.data<T>(), kc.data<T>(), vc.data<T>(), o.data<T>(), lse.data<T>(), a, static_cast<T>(scale));
    });
  }
  if (needs_grad({q, k, v})) {
    auto n = std::make_shared<AttentionBackward>();
    n->q = qc.detach();
    n->k = kc.detach();
    n->v = vc.detach();
    n->o = o.detach();
    n->lse = lse;
    n->shape = a;
    n->scale = scale;
    connect(o, n, {q, k, v});
  }
  return o;
}

}  // namespace mlamoe
