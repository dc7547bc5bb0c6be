#include "model/ops/reduce.h"

#include <algorithm>
#include <vector>

#include "model/ops/cuda/kernels.h"
#include "model/ops/elementwise.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// x viewed as [outer, n, inner] (contiguous) -> out [outer, inner], times `factor`.
// Accumulates in double so that long sums of f32 stay accurate and order-independent enough.
template <class T>
void reduce_sum_forward_cpu(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, double factor) {
#pragma omp parallel for schedule(static) if (outer * n * inner > kParallelGrain)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double acc = 0.0;
      const T* p = x + o * n * inner + i;
      for (int64_t k = 0; k < n; ++k) acc += p[k * inner];
      out[o * inner + i] = static_cast<T>(acc * factor);
    }
  }
}

struct SumBackward : Node {
  const char* name() const override { return "SumBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    // dout has the keepdim shape's element count; broadcast it back over the reduced dim.
    return {scale(dout.reshape(keep_shape).expand(in_shape).contiguous(), factor)};
  }
  Shape in_shape, keep_shape;
  double factor = 1.0;
};

Tensor reduce(const Tensor& x, int64_t dim, bool keepdim, bool all, bool average, const char* op) {
  check_defined(x, op, "x");
  Tensor xc = x.contiguous();
  int64_t outer = 1, n = x.numel(), inner = 1;
  Shape out_shape, keep_shape(x.dim(), 1);
  if (!all) {
    dim = wrap_dim(dim, x.dim(), op);
    n = x.shape()[dim];
    for (int64_t d = 0; d < dim; ++d) outer *= x.shape()[d];
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.shape()[d];
    keep_shape = x.shape();
    keep_shape[dim] = 1;
    out_shape = keep_shape;
    if (!keepdim) out_shape.erase(out_shape.begin() + dim);
  }
  MLAMOE_CHECK(!average || n > 0, op << ": mean over an empty dimension of " << x.describe());
  double factor = average ? 1.0 / static_cast<double>(n) : 1.0;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (on_cuda(x, op))
    MLAMOE_CUDA_CALL(reduce_sum_cuda, xc.device_data<float>(), out.device_data<float>(), outer, n, inner, factor);
  else
    dispatch_float(x.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      check_cpu(x, op);
      reduce_sum_forward_cpu<T>(xc.data<T>(), out.data<T>(), outer, n, inner, factor);
    });
  if (needs_grad({x})) {
    auto node = std::make_shared<SumBackward>();
    node->in_shape = x.shape();
    node->keep_shape = keep_shape;
    node->factor = factor;
    connect(out, node, {x});
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce(x, 0, false, true, false, "sum"); }
Tensor sum(const Tensor& x, int64_t dim, bool keepdim) { return reduce(x, dim, keepdim, false, false, "sum"); }
Tensor mean(const Tensor& x) { return reduce(x, 0, false, true, true, "mean"); }
Tensor mean(const Tensor& x, int64_t dim, bool keepdim) { return reduce(x, dim, keepdim, false, true, "mean"); }

namespace {

template <class T>
double sum_of_squares_cpu(const T* d, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const T* p = d + c * kChunk;
    int64_t len = std::min(kChunk, n - c * kChunk), i = 0;
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // eight running sums: the loop vectorises
    for (; i + 8 <= len; i += 8)
      for (int j = 0; j < 8; ++j) lane[j] += static_cast<double>(p[i + j]) * static_cast<double>(p[i + j]);
    for (; i < len; ++i) lane[0] += static_cast<double>(p[i]) * static_cast<double>(p[i]);
    part[c] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  }
  double s = 0;
  for (double v : part) s += v;
  return s;
}

}  // namespace

double sum_of_squares(const Tensor& x) {
  check_defined(x, "sum_of_squares", "x");
  Tensor c = x.contiguous();
  double s = 0;
  if (on_cuda(x, "sum_of_squares")) {  // the blocks' partial sums, added here in order
    Tensor part = Tensor::empty({cuda::kSumOfSquaresPartials}, DType::F64, x.device());
    MLAMOE_CUDA_CALL(sum_of_squares_cuda, c.device_data<float>(), c.numel(), part.device_data<double>());
    for (double v : part.to_vector<double>()) s += v;
    return s;
  }
  check_cpu(x, "sum_of_squares");
  dispatch_float(c.dtype(), "sum_of_squares", [&](auto tag) {
    using T = decltype(tag);
    s = sum_of_squares_cpu<T>(c.data<T>(), c.numel());
  });
  return s;
}

void scale_(Tensor& x, double s) {
  check_defined(x, "scale_", "x");
  MLAMOE_CHECK(x.is_contiguous(), "scale_: " << x.describe() << " is not contiguous");
  if (on_cuda(x, "scale_")) {
    float* d = x.device_data<float>();
    MLAMOE_CUDA_CALL(scale_cuda, d, d, x.numel(), static_cast<float>(s));
    return;
  }
  check_cpu(x, "scale_");
  dispatch_float(x.dtype(), "scale_", [&](auto tag) {
    using T = decltype(tag);
    T* d = x.data<T>();
    T f = static_cast<T>(s);
    int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) d[i] *= f;
  });
}

}  // namespace mlamoe
