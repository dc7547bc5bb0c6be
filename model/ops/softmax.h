// Softmax over the last dimension (the V2 router's scores; attention has its own fused kernel).
#pragma once
#include <algorithm>
#include <cmath>

#include "model/ops/fast_exp.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor softmax(const Tensor& x);  // x [..., N] -> [..., N]

// In place over one row of n scores: row = softmax(row); returns log Σ exp(row) (the row's
// log-sum-exp, which attention keeps for its backward). One exp per element. Shared by the softmax
// and attention kernels.
template <class T>
T softmax_row_inplace(T* row, int64_t n) {
  T m = row[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 1; j < n; ++j) m = std::max(m, row[j]);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] = fast_exp(row[j] - m);
  double z = 0.0;
#pragma omp simd reduction(+ : z)
  for (int64_t j = 0; j < n; ++j) z += row[j];
  T inv = static_cast<T>(1.0 / z);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  return static_cast<T>(m + std::log(z));
}

}  // namespace mlamoe
