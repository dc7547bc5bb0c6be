// Elementwise arithmetic with NumPy broadcasting: add, sub, mul, scale; the in-place add_ used by
// gradient accumulation and optimizers; sum_to, the reduction that undoes a broadcast (backward).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

Tensor add(const Tensor& a, const Tensor& b);  // a + b
Tensor sub(const Tensor& a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, const Tensor& b);  // a * b
Tensor scale(const Tensor& x, double s);       // x * s

// dst += src (same shape, dst contiguous). Not recorded by autograd.
void add_(Tensor& dst, const Tensor& src);

// Sum g over the dimensions along which `shape` was broadcast to g's shape. Not recorded.
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace mlamoe
