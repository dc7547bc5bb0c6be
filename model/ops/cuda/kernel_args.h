// Plain argument types of the CUDA kernels' launchers (kernels.h), shared by the GPU and SIMT
// builds of every kernel and by the ops that call them.
#pragma once
#include <cstdint>

namespace mlamoe::cuda {

constexpr int kMaxDims = 8;

// An elementwise walk over `shape` (row-major, nd ≤ kMaxDims dims): element i of the walk is at
// stride[·]-weighted offsets in up to three arrays (in elements, relative to each first element;
// stride 0 broadcasts).
struct StridedLayout {
  int nd = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[3][kMaxDims] = {};
};

constexpr int kSumOfSquaresPartials = 64;  // sum_of_squares_cuda's partial sums

// rmsnorm_backward_cuda's scratch: dw's partial sums, one row of d per chunk of rows.
constexpr int64_t kRmsnormRowChunk = 32;
inline int64_t rmsnorm_dw_scratch(int64_t rows, int64_t d) { return (rows + kRmsnormRowChunk - 1) / kRmsnormRowChunk * d; }

enum class BinaryOp : int { Add, Sub, Mul };

}  // namespace mlamoe::cuda
