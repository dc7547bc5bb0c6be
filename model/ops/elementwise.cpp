#include "model/ops/elementwise.h"

#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/strided_layout.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

enum class BinOp { Add, Sub, Mul };

// Strides of `t` seen as a tensor of shape `out` (0 along broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& out) {
  Shape st(out.size(), 0);
  int64_t shift = static_cast<int64_t>(out.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d) st[d + shift] = t.shape()[d] == 1 ? 0 : t.strides()[d];
  return st;
}

template <class T, BinOp OP>
inline T apply(T a, T b) {
  if constexpr (OP == BinOp::Add) return a + b;
  if constexpr (OP == BinOp::Sub) return a - b;
  return a * b;
}

// out[i] = a[i] OP b[i] over the broadcast shape. The last dim is the inner loop; the outer index
// offsets are precomputed once, so the inner loop is a plain strided loop the compiler vectorises.
template <class T, BinOp OP>
void binary_forward_cpu(const Tensor& a, const Tensor& b, Tensor& out) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  int64_t n = out.numel();
  if (n == 0) return;
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) po[i] = apply<T, OP>(pa[i], pb[i]);
    return;
  }
  const Shape& os = out.shape();
  Shape sa = broadcast_strides(a, os), sb = broadcast_strides(b, os);
  int64_t nd = static_cast<int64_t>(os.size());
  int64_t inner = nd ? os[nd - 1] : 1;
  int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
  Shape outer(os.begin(), nd ? os.end() - 1 : os.end());
  std::vector<int64_t> oa, ob;
  strided_offsets(outer, Shape(sa.begin(), nd ? sa.end() - 1 : sa.end()), oa);
  strided_offsets(outer, Shape(sb.begin(), nd ? sb.end() - 1 : sb.end()), ob);
  int64_t rows = static_cast<int64_t>(oa.size());
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const T* ra = pa + oa[r];
    const T* rb = pb + ob[r];
    T* ro = po + r * inner;
    for (int64_t j = 0; j < inner; ++j) ro[j] = apply<T, OP>(ra[j * ia], rb[j * ib]);
  }
}

Tensor binary(const Tensor& a, const Tensor& b, BinOp op, const char* name) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  check_same_dtype(a, b, name);
  check_same_device(a, b, name);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), name), a.dtype(), a.device());
  if (on_cuda(a, name)) {
    const Shape& os = out.shape();
    auto l = cuda::strided_layout(os, {out.strides(), broadcast_strides(a, os), broadcast_strides(b, os)});
    auto cop = op == BinOp::Add ? cuda::BinaryOp::Add : op == BinOp::Sub ? cuda::BinaryOp::Sub : cuda::BinaryOp::Mul;
    MLAMOE_CUDA_CALL(binary_cuda, cop, out.device_data<float>(), a.device_data<float>(), b.device_data<float>(), l);
    return out;
  }
  check_cpu(a, name);
  dispatch_float(a.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case BinOp::Add:
        binary_forward_cpu<T, BinOp::Add>(a, b, out);
        break;
      case BinOp::Sub:
        binary_forward_cpu<T, BinOp::Sub>(a, b, out);
        break;
      case BinOp::Mul:
        binary_forward_cpu<T, BinOp::Mul>(a, b, out);
        break;
    }
  });
  return out;
}

struct AddBackward : Node {
  const char* name() const override { return sign > 0 ? "AddBackward" : "SubBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    NoGrad g;
    Tensor da = next[0] ? sum_to(dout, a_shape) : Tensor();
    Tensor db = next[1] ? sum_to(sign > 0 ? dout : scale(dout, -1.0), b_shape) : Tensor();
    return {da, db};
  }
  Shape a_shape, b_shape;
  int sign = 1;
};

struct MulBackward : Node {
  const char* name() const override { return "MulBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    NoGrad g;
    Tensor da = next[0] ? sum_to(mul(dout, b), a.shape()) : Tensor();
    Tensor db = next[1] ? sum_to(mul(dout, a), b.shape()) : Tensor();
    return {da, db};
  }
  void release() override { a = b = Tensor(); }
  Tensor a, b;
};

struct ScaleBackward : Node {
  const char* name() const override { return "ScaleBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    NoGrad g;
    return {scale(dout, s)};
  }
  double s = 1.0;
};

Tensor add_or_sub(const Tensor& a, const Tensor& b, int sign) {
  Tensor out = binary(a, b, sign > 0 ? BinOp::Add : BinOp::Sub, sign > 0 ? "add" : "sub");
  if (needs_grad({a, b})) {
    auto n = std::make_shared<AddBackward>();
    n->a_shape = a.shape();
    n->b_shape = b.shape();
    n->sign = sign;
    connect(out, n, {a, b});
  }
  return out;
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t nd = std::max(a.size(), b.size());
  Shape out(nd);
  for (size_t i = 0; i < nd; ++i) {
    int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
    int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
    MLAMOE_CHECK(da == db || da == 1 || db == 1,
                 op << ": shapes " << shape_str(a) << " and " << shape_str(b) << " do not broadcast (dim " << i << ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, +1); }
Tensor sub(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, -1); }

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary(a, b, BinOp::Mul, "mul");
  if (needs_grad({a, b})) {
    auto n = std::make_shared<MulBackward>();
    n->a = a.detach();
    n->b = b.detach();
    connect(out, n, {a, b});
  }
  return out;
}

Tensor scale(const Tensor& x, double s) {
  check_defined(x, "scale", "x");
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (on_cuda(x, "scale"))
    MLAMOE_CUDA_CALL(scale_cuda, out.device_data<float>(), xc.device_data<float>(), out.numel(), static_cast<float>(s));
  else
    dispatch_float(x.dtype(), "scale", [&](auto tag) {
      using T = decltype(tag);
      const T* px = xc.data<T>();
      T* po = out.data<T>();
      int64_t n = out.numel();
      T sv = static_cast<T>(s);
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) po[i] = px[i] * sv;
    });
  if (needs_grad({x})) {
    auto n = std::make_shared<ScaleBackward>();
    n->s = s;
    connect(out, n, {x});
  }
  return out;
}

void add_(Tensor& dst, const Tensor& src) {
  MLAMOE_CHECK(dst.shape() == src.shape(), "add_: shapes differ, " << dst.describe() << " += " << src.describe());
  check_same_dtype(dst, src, "add_");
  check_same_device(dst, src, "add_");
  MLAMOE_CHECK(dst.is_contiguous(), "add_: destination must be contiguous");
  Tensor s = src.contiguous();
  if (on_cuda(dst, "add_")) {
    MLAMOE_CUDA_CALL(add_inplace_cuda, dst.device_data<float>(), s.device_data<float>(), dst.numel());
    return;
  }
  dispatch_float(dst.dtype(), "add_", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data<T>();
    const T* ps = s.data<T>();
    int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) pd[i] += ps[i];
  });
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  MLAMOE_CHECK(broadcast_shapes(shape, g.shape(), "sum_to") == g.shape(),
               "sum_to: " << shape_str(shape) << " does not broadcast to " << shape_str(g.shape()));
  Tensor gc = g.contiguous();
  if (on_cuda(g, "sum_to")) {
    // One thread per output element sums the elements broadcast from it (reduce.cu).
    Tensor out = Tensor::empty(shape, g.dtype(), g.device());
    Tensor view = out.expand(g.shape());
    Shape ostride = view.strides(), gstride = gc.strides();
    cuda::StridedLayout l;
    l.nd = static_cast<int>(g.dim());
    MLAMOE_CHECK(l.nd <= cuda::kMaxDims, "sum_to: at most " << cuda::kMaxDims << " dims on CUDA, got " << g.describe());
    l.numel = g.numel();
    for (int d = 0; d < l.nd; ++d) {
      l.shape[d] = g.shape()[d];
      l.stride[0][d] = g.shape()[d] == 1 ? 1 : ostride[d];  // 0 marks the dims summed over
      l.stride[1][d] = gstride[d];
    }
    MLAMOE_CUDA_CALL(sum_to_cuda, out.device_data<float>(), out.numel(), gc.device_data<float>(), l);
    return out;
  }
  check_cpu(g, "sum_to");
  Tensor out = Tensor::zeros(shape, g.dtype());
  // Walk g in order, a row of its last dimension at a time, and add each element into the output
  // element it was broadcast from (serial: a fixed summation order keeps the result deterministic).
  Tensor view = out.expand(g.shape());
  const Shape& gs = g.shape();
  int64_t nd = g.dim();
  int64_t inner = nd ? gs[nd - 1] : 1, istride = nd ? view.strides()[nd - 1] : 0;
  std::vector<int64_t> off;
  strided_offsets(Shape(gs.begin(), nd ? gs.end() - 1 : gs.end()),
                  Shape(view.strides().begin(), nd ? view.strides().end() - 1 : view.strides().end()), off);
  dispatch_float(g.dtype(), "sum_to", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = gc.data<T>();
    T* po = out.data<T>();
    for (size_t r = 0; r < off.size(); ++r) {
      const T* gr = pg + r * inner;
      T* orow = po + off[r];
      if (istride == 0) {
        T acc = orow[0];
        for (int64_t j = 0; j < inner; ++j) acc += gr[j];
        orow[0] = acc;
      } else {
        for (int64_t j = 0; j < inner; ++j) orow[j * istride] += gr[j];
      }
    }
  });
  return out;
}

}  // namespace mlamoe
