// Expert selection of the MoE router (CPU twin route_row_cpu in model/ops/router.cpp), one block
// per token (one warp), scores s [S, E], bias b [E] (or null) -> idx [S, K] (i64):
//   1. w_e = s_e + b_e, in double as on the CPU (the selection is discrete: the same doubles give
//      the same experts, bit for bit);
//   2. with G = n_group > 1 groups of E/G contiguous experts: the group score (the sum of its two
//      largest w, or its largest w), the topk_group best groups kept (ties to the lower group, as
//      the CPU's stable sort), the experts of the other groups set to −inf;
//   3. the K best w, in descending order, ties to the lower index (row_select.cuh).
// w, the group scores and the kept flags live in dynamic shared memory: E + G doubles, G bytes.
// *saw_nan is set to 1 (an integer atomicMax, order-free) when a token's scores hold a NaN.
#include "model/ops/cuda/kernel_common.cuh"
#include "model/ops/cuda/row_select.cuh"
#include "model/tensor/error.h"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void route_select_kernel(const float* s, const float* b, int64_t* out, int* saw_nan, int64_t rows, int64_t n_experts,
                                    int64_t top_k, int64_t n_group, int64_t topk_group, bool group_max) {
  MLAMOE_DYNAMIC_SHARED(double, work);  // [E] biased scores, then [G] group scores
  double* gscore = work + n_experts;
  unsigned char* keep = reinterpret_cast<unsigned char*>(gscore + n_group);  // [G]
  const int64_t per = n_experts / n_group;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* sr = s + r * n_experts;
    __syncthreads();  // the previous token's last reads of work are done
    for (int64_t e = threadIdx.x; e < n_experts; e += blockDim.x) {
      if (sr[e] != sr[e]) atomicMax(saw_nan, 1);  // NaN
      work[e] = static_cast<double>(sr[e]) + (b ? static_cast<double>(b[e]) : 0.0);
    }
    __syncthreads();
    if (n_group > 1) {
      // One thread per group, its experts in order (the CPU's loop, so equal values resolve alike).
      for (int64_t g = threadIdx.x; g < n_group; g += blockDim.x) {
        const double* w = work + g * per;
        if (group_max) {
          double m = w[0];
          for (int64_t i = 1; i < per; ++i) m = w[i] > m ? w[i] : m;
          gscore[g] = m;
        } else {  // the sum of the two largest
          double a = -INFINITY, c = -INFINITY;
          for (int64_t i = 0; i < per; ++i) {
            if (w[i] > a) {
              c = a;
              a = w[i];
            } else if (w[i] > c) {
              c = w[i];
            }
          }
          gscore[g] = a + c;
        }
      }
      __syncthreads();
      // A group is kept when fewer than topk_group groups rank before it: its place in the CPU's
      // stable sort by descending score.
      for (int64_t g = threadIdx.x; g < n_group; g += blockDim.x) {
        int64_t rank = 0;
        for (int64_t h = 0; h < n_group; ++h) rank += gscore[h] > gscore[g] || (gscore[h] == gscore[g] && h < g);
        keep[g] = rank < topk_group;
      }
      __syncthreads();
      for (int64_t e = threadIdx.x; e < n_experts; e += blockDim.x)
        if (!keep[e / per]) work[e] = -INFINITY;
      __syncthreads();
    }
    double prev_v = 0.0;
    int64_t prev_i = -1;
    for (int64_t q = 0; q < top_k; ++q) {
      prev_i = warp_pick_next(work, n_experts, prev_v, prev_i);
      if (prev_i < 0) break;  // only with NaN scores (an error): fewer than K comparable experts
      prev_v = work[prev_i];
      if (threadIdx.x == 0) out[r * top_k + q] = prev_i;
    }
  }
}

}  // namespace

void route_select_cuda(const float* s, const float* b, int64_t* idx, int* saw_nan, int64_t rows, int64_t n_experts, int64_t top_k,
                       int64_t n_group, int64_t topk_group, bool group_max) {
  if (rows == 0) return;
  size_t shared = static_cast<size_t>(n_experts + n_group) * sizeof(double) + static_cast<size_t>(n_group);
  MLAMOE_CHECK(shared <= 48 * 1024, "route_select: " << n_experts << " experts and " << n_group
                                                     << " groups need more than the 48 KiB of shared memory of the CUDA kernel");
  MLAMOE_LAUNCH(route_select_kernel, grid_for(rows, 1), kSelectThreads, shared, s, b, idx, saw_nan, rows, n_experts, top_k,
                n_group, topk_group, group_max);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
