// Index ops (CPU twins in model/ops/index.cpp); indices are i64 (the op converts i32 ones first):
//   gather:        out[r, j] = x[r, idx[r, j]]                    x [rows, n], idx/out [rows, k]
//   its backward:  dx[r, e]  = Σ_{j : idx[r, j] = e} dout[r, j]   in increasing j
//   index_select:  out[i, :] = x[idx[i], :]                       x [·, d], idx [m], out [m, d]
//   index_add:     out[r, :] = base[r, :] + Σ_{i : idx[i] = r} src[i, :]   in increasing i
// The two scatter-adds are gathers from the destination's side: each output element is one
// thread's sum over its sources in the CPU's order, so the bits match the CPU's and never depend
// on the thread order (no atomics).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void gather_forward_kernel(const float* x, const int64_t* idx, float* out, int64_t n, int64_t k, int64_t total) {
  for (int64_t t = global_thread(); t < total; t += grid_threads()) out[t] = x[(t / k) * n + idx[t]];
}

// One thread per element of dx: it scans its row's k indices (k is small: the experts per token).
__global__ void gather_backward_kernel(const float* dout, const int64_t* idx, float* dx, int64_t n, int64_t k, int64_t total) {
  for (int64_t t = global_thread(); t < total; t += grid_threads()) {
    int64_t r = t / n, e = t % n;
    float s = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      if (idx[r * k + j] == e) s += dout[r * k + j];
    dx[t] = s;
  }
}

__global__ void index_select_kernel(const float* x, const int64_t* idx, float* out, int64_t d, int64_t total) {
  for (int64_t t = global_thread(); t < total; t += grid_threads()) out[t] = x[idx[t / d] * d + t % d];
}

// sources = [offsets (rows + 1) | order (m)]: row r's sources are order[offsets[r] .. offsets[r+1]),
// in increasing source index (index_add_sources in model/ops/index.cpp builds it).
__global__ void index_add_rows_kernel(float* out, const float* base, const int64_t* sources, int64_t rows, const float* src,
                                      int64_t d) {
  const int64_t* offsets = sources;
  const int64_t* order = sources + rows + 1;
  for (int64_t t = global_thread(); t < rows * d; t += grid_threads()) {
    int64_t r = t / d, j = t % d;
    float v = base ? base[t] : 0.0f;
    for (int64_t p = offsets[r]; p < offsets[r + 1]; ++p) v += src[order[p] * d + j];
    out[t] = v;
  }
}

}  // namespace

void gather_forward_cuda(const float* x, const int64_t* idx, float* out, int64_t rows, int64_t n, int64_t k) {
  if (rows * k > 0) MLAMOE_LAUNCH(gather_forward_kernel, grid_for(rows * k), kThreads, 0, x, idx, out, n, k, rows * k);
}

void gather_backward_cuda(const float* dout, const int64_t* idx, float* dx, int64_t rows, int64_t n, int64_t k) {
  if (rows * n > 0) MLAMOE_LAUNCH(gather_backward_kernel, grid_for(rows * n), kThreads, 0, dout, idx, dx, n, k, rows * n);
}

void index_select_forward_cuda(const float* x, const int64_t* idx, float* out, int64_t m, int64_t d) {
  if (m * d > 0) MLAMOE_LAUNCH(index_select_kernel, grid_for(m * d), kThreads, 0, x, idx, out, d, m * d);
}

void index_add_rows_cuda(float* out, const float* base, const int64_t* sources, int64_t rows, const float* src, int64_t d) {
  if (rows * d > 0) MLAMOE_LAUNCH(index_add_rows_kernel, grid_for(rows * d), kThreads, 0, out, base, sources, rows, src, d);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
