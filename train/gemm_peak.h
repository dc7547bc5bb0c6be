// The GEMM this process runs and how fast: which OpenBLAS kernels (for the start-up banner,
// `mlamoe version` and the benchmarks), and the measured sgemm rate MFU is reported against. OpenBLAS picks them from the CPU
// when the library loads, unless OPENBLAS_CORETYPE names them (e.g. Haswell for the AVX2 kernels, SkylakeX or Cooperlake for
// AVX-512): on an AVX-512 machine the choice is worth a factor of two in sgemm (bench/README.md).
#pragma once
#include <string>

#include "model/tensor/dtype.h"

namespace mlamoe {

// OpenBLAS's name for the kernels in use, e.g. "Haswell", "Cooperlake".
std::string blas_kernel_name();

// The machine's GEMM rate in GFLOP/s for operands of `operands` (f32: OpenBLAS's sgemm; bf16: the
// bf16 GEMM of model/ops/gemm_bf16.h, f32 accumulation), measured with the library's own matmul on
// all threads (the best of a few 1024³ products): the "named peak" MFU is reported against, in
// the precision the run trains in (train.precision).
double measure_gemm_gflops(DType operands = DType::F32);

}  // namespace mlamoe
