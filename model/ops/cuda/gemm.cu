// Matrix products: cuBLAS on the GPU; in the emulator, cblas on the same operands (bf16 values
// widened exactly, which is what a bf16 tensor-core product with f32 accumulation reads).
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS is called with the
// operands swapped and no copies.
#include <vector>

#include "model/ops/cuda/kernel_common.cuh"
#include "model/tensor/error.h"

#ifdef MLAMOE_SIMT_BUILD
#include <cblas.h>
#else
#include <cublas_v2.h>

#include "model/tensor/cuda/stream.h"
#endif

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

#ifdef MLAMOE_SIMT_BUILD

// Elements a row-major operand of `rows` × `cols` (as stored) spans with leading dimension ld.
int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

void sgemm_batch(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, int64_t stride_a, const float* b,
                 int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  for (int64_t i = 0; i < batch; ++i) {
    float* ci = c + i * stride_c;
    if (k == 0) {  // an empty sum: C = 0 (cblas may leave C untouched)
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) ci[r * ldc + j] = 0.0f;
      continue;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), 1.0f, a + i * stride_a, static_cast<int>(lda), b + i * stride_b,
                static_cast<int>(ldb), 0.0f, ci, static_cast<int>(ldc));
  }
}

#else

void check(cublasStatus_t s, const char* what) {
  MLAMOE_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS: " << what << " failed (status " << static_cast<int>(s) << ")");
}

cublasHandle_t handle() {
  // One handle per host thread (cuBLAS handles are not shared between threads), set to the
  // thread's current stream (stream.h) before each call.
  thread_local cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    check(cublasCreate(&x), "cublasCreate");
    return x;
  }();
  check(cublasSetStream(h, static_cast<cudaStream_t>(cuda::current_stream())), "cublasSetStream");
  return h;
}

// cublasGemmStridedBatchedEx with f32 accumulation (CUBLAS_COMPUTE_32F: never TF32).
void gemm_ex(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a, cudaDataType at, int64_t lda, int64_t stride_a,
             const void* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const float one = 1.0f, zero = 0.0f;
  check(cublasGemmStridedBatchedEx(handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                                   static_cast<int>(m), static_cast<int>(k), &one, b, at, static_cast<int>(ldb), stride_b, a, at,
                                   static_cast<int>(lda), stride_a, &zero, c, CUDA_R_32F, static_cast<int>(ldc), stride_c,
                                   static_cast<int>(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
}

#endif

}  // namespace

void gemm_cuda(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, int64_t stride_a, const float* b,
               int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
#ifdef MLAMOE_SIMT_BUILD
  sgemm_batch(ta, tb, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch);
#else
  gemm_ex(ta, tb, m, n, k, a, CUDA_R_32F, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch);
#endif
}

void gemm_bf16_cuda(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda, int64_t stride_a,
                    const bf16* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
#ifdef MLAMOE_SIMT_BUILD
  // Widen each batch's operands (what the GPU reads) and multiply them in f32.
  auto widen = [](const bf16* p, int64_t count) {
    std::vector<float> w(count);
    for (int64_t i = 0; i < count; ++i) w[i] = bf16_to_float(p[i]);
    return w;
  };
  int64_t ea = span(ta ? k : m, ta ? m : k, lda), eb = span(tb ? n : k, tb ? k : n, ldb);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<float> wa = widen(a + i * stride_a, ea), wb = widen(b + i * stride_b, eb);
    sgemm_batch(ta, tb, m, n, k, wa.data(), lda, 0, wb.data(), ldb, 0, c + i * stride_c, ldc, 0, 1);
  }
#else
  gemm_ex(ta, tb, m, n, k, a, CUDA_R_16BF, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch);
#endif
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
