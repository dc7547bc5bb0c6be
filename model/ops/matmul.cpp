#include "model/ops/matmul.h"

#include <omp.h>

#include "model/autograd/autocast.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/gemm.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// How a 2-D (per batch) operand is handed to BLAS: row-major with leading dimension ld, possibly
// transposed. Returns false when neither the rows nor the columns are unit-stride.
struct BlasOperand {
  bool trans = false;
  int64_t ld = 0;
};

bool blas_layout(const Tensor& t, BlasOperand& op) {
  int64_t r = t.dim() - 2, c = t.dim() - 1;
  int64_t rows = t.shape()[r], cols = t.shape()[c];
  if (t.strides()[c] == 1 || cols == 1) {
    op = {false, std::max<int64_t>(rows == 1 ? cols : t.strides()[r], std::max<int64_t>(cols, 1))};
    return rows == 1 || t.strides()[r] >= cols;
  }
  if (t.strides()[r] == 1 || rows == 1) {
    op = {true, std::max<int64_t>(t.strides()[c], std::max<int64_t>(rows, 1))};
    return t.strides()[c] >= rows;
  }
  return false;
}

Tensor as_blas(const Tensor& t, BlasOperand& op) {
  if (blas_layout(t, op)) return t;
  Tensor c = t.contiguous();
  blas_layout(c, op);
  return c;
}

// c[b] = a[b] · b[b] for a batch of 2-D operands. batch stride 0 means "the same matrix".
template <class T, class TC>
void matmul_forward_cpu(const Tensor& a, const Tensor& b, Tensor& c, int64_t batch) {
  BlasOperand oa, ob;
  Tensor A = as_blas(a, oa), B = as_blas(b, ob);
  int64_t m = c.shape()[c.dim() - 2], n = c.shape()[c.dim() - 1], k = a.shape()[a.dim() - 1];
  int64_t sa = A.dim() == 3 ? A.strides()[0] : 0, sb = B.dim() == 3 ? B.strides()[0] : 0;
  const T* pa = A.data<T>();
  const T* pb = B.data<T>();
  TC* pc = c.data<TC>();
  auto one = [&](int64_t i, bool tiled) {
    if (tiled) {
      gemm_tiled(oa.trans, ob.trans, m, n, k, pa + i * sa, oa.ld, pb + i * sb, ob.ld, TC(0), pc + i * m * n, n);
    } else {
      gemm(oa.trans, ob.trans, m, n, k, TC(1), pa + i * sa, oa.ld, pb + i * sb, ob.ld, TC(0), pc + i * m * n, n);
    }
  };
  // Many small matrices: one per thread. Otherwise each product is cut into tiles run in parallel.
  if (batch >= omp_get_max_threads() && m * n * k < (1 << 21)) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < batch; ++i) one(i, false);
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i, true);
  }
}

// The same on CUDA: one strided-batched cuBLAS call (cblas in the emulator); f32 or bf16 operands.
void matmul_forward_cuda(const Tensor& a, const Tensor& b, Tensor& c, int64_t batch) {
  MLAMOE_CHECK(a.dtype() == DType::F32 || a.dtype() == DType::BF16,
               "matmul: the CUDA kernel takes f32 or bf16 operands, got " << a.describe());
  BlasOperand oa, ob;
  Tensor A = as_blas(a, oa), B = as_blas(b, ob);
  int64_t m = c.shape()[c.dim() - 2], n = c.shape()[c.dim() - 1], k = a.shape()[a.dim() - 1];
  int64_t sa = A.dim() == 3 ? A.strides()[0] : 0, sb = B.dim() == 3 ? B.strides()[0] : 0;
  if (a.dtype() == DType::F32)
    MLAMOE_CUDA_CALL(gemm_cuda, oa.trans, ob.trans, m, n, k, A.device_data<float>(), oa.ld, sa, B.device_data<float>(), ob.ld, sb,
                     c.device_data<float>(), n, m * n, batch);
  else
    MLAMOE_CUDA_CALL(gemm_bf16_cuda, oa.trans, ob.trans, m, n, k, A.device_data<bf16>(), oa.ld, sa, B.device_data<bf16>(), ob.ld,
                     sb, c.device_data<float>(), n, m * n, batch);
}

Tensor matmul_impl(const Tensor& a, const Tensor& b);

// One 2-D product C = A·B as a task of gemm_tasks, its operands laid out for BLAS (a copy is made
// and kept in `keep` only where a view has neither unit-stride rows nor columns).
template <class T, class TC>
GemmTask<T, TC> product_task(const Tensor& a, const Tensor& b, Tensor& c, std::vector<Tensor>& keep) {
  BlasOperand oa, ob;
  keep.push_back(as_blas(a, oa));
  const T* pa = keep.back().data<T>();
  keep.push_back(as_blas(b, ob));
  const T* pb = keep.back().data<T>();
  GemmTask<T, TC> t;
  t.ta = oa.trans, t.tb = ob.trans, t.m = c.shape()[0], t.n = c.shape()[1], t.k = a.shape()[1];
  t.a = pa, t.lda = oa.ld, t.b = pb, t.ldb = ob.ld, t.beta = TC(0), t.c = c.data<TC>(), t.ldc = t.n;
  return t;
}

// dA = dC·Bᵀ and dB = Aᵀ·dC of a product whose B is one matrix ([..., M, K] x [K, N]), run as the
// tiles of one parallel region. dB has M (all tokens) as its inner dimension and a small output
// ([K, N] of a weight), often a single tile: its tile goes first, so that one thread works on it
// while the others share dA's row tiles. Each tile is the same BLAS call as in gemm_tiled, so the
// values are those of two separate products.
void shared_weight_grads(const Tensor& a, const Tensor& b, const Tensor& dout, Tensor& da, Tensor& db) {
  int64_t k = a.shape().back(), n = dout.shape().back();
  Tensor a2 = a.reshape({-1, k}), g2 = dout.reshape({-1, n});
  int64_t m = a2.shape()[0];
  Tensor da2 = Tensor::empty({m, k}, accumulate_dtype(a.dtype()), a.device());
  db = Tensor::empty({k, n}, accumulate_dtype(a.dtype()), a.device());
  dispatch_product(a.dtype(), "matmul backward", [&](auto t_tag, auto tc_tag) {
    using T = decltype(t_tag);
    using TC = decltype(tc_tag);
    std::vector<Tensor> keep;
    std::vector<GemmTask<T, TC>> tasks{product_task<T, TC>(a2.transpose(0, 1), g2, db, keep),
                                       product_task<T, TC>(g2, b.transpose(0, 1), da2, keep)};
    gemm_tasks(tasks);
  });
  da = da2.reshape(a.shape());
}

struct MatmulBackward : Node {
  const char* name() const override { return "MatmulBackward"; }
  std::vector<Tensor> backward(const Tensor& dout_in) override {
    // bf16 operands: the incoming gradient is rounded to bf16 for the two products, and their f32
    // results to bf16, the operands' type (torch.autocast does the same: a bf16 product's output,
    // and so its gradient, is bf16).
    bool half = a.dtype() == DType::BF16;
    Tensor dout = half ? dout_in.to(DType::BF16) : dout_in;
    auto out = [&](Tensor t) { return half && t.defined() ? t.to(DType::BF16) : t; };
    Tensor da, db;
    if (next[0] && next[1] && b.dim() == 2 && a.device().is_cpu()) {  // (the engine runs backward under NoGrad)
      shared_weight_grads(a, b, dout, da, db);
      return {out(da), out(db)};
    }
    if (next[0]) da = matmul_impl(dout, b.transpose(-1, -2));  // dA = dC·Bᵀ
    if (next[1]) {
      if (a.dim() == b.dim()) {
        db = matmul_impl(a.transpose(-1, -2), dout);  // dB = Aᵀ·dC (per batch)
      } else {                                        // b was shared by every row of a
        int64_t k = a.shape().back(), n = dout.shape().back();
        db = matmul_impl(a.reshape({-1, k}).transpose(0, 1), dout.reshape({-1, n}));
      }
    }
    return {out(da), out(db)};
  }
  void release() override { a = b = Tensor(); }
  Tensor a, b;
};

Tensor matmul_impl(const Tensor& a, const Tensor& b) {
  const char* op = "matmul";
  MLAMOE_CHECK(
      a.dim() >= 2 && (b.dim() == 2 || b.dim() == a.dim()) && b.dim() <= 3,
      op << ": supported are [M,K]x[K,N], [B,M,K]x[B,K,N] and [...,M,K]x[K,N]; got " << a.describe() << " x " << b.describe());
  MLAMOE_CHECK(a.shape().back() == b.shape()[b.dim() - 2],
               op << ": inner dimensions differ, " << a.describe() << " x " << b.describe());
  if (b.dim() == 3)
    MLAMOE_CHECK(a.shape()[0] == b.shape()[0], op << ": batch sizes differ, " << a.describe() << " x " << b.describe());
  check_same_dtype(a, b, op);
  check_same_device(a, b, op);
  Tensor A = a;
  Shape out_shape = a.shape();
  out_shape.back() = b.shape().back();
  if (b.dim() == 2 && a.dim() > 2) A = a.reshape({-1, a.shape().back()});  // fold leading dims into M
  int64_t batch = A.dim() == 3 ? A.shape()[0] : 1;
  Shape c_shape = A.shape();
  c_shape.back() = b.shape().back();
  Tensor c = Tensor::empty(c_shape, accumulate_dtype(a.dtype()), a.device());
  if (a.device().is_cuda()) {
    matmul_forward_cuda(A, b, c, batch);
  } else {
    check_cpu(a, op);
    dispatch_product(a.dtype(), op, [&](auto t, auto tc) { matmul_forward_cpu<decltype(t), decltype(tc)>(A, b, c, batch); });
  }
  return c_shape == out_shape ? c : c.reshape(out_shape);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  if (a.dtype() != b.dtype() && (a.dtype() == DType::BF16 || b.dtype() == DType::BF16))
    return matmul(a.to(DType::F32), b.to(DType::F32));  // one bf16 operand: widened
  Tensor c;
  {
    NoGrad g;  // the reshapes inside are bookkeeping; the product gets one node below
    c = matmul_impl(a, b);
  }
  if (needs_grad({a, b})) {
    auto n = std::make_shared<MatmulBackward>();
    n->a = a.detach();
    n->b = b.detach();
    connect(c, n, {a, b});
  }
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w) {
  check_dim(w, 2, "linear", "weight");
  check_defined(x, "linear", "x");
  MLAMOE_CHECK(x.dim() >= 1 && x.shape().back() == w.shape()[1], "linear: input features "
                                                                     << (x.dim() ? x.shape().back() : 0) << " (" << x.describe()
                                                                     << ") do not match weight [out, in] = " << w.describe());
  if (x.dim() == 1) return linear(x.unsqueeze(0), w).squeeze(0);
  if (autocast_bf16() && w.dtype() == DType::F32 && (x.dtype() == DType::F32 || x.dtype() == DType::BF16)) {
    // bf16 operands (x may come converted already: a module converts an input that several
    // projections read once), f32 accumulation, the result rounded to bf16 values (autocast.h).
    // The rounding is in place: the product's backward keeps its operands, not its output, and
    // it rounds the incoming gradient itself, so the output needs no cast node of its own.
    Tensor y = matmul(autocast_operand(x), autocast_operand(w).transpose(0, 1));
    round_to_bf16_values(y);
    return y;
  }
  return matmul(x, w.transpose(0, 1));
}

}  // namespace mlamoe
