// permute_by_expert on the device (CPU twin in model/ops/permute.cpp): a stable counting sort of
// the N = S·K expert indices into E buckets, in the CPU's order exactly. One block of
// cuda::kPermuteThreads threads; thread t owns the contiguous chunk t of the assignments.
//   1. count:  counts[e][t] = assignments of chunk t that chose expert e (each thread its own
//      column: no atomics); an index outside [0, E) is counted in offsets[E + 1] instead.
//   2. scan:   counts[e][t] += Σ (experts before e) + Σ (chunks before t of expert e): the first
//      row of expert e that chunk t fills. offsets[e] = the first row of expert e.
//   3. place:  each thread walks its chunk in order and writes token and slot at its next row.
// Chunks in order and each chunk in order: within an expert, rows keep their flat order, as the
// CPU's single pass does. The scan's sums are integer sums: any order gives the same result.
#include "model/ops/cuda/kernel_args.h"
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

constexpr int kT = cuda::kPermuteThreads;

__device__ inline void chunk_of(int64_t n, int64_t t, int64_t& c0, int64_t& c1) {
  c0 = n * t / kT;
  c1 = n * (t + 1) / kT;
}

__global__ void permute_count_kernel(const int64_t* idx, int64_t n, int64_t n_experts, int64_t* counts, int64_t* offsets) {
  const int64_t t = threadIdx.x;
  for (int64_t e = 0; e < n_experts; ++e) counts[e * kT + t] = 0;
  if (t == 0) offsets[n_experts + 1] = 0;
  __syncthreads();
  int64_t c0, c1, bad = 0;
  chunk_of(n, t, c0, c1);
  for (int64_t i = c0; i < c1; ++i) {
    int64_t e = idx[i];
    if (e < 0 || e >= n_experts)
      ++bad;
    else
      ++counts[e * kT + t];
  }
  if (bad) atomicAdd(reinterpret_cast<unsigned long long*>(offsets + n_experts + 1), static_cast<unsigned long long>(bad));
}

__global__ void permute_scan_kernel(int64_t* counts, int64_t n_experts, int64_t* offsets) {
  // Within each expert (one thread per expert): chunk bases relative to the expert's first row,
  // and the expert's total in offsets[e + 1].
  for (int64_t e = threadIdx.x; e < n_experts; e += kT) {
    int64_t run = 0;
    for (int64_t t = 0; t < kT; ++t) {
      int64_t c = counts[e * kT + t];
      counts[e * kT + t] = run;
      run += c;
    }
    offsets[e + 1] = run;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // the experts' first rows: E additions in order
    offsets[0] = 0;
    for (int64_t e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < n_experts; e += kT)
    for (int64_t t = 0; t < kT; ++t) counts[e * kT + t] += offsets[e];
}

__global__ void permute_place_kernel(const int64_t* idx, int64_t n, int64_t k, int64_t n_experts, int64_t* next, int64_t* token,
                                     int64_t* slot) {
  const int64_t t = threadIdx.x;
  int64_t c0, c1;
  chunk_of(n, t, c0, c1);
  for (int64_t i = c0; i < c1; ++i) {
    int64_t e = idx[i];
    if (e < 0 || e >= n_experts) continue;  // reported by the count; the caller throws
    int64_t row = next[e * kT + t]++;
    token[row] = i / k;
    slot[row] = i;
  }
}

}  // namespace

void permute_by_expert_cuda(const int64_t* idx, int64_t n, int64_t k, int64_t n_experts, int64_t* token, int64_t* slot,
                            int64_t* offsets, int64_t* scratch) {
  MLAMOE_LAUNCH(permute_count_kernel, 1, kT, 0, idx, n, n_experts, scratch, offsets);
  MLAMOE_LAUNCH(permute_scan_kernel, 1, kT, 0, scratch, n_experts, offsets);
  MLAMOE_LAUNCH(permute_place_kernel, 1, kT, 0, idx, n, k, n_experts, scratch, token, slot);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
