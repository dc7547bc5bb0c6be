// Sums: along one dimension (sum, mean), the reduction of a broadcast's gradient (sum_to) and
// Σ x² for gradient norms. Every sum has a fixed order, whatever the thread order.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

// inner == 1: one warp per output row, its lanes taking strided elements, warp_sum adding them.
__global__ void reduce_rows_kernel(const float* x, float* out, int64_t outer, int64_t n, float factor) {
  const unsigned lane = lane_id();
  for (int64_t o = warp_row(); o < outer; o += warp_rows_stride()) {
    const float* row = x + o * n;
    float s = 0.0f;
    for (int64_t j = lane; j < n; j += 32) s += row[j];
    s = warp_sum(s);
    if (lane == 0) out[o] = s * factor;
  }
}

// inner > 1: one thread per output element, walking its n elements in order.
__global__ void reduce_strided_kernel(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, float factor) {
  for (int64_t t = global_thread(); t < outer * inner; t += grid_threads()) {
    int64_t o = t / inner, i = t % inner;
    const float* p = x + o * n * inner + i;
    float s = 0.0f;
    for (int64_t j = 0; j < n; ++j) s += p[j * inner];
    out[t] = s * factor;
  }
}

// Output element k: the walk of g restricted to the elements broadcast from k. l's dims with
// out stride 0 (and size > 1) are the reduced ones; k's coordinates are taken over the others.
__global__ void sum_to_kernel(float* out, int64_t out_numel, const float* g, cuda::StridedLayout l) {
  int64_t reduced = 1;
  for (int d = 0; d < l.nd; ++d)
    if (l.stride[0][d] == 0) reduced *= l.shape[d];
  for (int64_t k = global_thread(); k < out_numel; k += grid_threads()) {
    // g's offset of k's first element: k decomposed over the kept dims (row-major).
    int64_t base = 0, rest = k;
    for (int d = l.nd - 1; d >= 0; --d) {
      if (l.stride[0][d] == 0) continue;
      base += (rest % l.shape[d]) * l.stride[1][d];
      rest /= l.shape[d];
    }
    float s = 0.0f;
    for (int64_t r = 0; r < reduced; ++r) {
      int64_t off = base, q = r;
      for (int d = l.nd - 1; d >= 0; --d) {
        if (l.stride[0][d] != 0) continue;
        off += (q % l.shape[d]) * l.stride[1][d];
        q /= l.shape[d];
      }
      s += g[off];
    }
    out[k] = s;
  }
}

__global__ void sum_of_squares_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double scratch[kThreads];
  double s = 0.0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) s += static_cast<double>(x[i]) * x[i];
  scratch[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = scratch[0];
}

}  // namespace

void reduce_sum_cuda(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, double factor) {
  if (outer * inner == 0) return;
  float f = static_cast<float>(factor);
  if (inner == 1)
    MLAMOE_LAUNCH(reduce_rows_kernel, grid_for_rows(outer), kThreads, 0, x, out, outer, n, f);
  else
    MLAMOE_LAUNCH(reduce_strided_kernel, grid_for(outer * inner), kThreads, 0, x, out, outer, n, inner, f);
}

void sum_to_cuda(float* out, int64_t out_numel, const float* g, const cuda::StridedLayout& l) {
  if (out_numel > 0) MLAMOE_LAUNCH(sum_to_kernel, grid_for(out_numel), kThreads, 0, out, out_numel, g, l);
}

void sum_of_squares_cuda(const float* x, int64_t n, double* partials) {
  MLAMOE_LAUNCH(sum_of_squares_kernel, cuda::kSumOfSquaresPartials, kThreads, 0, x, n, partials);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
