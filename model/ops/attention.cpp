#include "model/ops/attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "model/ops/gemm.h"
#include "model/ops/op_common.h"
#include "model/ops/softmax.h"

namespace mlamoe {

namespace {

struct AttnShape {
  int64_t b, t, h, dqk, dv;
};

// Scores of queries [t0, t1) against keys [0, t1) for one (batch, head): S = scale·Q·Kᵀ, masked
// causally, turned into probabilities with the given (or computed) row log-sum-exp.
template <class T>
void block_probs(const T* q, const T* k, T* s, int64_t t0, int64_t t1, const AttnShape& a, T scale, T* lse, bool compute_lse) {
  int64_t rows = t1 - t0, ld = a.h * a.dqk;
  gemm(false, true, rows, t1, a.dqk, scale, q + t0 * ld, ld, k, ld, T(0), s, t1);
  for (int64_t i = 0; i < rows; ++i) {
    T* sr = s + i * t1;
    int64_t valid = t0 + i + 1;  // keys 0 .. t0+i
    if (compute_lse) {
      lse[i] = softmax_row_inplace(sr, valid);
    } else {  // backward: probabilities from the saved log-sum-exp
      T l = lse[i];
#pragma omp simd
      for (int64_t j = 0; j < valid; ++j) sr[j] = fast_exp(sr[j] - l);
    }
    for (int64_t j = valid; j < t1; ++j) sr[j] = 0;
  }
}

// lse is [B, H, T].
template <class T>
void attention_forward_cpu(const T* q, const T* k, const T* v, T* o, T* lse, const AttnShape& a, T scale) {
  int64_t nblocks = (a.t + kAttentionBlock - 1) / kAttentionBlock;
  int64_t tasks = a.b * a.h * nblocks;
#pragma omp parallel
  {
    std::vector<T> s(kAttentionBlock * a.t);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      // Largest blocks first balances the triangular work.
      int64_t blk = nblocks - 1 - task % nblocks, bh = task / nblocks, bi = bh / a.h, hi = bh % a.h;
      int64_t t0 = blk * kAttentionBlock, t1 = std::min(a.t, t0 + kAttentionBlock);
      const T* qb = q + bi * a.t * a.h * a.dqk + hi * a.dqk;
      const T* kb = k + bi * a.t * a.h * a.dqk + hi * a.dqk;
      const T* vb = v + bi * a.t * a.h * a.dv + hi * a.dv;
      T* ob = o + bi * a.t * a.h * a.dv + hi * a.dv;
      T* lb = lse + (bi * a.h + hi) * a.t + t0;
      block_probs(qb, kb, s.data(), t0, t1, a, scale, lb, true);
      // O[t0:t1] = P·V[0:t1]
      gemm(false, false, t1 - t0, a.dv, t1, T(1), s.data(), t1, vb, a.h * a.dv, T(0), ob + t0 * a.h * a.dv, a.h * a.dv);
    }
  }
}

// Per (batch, head), blocks in order (dk, dv accumulate over blocks):
//   P = recomputed probs, dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)),
//   dQ = scale·dS·K, dK += scale·dSᵀ·Q.
template <class T>
void attention_backward_cpu(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk, T* dv,
                            const AttnShape& a, T scale) {
  int64_t nblocks = (a.t + kAttentionBlock - 1) / kAttentionBlock;
  int64_t ldq = a.h * a.dqk, ldv = a.h * a.dv;
#pragma omp parallel
  {
    std::vector<T> p(kAttentionBlock * a.t), dp(kAttentionBlock * a.t), rowdot(kAttentionBlock);
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t hi = 0; hi < a.h; ++hi) {
        int64_t qoff = bi * a.t * ldq + hi * a.dqk, voff = bi * a.t * ldv + hi * a.dv;
        for (int64_t blk = 0; blk < nblocks; ++blk) {
          int64_t t0 = blk * kAttentionBlock, t1 = std::min(a.t, t0 + kAttentionBlock), rows = t1 - t0;
          T* lb = const_cast<T*>(lse) + (bi * a.h + hi) * a.t + t0;
          block_probs(q + qoff, k + qoff, p.data(), t0, t1, a, scale, lb, false);
          const T* dob = dout + voff + t0 * ldv;
          gemm(true, false, t1, a.dv, rows, T(1), p.data(), t1, dob, ldv, T(1), dv + voff, ldv);
          gemm(false, true, rows, t1, a.dv, T(1), dob, ldv, v + voff, ldv, T(0), dp.data(), t1);
          for (int64_t i = 0; i < rows; ++i) {
            const T* orow = o + voff + (t0 + i) * ldv;
            const T* grow = dob + i * ldv;
            double acc = 0.0;
            for (int64_t j = 0; j < a.dv; ++j) acc += static_cast<double>(orow[j]) * grow[j];
            T dd = static_cast<T>(acc);
            T* pr = p.data() + i * t1;
            T* dpr = dp.data() + i * t1;
            for (int64_t j = 0; j < t1; ++j) dpr[j] = pr[j] * (dpr[j] - dd);  // dS (0 where masked, since P is 0)
          }
          gemm(false, false, rows, a.dqk, t1, scale, dp.data(), t1, k + qoff, ldq, T(0), dq + qoff + t0 * ldq, ldq);
          gemm(true, false, t1, a.dqk, rows, scale, dp.data(), t1, q + qoff + t0 * ldq, ldq, T(1), dk + qoff, ldq);
        }
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
  check_cpu(q, op);
  check_cpu(k, op);
  check_cpu(v, op);
  AttnShape a{q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3], v.shape()[3]};
  Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  Tensor o = Tensor::empty({a.b, a.t, a.h, a.dv}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({a.b, a.h, a.t}, q.dtype(), q.device());
  dispatch_float(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    attention_forward_cpu<T>(qc.data<T>(), kc.data<T>(), vc.data<T>(), o.data<T>(), lse.data<T>(), a, static_cast<T>(scale));
  });
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
