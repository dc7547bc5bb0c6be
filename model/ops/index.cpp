#include "model/ops/index.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// A host copy of an index tensor: the range checks (and index_add's source lists) read it there.
// The copy is small (one index per row) and, for now, a synchronising one.
Tensor on_host(const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device::cpu()); }

// The i64 indices the CUDA kernels read (i32 ones converted on the device).
Tensor device_i64(const Tensor& idx) { return idx.dtype() == DType::I64 ? idx : idx.to(DType::I64); }

template <class I>
void check_range(const Tensor& idx, int64_t n, const char* op) {
  const I* p = idx.data<I>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    MLAMOE_CHECK(p[i] >= 0 && p[i] < n,
                 op << ": index " << static_cast<int64_t>(p[i]) << " at position " << i << " is outside [0, " << n << ")");
}

// ---- gather / its backward (scatter-add along the last dim) ----

template <class T, class I>
void gather_forward_cpu(const T* x, const I* idx, T* out, int64_t rows, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static) if (rows * k > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) out[r * k + j] = x[r * n + idx[r * k + j]];
}

template <class T, class I>
void gather_backward_cpu(const T* dout, const I* idx, T* dx, int64_t rows, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static) if (rows * k > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) dx[r * n + idx[r * k + j]] += dout[r * k + j];
}

// ---- row copy / row scatter-add ----

template <class T, class I>
void index_select_forward_cpu(const T* x, const I* idx, T* out, int64_t m, int64_t d) {
#pragma omp parallel for schedule(static) if (m * d > kParallelGrain)
  for (int64_t i = 0; i < m; ++i) std::memcpy(out + i * d, x + static_cast<int64_t>(idx[i]) * d, d * sizeof(T));
}

// out[idx[i]] += src[i], columns split across threads.
template <class T, class I>
void index_add_rows_cpu(T* out, const I* idx, const T* src, int64_t m, int64_t d) {
  constexpr int64_t kCols = 64;
  int64_t chunks = (d + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (m * d > kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t c0 = c * kCols, c1 = std::min(d, c0 + kCols);
    for (int64_t i = 0; i < m; ++i) {
      T* row = out + static_cast<int64_t>(idx[i]) * d;
      const T* s = src + i * d;
      for (int64_t j = c0; j < c1; ++j) row[j] += s[j];
    }
  }
}

// index_add_rows_cuda's source lists from a host copy of idx [m]: for every destination row its
// source rows in increasing index, as [offsets (rows + 1) | order (m)] (a counting sort), on
// `device`. With them each output element is one thread's sum in the CPU's order, no atomics.
Tensor index_add_sources(const Tensor& idx_host, int64_t rows, Device device) {
  int64_t m = idx_host.numel();
  Tensor sources = Tensor::empty({rows + 1 + m}, DType::I64);
  int64_t* offsets = sources.data<int64_t>();
  int64_t* order = offsets + rows + 1;
  dispatch_index(idx_host.dtype(), "index_add", [&](auto it) {
    using I = decltype(it);
    const I* p = idx_host.data<I>();
    std::fill(offsets, offsets + rows + 1, 0);
    for (int64_t i = 0; i < m; ++i) ++offsets[p[i] + 1];
    for (int64_t r = 0; r < rows; ++r) offsets[r + 1] += offsets[r];
    std::vector<int64_t> next(offsets, offsets + rows);
    for (int64_t i = 0; i < m; ++i) order[next[p[i]]++] = i;
  });
  return sources.to(device);
}

template <class F>
void dispatch_both(DType t, DType i, const char* op, F&& f) {
  dispatch_float(t, op, [&](auto tt) { dispatch_index(i, op, [&](auto it) { f(tt, it); }); });
}

Tensor gather_raw(const Tensor& x, const Tensor& idx) {
  int64_t n = x.shape().back(), k = idx.shape().back();
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  if (on_cuda(x, "gather")) {
    MLAMOE_CUDA_CALL(gather_forward_cuda, x.device_data<float>(), device_i64(idx).device_data<int64_t>(),
                     out.device_data<float>(), idx.numel() / std::max<int64_t>(k, 1), n, k);
    return out;
  }
  check_cpu(x, "gather");
  dispatch_both(x.dtype(), idx.dtype(), "gather", [&](auto tt, auto it) {
    using T = decltype(tt);
    using I = decltype(it);
    gather_forward_cpu<T, I>(x.data<T>(), idx.data<I>(), out.data<T>(), idx.numel() / std::max<int64_t>(k, 1), n, k);
  });
  return out;
}

// Rows of src added into a copy of base (base undefined: zeros of `rows` rows). idx_host: a host
// copy of idx when the caller has one (CUDA reads the source lists from it), else undefined.
Tensor index_add_raw(const Tensor& base, int64_t rows, const Tensor& idx, const Tensor& src, const Tensor& idx_host = Tensor()) {
  int64_t d = src.shape()[1];
  if (on_cuda(src, "index_add")) {
    Tensor out = Tensor::empty({rows, d}, src.dtype(), src.device());
    Tensor sources = index_add_sources(idx_host.defined() ? idx_host : on_host(idx), rows, src.device());
    MLAMOE_CUDA_CALL(index_add_rows_cuda, out.device_data<float>(), base.defined() ? base.device_data<float>() : nullptr,
                     sources.device_data<int64_t>(), rows, src.device_data<float>(), d);
    return out;
  }
  check_cpu(src, "index_add");
  Tensor out = base.defined() ? base.clone() : Tensor::zeros({rows, d}, src.dtype(), src.device());
  dispatch_both(src.dtype(), idx.dtype(), "index_add", [&](auto tt, auto it) {
    using T = decltype(tt);
    using I = decltype(it);
    index_add_rows_cpu<T, I>(out.data<T>(), idx.data<I>(), src.data<T>(), idx.numel(), d);
  });
  return out;
}

Tensor index_select_raw(const Tensor& x, const Tensor& idx) {
  int64_t d = x.shape()[1];
  Tensor out = Tensor::empty({idx.numel(), d}, x.dtype(), x.device());
  if (on_cuda(x, "index_select")) {
    MLAMOE_CUDA_CALL(index_select_forward_cuda, x.device_data<float>(), device_i64(idx).device_data<int64_t>(),
                     out.device_data<float>(), idx.numel(), d);
    return out;
  }
  check_cpu(x, "index_select");
  dispatch_both(x.dtype(), idx.dtype(), "index_select", [&](auto tt, auto it) {
    using T = decltype(tt);
    using I = decltype(it);
    index_select_forward_cpu<T, I>(x.data<T>(), idx.data<I>(), out.data<T>(), idx.numel(), d);
  });
  return out;
}

struct GatherBackward : Node {
  const char* name() const override { return "GatherBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    int64_t n = x_shape.back(), k = idx.shape().back();
    if (on_cuda(g, name())) {  // every element of dx written (the rows of x, not of idx: k may be 0)
      Tensor dx = Tensor::empty(x_shape, g.dtype(), g.device());
      MLAMOE_CUDA_CALL(gather_backward_cuda, g.device_data<float>(), device_i64(idx).device_data<int64_t>(),
                       dx.device_data<float>(), shape_numel(x_shape) / std::max<int64_t>(n, 1), n, k);
      return {dx, Tensor()};
    }
    Tensor dx = Tensor::zeros(x_shape, g.dtype(), g.device());
    dispatch_both(g.dtype(), idx.dtype(), "gather", [&](auto tt, auto it) {
      using T = decltype(tt);
      using I = decltype(it);
      gather_backward_cpu<T, I>(g.data<T>(), idx.data<I>(), dx.data<T>(), idx.numel() / std::max<int64_t>(k, 1), n, k);
    });
    return {dx, Tensor()};
  }
  void release() override { idx = Tensor(); }
  Tensor idx;
  Shape x_shape;
};

struct IndexSelectBackward : Node {
  const char* name() const override { return "IndexSelectBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    return {index_add_raw(Tensor(), rows, idx, dout.contiguous()), Tensor()};
  }
  void release() override { idx = Tensor(); }
  Tensor idx;
  int64_t rows = 0;
};

struct IndexAddBackward : Node {
  const char* name() const override { return "IndexAddBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor g = dout.contiguous();
    return {next[0] ? g : Tensor(), Tensor(), next[2] ? index_select_raw(g, idx) : Tensor()};
  }
  void release() override { idx = Tensor(); }
  Tensor idx;
};

void check_rows_args(const Tensor& x, const Tensor& idx, const char* op) {
  check_dim(x, 2, op, "x [N, D]");
  check_dim(idx, 1, op, "idx [M]");
  check_same_device(x, idx, op);
}

}  // namespace

Tensor gather(const Tensor& x, const Tensor& idx) {
  const char* op = "gather";
  check_defined(x, op, "x");
  check_defined(idx, op, "idx");
  MLAMOE_CHECK(x.dim() == idx.dim() && x.dim() >= 1 &&
                   Shape(x.shape().begin(), x.shape().end() - 1) == Shape(idx.shape().begin(), idx.shape().end() - 1),
               op << ": idx " << idx.describe() << " must match x " << x.describe() << " in all but the last dim");
  check_same_device(x, idx, op);
  Tensor xc = x.contiguous(), ic = idx.contiguous();
  Tensor ih = on_host(ic);
  dispatch_index(ih.dtype(), op, [&](auto it) { check_range<decltype(it)>(ih, x.shape().back(), op); });
  Tensor out = gather_raw(xc, ic);
  if (needs_grad({x})) {
    auto n = std::make_shared<GatherBackward>();
    n->idx = ic.detach();
    n->x_shape = x.shape();
    connect(out, n, {x, idx});
  }
  return out;
}

Tensor index_select(const Tensor& x, const Tensor& idx) {
  const char* op = "index_select";
  check_rows_args(x, idx, op);
  Tensor xc = x.contiguous(), ic = idx.contiguous();
  Tensor ih = on_host(ic);
  dispatch_index(ih.dtype(), op, [&](auto it) { check_range<decltype(it)>(ih, x.shape()[0], op); });
  Tensor out = index_select_raw(xc, ic);
  if (needs_grad({x})) {
    auto n = std::make_shared<IndexSelectBackward>();
    n->idx = ic.detach();
    n->rows = x.shape()[0];
    connect(out, n, {x, idx});
  }
  return out;
}

Tensor index_add(const Tensor& x, const Tensor& idx, const Tensor& src) {
  const char* op = "index_add";
  check_rows_args(x, idx, op);
  check_dim(src, 2, op, "src [M, D]");
  MLAMOE_CHECK(src.shape()[0] == idx.shape()[0] && src.shape()[1] == x.shape()[1],
               op << ": src must be [" << idx.shape()[0] << ", " << x.shape()[1] << "], got " << src.describe());
  check_same_dtype(x, src, op);
  check_same_device(x, src, op);
  Tensor ic = idx.contiguous(), sc = src.contiguous();
  Tensor ih = on_host(ic);
  dispatch_index(ih.dtype(), op, [&](auto it) { check_range<decltype(it)>(ih, x.shape()[0], op); });
  Tensor out = index_add_raw(x.contiguous(), x.shape()[0], ic, sc, ih);
  if (needs_grad({x, src})) {
    auto n = std::make_shared<IndexAddBackward>();
    n->idx = ic.detach();
    connect(out, n, {x, idx, src});
  }
  return out;
}

}  // namespace mlamoe
