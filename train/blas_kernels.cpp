#include "train/blas_kernels.h"

extern "C" char* openblas_get_corename(void);

namespace mlamoe {

std::string blas_kernel_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

}  // namespace mlamoe
