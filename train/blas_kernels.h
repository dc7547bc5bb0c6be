// Which OpenBLAS kernels the process runs, and picking the AVX-512 ones where OpenBLAS would not.
//
// Debian 12's OpenBLAS (0.3.21) maps AMD Zen 4 and later to its AVX2 "Zen"/"Haswell" kernels
// although these CPUs run AVX-512; its "SkylakeX" kernels measure twice the sgemm rate there (see
// bench/README.md). OpenBLAS reads OPENBLAS_CORETYPE once, when the library is loaded, so
// select_blas_kernels re-executes the program with OPENBLAS_CORETYPE=SkylakeX in that case. A
// user's own OPENBLAS_CORETYPE is always kept (set it to Haswell to turn this off).
#pragma once
#include <string>

namespace mlamoe {

// Call first thing in main, before any thread or MPI exists. Returns when nothing is to be
// changed (or the re-execution failed, which leaves the default kernels).
void select_blas_kernels(char** argv);

// OpenBLAS's name for the kernels in use, e.g. "SkylakeX".
std::string blas_kernel_name();

}  // namespace mlamoe
