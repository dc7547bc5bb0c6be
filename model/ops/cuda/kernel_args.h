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

constexpr int kPermuteThreads = 256;       // permute_by_expert_cuda's one block; its scratch is E × this
constexpr int kSumOfSquaresPartials = 64;  // sum_of_squares_cuda's partial sums

// rmsnorm_backward_cuda's scratch: dw's partial sums, one row of d per chunk of rows.
constexpr int64_t kRmsnormRowChunk = 32;
inline int64_t rmsnorm_dw_scratch(int64_t rows, int64_t d) { return (rows + kRmsnormRowChunk - 1) / kRmsnormRowChunk * d; }

enum class BinaryOp : int { Add, Sub, Mul };

// One AdamW step's scalars, as f32 (train/optimizer.cpp): p ← p·decay_mul − step·m/(sqrt(v)·rsqrt_bc2 + eps).
struct AdamWScalars {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, step, rsqrt_bc2, decay_mul;
};

// Causal attention's sizes: B batches, T tokens, H heads, query/key head dim dqk, value head dim dv.
struct AttnDims {
  int64_t b = 0, t = 0, h = 0, dqk = 0, dv = 0;
  float scale = 1.0f;
};

// Where a per-head matrix lives: element (b, i, h, d) at sb·b + st·i + sh·h + d (in elements), so
// q, k and v can be read in place from wider tensors (MLA's v inside kv_b_proj's output).
struct AttnLayout {
  int64_t sb = 0, st = 0, sh = 0;
};

// The layout of a contiguous [B, T, H, d] tensor.
inline AttnLayout attn_layout(int64_t t, int64_t h, int64_t d) { return {t * h * d, h * d, d}; }

// MLA's sizes (mla_attention.h): heads' no-rope dims dn, rotary dims dr, value dims dv, and k_pe's
// batch and token strides (its last dim is unit-stride).
struct MlaDims {
  int64_t b = 0, t = 0, h = 0, dn = 0, dr = 0, dv = 0;
  int64_t kpe_sb = 0, kpe_st = 0;
};

}  // namespace mlamoe::cuda
