#include "train/blas_kernels.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <strings.h>

extern "C" char* openblas_get_corename(void);

namespace mlamoe {

namespace {

bool cpu_has_avx512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

}  // namespace

void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's choice, or ours after the re-exec
  std::string core = blas_kernel_name();
  if (strcasecmp(core.c_str(), "Haswell") != 0 && strcasecmp(core.c_str(), "Zen") != 0) return;
  if (!cpu_has_avx512()) return;
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // exec failed: carry on with the kernels already loaded
}

std::string blas_kernel_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

}  // namespace mlamoe
