// Which OpenBLAS kernels the process runs, for the start-up banner, `mlamoe version` and the
// benchmarks. OpenBLAS picks them from the CPU when the library loads, unless OPENBLAS_CORETYPE
// names them (e.g. Haswell for the AVX2 kernels, SkylakeX or Cooperlake for AVX-512): on an
// AVX-512 machine the choice is worth a factor of two in sgemm (bench/README.md).
#pragma once
#include <string>

namespace mlamoe {

// OpenBLAS's name for the kernels in use, e.g. "Haswell", "Cooperlake".
std::string blas_kernel_name();

}  // namespace mlamoe
