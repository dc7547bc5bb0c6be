// Shared helpers for op files: argument checks with clear messages, element-type dispatch and the
// device switch. Each op's public function validates its arguments, then calls the kernel of the
// tensor's device (`<op>_forward_cpu` here; `<op>_forward_cuda` in model/ops/cuda/<op>.cu with the
// same signature when the CUDA backend provides it).
#pragma once
#include <string>
#include <vector>

#include "model/autograd/node.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

// Calls f(T{}) with T = float or double for a floating tensor; bf16 must be cast to f32 first.
template <class F>
void dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::F32:
      f(float{});
      return;
    case DType::F64:
      f(double{});
      return;
    default:
      throw Error(std::string(op) + ": expected an f32 or f64 tensor, got " + dtype_name(dt) +
                  (dt == DType::BF16 ? " (bf16 is a storage type: cast to f32 with .to(DType::F32))" : ""));
  }
}

// The type a product of dt operands accumulates into, and returns: f32 for bf16, else dt.
inline DType accumulate_dtype(DType dt) { return dt == DType::BF16 ? DType::F32 : dt; }

// Calls f(T{}, TC{}) with the operand type T and the accumulation type TC of a product of dt
// operands (GEMMs and the ops built on them): bf16 operands accumulate in f32, f32 and f64 in
// themselves.
template <class F>
void dispatch_product(DType dt, const char* op, F&& f) {
  if (dt == DType::BF16) {
    f(bf16{}, float{});
    return;
  }
  dispatch_float(dt, op, [&](auto tag) { f(tag, tag); });
}

// Calls f(I{}) with I = int32_t or int64_t for an index tensor.
template <class F>
void dispatch_index(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::I32:
      f(int32_t{});
      return;
    case DType::I64:
      f(int64_t{});
      return;
    default:
      throw Error(std::string(op) + ": expected an i32 or i64 index tensor, got " + dtype_name(dt));
  }
}

inline void check_defined(const Tensor& t, const char* op, const char* arg) {
  MLAMOE_CHECK(t.defined(), op << ": argument '" << arg << "' is an undefined tensor");
}

inline void check_dim(const Tensor& t, int64_t ndim, const char* op, const char* arg) {
  check_defined(t, op, arg);
  MLAMOE_CHECK(t.dim() == ndim, op << ": '" << arg << "' must have " << ndim << " dims, got " << t.describe());
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  MLAMOE_CHECK(a.dtype() == b.dtype(), op << ": dtype mismatch, " << a.describe() << " vs " << b.describe());
}

inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  MLAMOE_CHECK(a.device() == b.device(), op << ": device mismatch, " << a.describe() << " vs " << b.describe());
}

// Every kernel in this file set runs on CPU; the device switch of each op reaches this for a
// device whose kernel is not built.
[[noreturn]] inline void no_kernel(const char* op, Device d) {
  throw Error(std::string(op) + ": no kernel for device " + d.str() + " in this build");
}

inline void check_cpu(const Tensor& t, const char* op) {
  if (!t.device().is_cpu()) no_kernel(op, t.device());
}

// The device switch of an op with CUDA kernels (model/ops/cuda/): true for a CUDA tensor, after
// checking it is f32, the type those kernels compute in (bf16 appears only as GEMM operands).
// with_bf16: the op's kernels also take bf16 operands (expert_swiglu under autocast).
inline bool on_cuda(const Tensor& t, const char* op, bool with_bf16 = false) {
  if (!t.device().is_cuda()) return false;
  MLAMOE_CHECK(t.dtype() == DType::F32 || (with_bf16 && t.dtype() == DType::BF16),
               op << ": the CUDA kernel takes f32" << (with_bf16 ? " or bf16" : "") << ", got " << t.describe());
  return true;
}

// Parallelise a loop with OpenMP only when it has enough work to pay for the fork.
constexpr int64_t kParallelGrain = 1 << 14;

}  // namespace mlamoe
