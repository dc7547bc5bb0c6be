// The datasheet peak of the GPU a CUDA run trains on: the MFU denominator of `train.device =
// "cuda"` (a CPU run measures its GEMM instead: gemm_peak.h). Dense figures, no sparsity, from
// NVIDIA's H100/H200/A100/B200 datasheets, in GFLOP/s:
//                     f32 (CUDA cores)   bf16 (tensor cores)
//   H100 / H200 SXM        67 000            989 000
//   H100 PCIe / NVL        51 000            756 000
//   A100 (SXM, PCIe)       19 500            312 000
//   B200                   80 000          2 250 000
// The f32 column is the rate f32 training runs at (TF32 off: model/ops/cuda/gemm.cu).
#pragma once
#include <string>

#include "model/tensor/dtype.h"

namespace mlamoe {

struct GpuPeak {
  double gflops = 0;  // 0: the device is not in the table
  std::string row;    // the table row matched, e.g. "H100 SXM"
};

// The peak for a device named as cudaGetDeviceProperties names it ("NVIDIA H100 80GB HBM3",
// "NVIDIA H200", "NVIDIA A100-SXM4-80GB", ...) and the run's GEMM operand type (f32 or bf16).
GpuPeak gpu_peak(const std::string& device_name, DType operands);

}  // namespace mlamoe
