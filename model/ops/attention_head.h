// The causal attention of one (batch, head), shared by causal_attention (q, k, v given per head)
// and mla_attention (MLA's packed projections, rotated as they are read). Internal to model/ops.
//
// Each matrix is row-major with its own leading dimension, so callers pass views into [B, T, H, d]
// tensors (ld = H·d) or packed per-head buffers (ld = d) alike. Queries go in blocks of
// kAttentionBlock rows; a block's scores [rows, t1] (keys 0 .. t1−1) live in a caller-owned buffer
// of kAttentionBlock·T elements, so the T×T score matrix never exists. One thread runs one head:
// the result depends on the shapes only, never on the thread count.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "model/ops/attention.h"
#include "model/ops/softmax.h"
#include "model/ops/tile_gemm.h"

namespace mlamoe::attention_head {

// Per-thread scratch of a parallel region, taken from the tensor allocator's cache before the
// region (a std::vector inside it would malloc on every call and, past glibc's mmap threshold,
// fault in fresh pages every step). Each thread's `per_thread` elements start at mine().
template <class T>
class ThreadScratch {
 public:
  explicit ThreadScratch(int64_t per_thread)
      : per_thread_(per_thread), buf_(Tensor::empty({std::max(1, omp_get_max_threads()) * per_thread}, dtype_of<T>())) {}
  T* mine() const { return buf_.data<T>() + omp_get_thread_num() * per_thread_; }

 private:
  int64_t per_thread_;
  Tensor buf_;
};

template <class T>
struct Mat {  // a row-major matrix view: element (i, j) at p[i·ld + j]
  T* p;
  int64_t ld;
  T* row(int64_t i) const { return p + i * ld; }
};

// X [t, d] (row stride ld) transposed into xt [d, t]: the key-side operand of Q·Kᵀ and dO·Vᵀ,
// so that tile_gemm loads whole vectors of keys. In strips of 16 rows: each column's 16 values go
// out as one contiguous run (a plain row-by-row loop stores with a stride of t floats, and was
// 45% of the backward's own time at t = 128).
template <class T>
void transpose_into(Mat<const T> x, int64_t t, int64_t d, T* xt) {
  constexpr int64_t kStrip = 16;
  for (int64_t j0 = 0; j0 < t; j0 += kStrip) {
    int64_t j1 = std::min(t, j0 + kStrip);
    for (int64_t c = 0; c < d; ++c) {
      T* out = xt + c * t;
      for (int64_t j = j0; j < j1; ++j) out[j] = x.p[j * x.ld + c];
    }
  }
}

// S = scale·Q[t0:t1]·K[0:t1]ᵀ into s [rows, t1] (kt: Kᵀ [dqk, t]), masked causally and turned
// into probabilities: with the row log-sum-exp computed into lse[t0:t1] (forward) or taken from it
// (backward). Masked entries are exact zeros.
template <class T>
void block_probs(Mat<const T> q, const T* kt, int64_t t, int64_t t0, int64_t t1, int64_t dqk, T scale, T* s, T* lse,
                 bool forward) {
  int64_t rows = t1 - t0;
  tile_gemm::gemm(rows, t1, dqk, scale, q.row(t0), q.ld, 1, kt, t, false, s, t1, tile_gemm::Mask::kColsBelow, t0);
  for (int64_t i = 0; i < rows; ++i) {
    T* sr = s + i * t1;
    int64_t valid = t0 + i + 1;  // keys 0 .. t0+i
    if (forward) {
      lse[t0 + i] = softmax_row_inplace(sr, valid);
    } else {
      T l = lse[t0 + i];
#pragma omp simd
      for (int64_t j = 0; j < valid; ++j) sr[j] = fast_exp(sr[j] - l);
    }
    std::fill(sr + valid, sr + t1, T(0));
  }
}

// Scratch elements forward() and backward() need for one head.
inline int64_t forward_scratch(int64_t t, int64_t dqk, int64_t /*dv*/) { return kAttentionBlock * t + dqk * t; }
inline int64_t backward_scratch(int64_t t, int64_t dqk, int64_t dv) { return 2 * kAttentionBlock * t + (dqk + dv) * t; }

// O = softmax(scale·Q·Kᵀ, causal)·V for one head of t tokens; lse [t] receives the row
// log-sum-exps. work: forward_scratch(t, dqk, dv) elements.
template <class T>
void forward(Mat<const T> q, Mat<const T> k, Mat<const T> v, Mat<T> o, T* lse, int64_t t, int64_t dqk, int64_t dv, T scale,
             T* work) {
  T* kt = work;
  T* s = kt + dqk * t;
  transpose_into(k, t, dqk, kt);
  for (int64_t t0 = 0; t0 < t; t0 += kAttentionBlock) {
    int64_t t1 = std::min(t, t0 + kAttentionBlock);
    block_probs(q, kt, t, t0, t1, dqk, scale, s, lse, true);
    // O[t0:t1] = P·V[0:t1]
    tile_gemm::gemm(t1 - t0, dv, t1, T(1), s, t1, 1, v.p, v.ld, false, o.row(t0), o.ld, tile_gemm::Mask::kInnerBelow, t0);
  }
}

// The backward of one head, blocks in order:
//   P = recomputed probabilities, dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)),
//   dQ = scale·dS·K, dK += scale·dSᵀ·Q.
// dq is written; dk and dv are accumulated into (the caller zeroes them). work:
// backward_scratch(t, dqk, dvd) elements.
template <class T>
void backward(Mat<const T> q, Mat<const T> k, Mat<const T> v, Mat<const T> o, Mat<const T> dout, const T* lse, Mat<T> dq,
              Mat<T> dk, Mat<T> dv, int64_t t, int64_t dqk, int64_t dvd, T scale, T* work) {
  using tile_gemm::Mask;
  T* kt = work;
  T* vt = kt + dqk * t;
  T* p = vt + dvd * t;
  T* dp = p + kAttentionBlock * t;
  transpose_into(k, t, dqk, kt);
  transpose_into(v, t, dvd, vt);
  for (int64_t t0 = 0; t0 < t; t0 += kAttentionBlock) {
    int64_t t1 = std::min(t, t0 + kAttentionBlock), rows = t1 - t0;
    block_probs(q, kt, t, t0, t1, dqk, scale, p, const_cast<T*>(lse), false);
    tile_gemm::gemm(t1, dvd, rows, T(1), p, 1, t1, dout.row(t0), dout.ld, true, dv.p, dv.ld, Mask::kInnerFrom, t0);
    tile_gemm::gemm(rows, t1, dvd, T(1), dout.row(t0), dout.ld, 1, vt, t, false, dp, t1, Mask::kColsBelow, t0);
    for (int64_t i = 0; i < rows; ++i) {
      const T* orow = o.row(t0 + i);
      const T* grow = dout.row(t0 + i);
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < dvd; ++j) acc += static_cast<double>(orow[j]) * grow[j];
      T dd = static_cast<T>(acc);
      const T* pr = p + i * t1;
      T* dpr = dp + i * t1;
      int64_t valid = t0 + i + 1;
#pragma omp simd
      for (int64_t j = 0; j < valid; ++j) dpr[j] = pr[j] * (dpr[j] - dd);
      std::fill(dpr + valid, dpr + t1, T(0));  // dS is 0 where masked (dP was not computed there)
    }
    tile_gemm::gemm(rows, dqk, t1, scale, dp, t1, 1, k.p, k.ld, false, dq.row(t0), dq.ld, Mask::kInnerBelow, t0);
    tile_gemm::gemm(t1, dqk, rows, scale, dp, 1, t1, q.row(t0), q.ld, true, dk.p, dk.ld, Mask::kInnerFrom, t0);
  }
}

}  // namespace mlamoe::attention_head
