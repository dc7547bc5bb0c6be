// `mlamoe version`: the build configuration (CUDA backend, threads, which OpenBLAS).
#pragma once

namespace mlamoe {

int print_version();

}  // namespace mlamoe
