// The selection step of topk.cu and router.cu: one warp finds, in one row of n values, the best
// element that comes after a given one in the order "larger value first, on equal values the lower
// index first" (model/README.md §3.2: deterministic ties). Calling it k times, each time after the
// previous pick, gives the top k in order without marking taken elements. The order is total for
// values without NaN (−inf included: those sort last, by index), so the pick is one element
// whatever the order of the lanes' exchanges; rows with NaN are an error the callers report (their
// picks are unspecified then).
#pragma once
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

constexpr int kSelectThreads = 32;  // the select kernels run one warp per block, a row at a time

// True when (av, ai) ranks before (bv, bi); an index < 0 is "none", which every element beats.
template <class V>
__device__ inline bool ranks_before(V av, int64_t ai, V bv, int64_t bi) {
  if (bi < 0) return true;
  if (ai < 0) return false;
  return av > bv || (av == bv && ai < bi);
}

// The first element of vals[0 .. n) after (prev_v, prev_i) (prev_i < 0: the best of all), or -1
// when none is left. Called by all 32 lanes of a one-warp block; every lane gets the answer.
template <class V>
__device__ inline int64_t warp_pick_next(const V* vals, int64_t n, V prev_v, int64_t prev_i) {
  V best_v = prev_v;
  long long best_i = -1;  // long long: the type every CUDA version shuffles
  for (int64_t j = threadIdx.x; j < n; j += kSelectThreads)
    if ((prev_i < 0 || ranks_before(prev_v, prev_i, vals[j], j)) && ranks_before<V>(vals[j], j, best_v, best_i)) {
      best_v = vals[j];
      best_i = j;
    }
  // A butterfly over the lanes' candidates: the best is unique, so every pairing finds it.
  for (int off = 16; off > 0; off /= 2) {
    V other_v = __shfl_xor_sync(0xffffffffu, best_v, off);
    long long other_i = __shfl_xor_sync(0xffffffffu, best_i, off);
    if (ranks_before<V>(other_v, other_i, best_v, best_i)) {
      best_v = other_v;
      best_i = other_i;
    }
  }
  return best_i;
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
