#include "model/ops/experts.h"

#include <cmath>
#include <type_traits>

#include "model/autograd/autocast.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/fast_exp.h"
#include "model/ops/gemm.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// ---------------------------------------------------------------- expert_swiglu

// Each tensor's elements of T, for a kernel: host pointers, or device pointers (CUDA kernels).
template <class T>
std::vector<const T*> data_of(const std::vector<Tensor>& ts, bool device) {
  std::vector<const T*> p;
  for (const Tensor& t : ts) p.push_back(device ? t.device_data<T>() : t.data<T>());
  return p;
}

struct ExpertPlan {
  std::vector<int64_t> offsets;  // [E_given + 1] first row of each expert
  int64_t d = 0, width = 0;      // hidden D, expert width I
};

// The kernels below take two types: T, the GEMM operands' (x, the weights, silu(g) ⊙ u, dy, dg, du),
// and TC, the type products accumulate into and elementwise maths runs in (h, y, da and the
// gradients). T = TC = f32 or f64; or T = bf16 with TC = f32 under autocast (model/README.md §6).

// v, computed in TC, stored as T (bf16: rounded to nearest even).
template <class T, class TC>
inline T store_as(TC v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return float_to_bf16(v);
  } else {
    return static_cast<T>(v);
  }
}

// h [R, 2I]: gate pre-activations in columns [0, I), up in [I, 2I). a [R, I] = silu(g) ⊙ u,
// computed in TC; H = TC, or bf16 for an h the backward kept as bf16 (read in place).
template <class T, class TC, class H = TC>
void swiglu_rows(const H* h, T* a, int64_t rows, int64_t width) {
#pragma omp parallel for schedule(static) if (rows * width > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const H* g = h + r * 2 * width;
    const H* u = g + width;
    T* ar = a + r * width;
    for (int64_t j = 0; j < width; ++j) {
      TC gj = load_as<TC>(g[j]);
      ar[j] = store_as<T>(gj * stable_sigmoid(gj) * load_as<TC>(u[j]));
    }
  }
}

template <class T, class TC>
void expert_swiglu_forward_cpu(const ExpertPlan& p, const T* x, const std::vector<const T*>& gate,
                               const std::vector<const T*>& up, const std::vector<const T*>& down, TC* h, T* a, TC* y) {
  int64_t d = p.d, w = p.width, e_count = static_cast<int64_t>(gate.size());
  std::vector<GemmTask<T, TC>> tasks;
  for (int64_t e = 0; e < e_count; ++e) {  // h_e = [x_e gateᵀ | x_e upᵀ]
    int64_t r0 = p.offsets[e], c = p.offsets[e + 1] - r0;
    for (int half = 0; half < 2; ++half) {
      GemmTask<T, TC> t;
      t.m = c, t.n = w, t.k = d;
      t.a = x + r0 * d, t.lda = d;
      t.b = half == 0 ? gate[e] : up[e], t.tb = true, t.ldb = d;
      t.c = h + r0 * 2 * w + half * w, t.ldc = 2 * w;
      tasks.push_back(t);
    }
  }
  gemm_tasks(tasks);
  int64_t rows = p.offsets.back();
  if constexpr (std::is_same_v<T, bf16>) round_to_bf16_values(h, rows * 2 * w);  // gate and up results are bf16 values
  swiglu_rows<T, TC>(h, a, rows, w);
  tasks.clear();
  for (int64_t e = 0; e < e_count; ++e) {  // y_e = a_e downᵀ
    int64_t r0 = p.offsets[e], c = p.offsets[e + 1] - r0;
    GemmTask<T, TC> t;
    t.m = c, t.n = d, t.k = w;
    t.a = a + r0 * w, t.lda = w;
    t.b = down[e], t.tb = true, t.ldb = w;
    t.c = y + r0 * d, t.ldc = d;
    tasks.push_back(t);
  }
  gemm_tasks(tasks);
}

// dx (may be null), dgate/dup/ddown[e] (entries may be null) from dy; h as saved by the forward
// (H = TC, or bf16 when the forward kept it as bf16).
template <class T, class TC, class H>
void expert_swiglu_backward_cpu(const ExpertPlan& p, const T* x, const std::vector<const T*>& gate,
                                const std::vector<const T*>& up, const std::vector<const T*>& down, const H* h, const T* dy,
                                TC* dx, const std::vector<TC*>& dgate, const std::vector<TC*>& dup,
                                const std::vector<TC*>& ddown) {
  int64_t d = p.d, w = p.width, e_count = static_cast<int64_t>(gate.size()), rows = p.offsets.back();
  // Scratch through the tensor allocator, whose cache serves them again next step.
  Tensor at = Tensor::empty({rows, w}, dtype_of<T>()), dat = Tensor::empty({rows, w}, dtype_of<TC>()),
         dht = Tensor::empty({rows, 2 * w}, dtype_of<T>());
  T* a = at.data<T>();
  TC* da = dat.data<TC>();
  T* dh = dht.data<T>();
  swiglu_rows<T, TC, H>(h, a, rows, w);  // recomputed rather than kept from the forward
  std::vector<GemmTask<T, TC>> tasks;
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = p.offsets[e], c = p.offsets[e + 1] - r0;
    GemmTask<T, TC> t;  // da_e = dy_e down
    t.m = c, t.n = w, t.k = d;
    t.a = dy + r0 * d, t.lda = d;
    t.b = down[e], t.ldb = w;
    t.c = da + r0 * w, t.ldc = w;
    tasks.push_back(t);
    if (ddown[e]) {  // ddown_e = dy_eᵀ a_e
      GemmTask<T, TC> g;
      g.ta = true, g.m = d, g.n = w, g.k = c;
      g.a = dy + r0 * d, g.lda = d;
      g.b = a + r0 * w, g.ldb = w;
      g.c = ddown[e], g.ldc = w;
      tasks.push_back(g);
    }
  }
  gemm_tasks(tasks);
  // dg = da ⊙ u ⊙ silu'(g), du = da ⊙ silu(g), with silu'(g) = s·(1 + g·(1 − s)).
#pragma omp parallel for schedule(static) if (rows * w > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const H* g = h + r * 2 * w;
    const H* u = g + w;
    const TC* dar = da + r * w;
    T* dg = dh + r * 2 * w;
    T* du = dg + w;
    for (int64_t j = 0; j < w; ++j) {
      // bf16: da is the gradient of a bf16 operand, so it is rounded first (as a bf16 GEMM's
      // incoming gradient is); dg and du are rounded as they are stored for their GEMMs.
      TC dj = std::is_same_v<T, bf16> ? bf16_to_float(float_to_bf16(static_cast<float>(dar[j]))) : dar[j];
      TC gj = load_as<TC>(g[j]), uj = load_as<TC>(u[j]);
      TC s = stable_sigmoid(gj);
      dg[j] = store_as<T>(dj * uj * s * (TC(1) + gj * (TC(1) - s)));
      du[j] = store_as<T>(dj * gj * s);
    }
  }
  tasks.clear();
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = p.offsets[e], c = p.offsets[e + 1] - r0;
    const T* dg = dh + r0 * 2 * w;
    if (dx) {  // dx_e = dg_e gate + du_e up
      GemmTask<T, TC> t;
      t.m = c, t.n = d, t.k = w;
      t.a = dg, t.lda = 2 * w;
      t.b = gate[e], t.ldb = d;
      t.c = dx + r0 * d, t.ldc = d;
      t.k2 = w, t.a2 = dg + w, t.lda2 = 2 * w, t.b2 = up[e], t.ldb2 = d;
      tasks.push_back(t);
    }
    for (int half = 0; half < 2; ++half) {  // dgate_e = dg_eᵀ x_e, dup_e = du_eᵀ x_e
      TC* out = half == 0 ? dgate[e] : dup[e];
      if (!out) continue;
      GemmTask<T, TC> t;
      t.ta = true, t.m = w, t.n = d, t.k = c;
      t.a = dg + half * w, t.lda = 2 * w;
      t.b = x + r0 * d, t.ldb = d;
      t.c = out, t.ldc = d;
      tasks.push_back(t);
    }
  }
  gemm_tasks(tasks);
}

struct ExpertSwigluBackward : Node {
  const char* name() const override { return "ExpertSwigluBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    int64_t e_count = static_cast<int64_t>(gate.size());
    std::vector<Tensor> grads(1 + 3 * e_count);
    // bf16 operands: the incoming gradient rounded to bf16 for the products, the gradients
    // computed in f32 and returned as bf16 (the operands' type), as matmul's backward does.
    bool half = x.dtype() == DType::BF16;
    Tensor dy = half ? dout.to(DType::BF16).contiguous() : dout.contiguous();
    if (on_cuda(x, name(), /*with_bf16=*/true)) {
      backward_cuda(dy, grads);
    } else {
      backward_cpu(dy, grads);
    }
    if (half)
      for (Tensor& g : grads)
        if (g.defined()) g = g.to(DType::BF16);
    return grads;
  }
  void backward_cpu(const Tensor& dy, std::vector<Tensor>& grads) {
    DType acc = accumulate_dtype(x.dtype());
    dispatch_product(x.dtype(), name(), [&](auto t_tag, auto tc_tag) {
      using T = decltype(t_tag);
      using TC = decltype(tc_tag);
      TC* dx = nullptr;
      if (next[0]) {
        grads[0] = Tensor::empty(x.shape(), acc, x.device());
        dx = grads[0].data<TC>();
      }
      auto pg = data_of<T>(gate, false), pu = data_of<T>(up, false), pd = data_of<T>(down, false);
      std::vector<TC*> dg, du, dd;
      weight_grads<TC>(grads, acc, false, dg, du, dd);
      if (h.dtype() == DType::BF16)  // kept as bf16 by the forward: read in place
        expert_swiglu_backward_cpu<T, TC, bf16>(plan, x.data<T>(), pg, pu, pd, h.data<bf16>(), dy.data<T>(), dx, dg, du, dd);
      else
        expert_swiglu_backward_cpu<T, TC, TC>(plan, x.data<T>(), pg, pu, pd, h.data<TC>(), dy.data<T>(), dx, dg, du, dd);
    });
  }
  // Allocates the wanted weight gradients (grads[1 + 3e + j], dtype acc) and gives their host
  // (device = false) or device pointers per expert: dgate, dup, ddown (null where not wanted).
  template <class TC>
  void weight_grads(std::vector<Tensor>& grads, DType acc, bool device, std::vector<TC*>& dg, std::vector<TC*>& du,
                    std::vector<TC*>& dd) {
    int64_t e_count = static_cast<int64_t>(gate.size());
    dg.assign(e_count, nullptr), du.assign(e_count, nullptr), dd.assign(e_count, nullptr);
    for (int64_t e = 0; e < e_count; ++e) {
      std::vector<TC*>* outs[3] = {&dg, &du, &dd};
      const Tensor* like[3] = {&gate[e], &up[e], &down[e]};
      for (int j = 0; j < 3; ++j) {
        if (!next[1 + 3 * e + j]) continue;
        Tensor& gt = grads[1 + 3 * e + j];
        gt = Tensor::empty(like[j]->shape(), acc, x.device());
        (*outs[j])[e] = device ? gt.device_data<TC>() : gt.data<TC>();
      }
    }
  }
  // On the device: experts.cu's loop of GEMMs, h laid out [2, R, I]; f32, or bf16 operands (dy
  // already rounded to bf16 by the caller) with f32 gradients.
  void backward_cuda(const Tensor& dy, std::vector<Tensor>& grads) {
    int64_t e_count = static_cast<int64_t>(gate.size()), rows = plan.offsets.back(), w = plan.width, d = plan.d;
    float* dx = nullptr;
    if (next[0]) {
      grads[0] = Tensor::empty(x.shape(), DType::F32, x.device());
      dx = grads[0].device_data<float>();
    }
    std::vector<float*> dg, du, dd;
    weight_grads<float>(grads, DType::F32, true, dg, du, dd);
    Tensor hf = widen_kept(h);
    if (x.dtype() == DType::BF16) {
      Tensor scratch = Tensor::empty({2 * rows * w + rows * d}, DType::F32, x.device());
      Tensor scratch16 = Tensor::empty({3 * rows * w}, DType::BF16, x.device());
      auto pg = data_of<bf16>(gate, true), pu = data_of<bf16>(up, true), pd = data_of<bf16>(down, true);
      MLAMOE_CUDA_CALL(expert_swiglu_backward_cuda, plan.offsets.data(), e_count, d, w, x.device_data<bf16>(), pg.data(),
                       pu.data(), pd.data(), hf.device_data<float>(), dy.device_data<bf16>(), dx, dg.data(), du.data(), dd.data(),
                       scratch.device_data<float>(), scratch16.device_data<bf16>());
    } else {
      Tensor scratch = Tensor::empty({4 * rows * w + rows * d}, DType::F32, x.device());
      auto pg = data_of<float>(gate, true), pu = data_of<float>(up, true), pd = data_of<float>(down, true);
      MLAMOE_CUDA_CALL(expert_swiglu_backward_cuda, plan.offsets.data(), e_count, d, w, x.device_data<float>(), pg.data(),
                       pu.data(), pd.data(), hf.device_data<float>(), dy.device_data<float>(), dx, dg.data(), du.data(),
                       dd.data(), scratch.device_data<float>());
    }
  }
  void release() override {
    x = h = Tensor();
    gate.clear(), up.clear(), down.clear();
  }
  ExpertPlan plan;
  Tensor x, h;  // x [R, D]; h [R, 2I] the gate and up pre-activations (on CUDA [2, R, I]: all gate rows, then up)
  std::vector<Tensor> gate, up, down;
};

// ---------------------------------------------------------------- moe_combine

// row_of [N]: row_of[a] = the row of yp holding assignment a.
std::vector<int64_t> invert_slots(const int64_t* slot, int64_t a) {
  std::vector<int64_t> row_of(a, -1);
  for (int64_t r = 0; r < a; ++r) {
    MLAMOE_CHECK(slot[r] >= 0 && slot[r] < a && row_of[slot[r]] < 0,
                 "moe_combine: slot " << slot[r] << " at row " << r << " is out of [0, " << a << ") or repeated");
    row_of[slot[r]] = r;
  }
  return row_of;
}

template <class T>
void moe_combine_forward_cpu(const T* yp, const T* w, const int64_t* row_of, T* y, int64_t s_tok, int64_t k, int64_t d) {
#pragma omp parallel for schedule(static) if (s_tok * k * d > kParallelGrain)
  for (int64_t s = 0; s < s_tok; ++s) {
    T* ys = y + s * d;
    for (int64_t j = 0; j < d; ++j) ys[j] = 0;
    for (int64_t q = 0; q < k; ++q) {
      const T* src = yp + row_of[s * k + q] * d;
      T wq = w[s * k + q];
      for (int64_t j = 0; j < d; ++j) ys[j] += wq * src[j];
    }
  }
}

// dyp[r] = w[slot r] · dy[token of r]; dw[a] = dy[token of a] · yp[row of a]. Y = T, or bf16 for
// a yp the forward kept as bf16 (read in place).
template <class T, class Y>
void moe_combine_backward_cpu(const Y* yp, const T* w, const int64_t* slot, const int64_t* row_of, const T* dy, T* dyp, T* dw,
                              int64_t s_tok, int64_t k, int64_t d) {
  int64_t a = s_tok * k;
  if (dyp) {
#pragma omp parallel for schedule(static) if (a * d > kParallelGrain)
    for (int64_t r = 0; r < a; ++r) {
      const T* g = dy + (slot[r] / k) * d;
      T wr = w[slot[r]];
      T* out = dyp + r * d;
      for (int64_t j = 0; j < d; ++j) out[j] = wr * g[j];
    }
  }
  if (dw) {
#pragma omp parallel for schedule(static) if (a * d > kParallelGrain)
    for (int64_t q = 0; q < a; ++q) {
      const T* g = dy + (q / k) * d;
      const Y* src = yp + row_of[q] * d;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < d; ++j) acc += g[j] * load_as<T>(src[j]);
      dw[q] = acc;
    }
  }
}

struct MoeCombineBackward : Node {
  const char* name() const override { return "MoeCombineBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    Tensor dy = dout.contiguous(), dyp, dw;  // yp (bf16 when kept so, read in place) is needed for dw only
    if (next[0]) dyp = Tensor::empty(yp.shape(), w.dtype(), yp.device());
    if (next[1]) dw = Tensor::empty(w.shape(), w.dtype(), w.device());
    int64_t s_tok = w.shape()[0], k = w.shape()[1], d = yp.shape()[1];
    if (on_cuda(w, name())) {
      Tensor ypf = widen_kept_on_cuda(yp);
      MLAMOE_CUDA_CALL(moe_combine_backward_cuda, ypf.device_data<float>(), w.device_data<float>(), slot.device_data<int64_t>(),
                       row_of_dev.device_data<int64_t>(), dy.device_data<float>(),
                       dyp.defined() ? dyp.device_data<float>() : nullptr, dw.defined() ? dw.device_data<float>() : nullptr,
                       s_tok, k, d);
      return {dyp, dw, Tensor()};
    }
    dispatch_float(w.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      auto run = [&](auto yt) {
        using Y = decltype(yt);
        moe_combine_backward_cpu<T, Y>(yp.data<Y>(), w.data<T>(), slot.data<int64_t>(), row_of.data(), dy.data<T>(),
                                       dyp.defined() ? dyp.data<T>() : nullptr, dw.defined() ? dw.data<T>() : nullptr, s_tok, k,
                                       d);
      };
      if (yp.dtype() == DType::BF16)
        run(bf16{});
      else
        run(T{});
    });
    return {dyp, dw, Tensor()};
  }
  void release() override {
    yp = w = slot = row_of_dev = Tensor();
    row_of.clear();
  }
  Tensor yp, w, slot;           // [N, D], [S, K], [N] (slot on yp's device)
  std::vector<int64_t> row_of;  // [N] (CPU)
  Tensor row_of_dev;            // [N] i64 row_of on the device (CUDA)
};

}  // namespace

Tensor expert_swiglu(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& gate,
                     const std::vector<Tensor>& up, const std::vector<Tensor>& down) {
  const char* op = "expert_swiglu";
  check_dim(x, 2, op, "x [R, D]");
  if (autocast_bf16() && x.dtype() == DType::F32) {
    // bf16 operands, f32 accumulation and elementwise maths, the result rounded to bf16 values
    // (model/autograd/autocast.h); the weights' dtypes are checked by the call below.
    auto half = [](const std::vector<Tensor>& ws) {
      std::vector<Tensor> out;
      for (const Tensor& w : ws) out.push_back(autocast_operand(w));
      return out;
    };
    Tensor y = expert_swiglu(autocast_operand(x), counts, half(gate), half(up), half(down));
    round_to_bf16_values(y);
    return y;
  }
  size_t e_count = counts.size();
  MLAMOE_CHECK(gate.size() == e_count && up.size() == e_count && down.size() == e_count,
               op << ": " << e_count << " counts but " << gate.size() << " gate, " << up.size() << " up and " << down.size()
                  << " down weights");
  ExpertPlan plan;
  plan.d = x.shape()[1];
  if (e_count) check_dim(gate[0], 2, op, "gate[0] [I, D]");
  plan.width = e_count ? gate[0].shape()[0] : 0;
  plan.offsets.assign(1, 0);
  for (size_t e = 0; e < e_count; ++e) {
    MLAMOE_CHECK(counts[e] > 0,
                 op << ": expert #" << e << " of those given has " << counts[e] << " rows; pass only experts that received rows");
    plan.offsets.push_back(plan.offsets.back() + counts[e]);
    Shape wi = {plan.width, plan.d}, wo = {plan.d, plan.width};
    MLAMOE_CHECK(gate[e].shape() == wi && up[e].shape() == wi && down[e].shape() == wo,
                 op << ": expert #" << e << " of those given has weights gate " << gate[e].describe() << ", up "
                    << up[e].describe() << ", down " << down[e].describe()
                    << "; expected [I, D], [I, D], [D, I] with D = " << plan.d);
    check_same_dtype(x, gate[e], op);
    check_same_dtype(x, up[e], op);
    check_same_dtype(x, down[e], op);
    check_same_device(x, gate[e], op);
    check_same_device(x, up[e], op);
    check_same_device(x, down[e], op);
  }
  MLAMOE_CHECK(plan.offsets.back() == x.shape()[0],
               op << ": counts sum to " << plan.offsets.back() << " rows but x is " << x.describe());
  Tensor x_RD = x.contiguous();
  std::vector<Tensor> gc, uc, dc;
  for (size_t e = 0; e < e_count; ++e) {
    gc.push_back(gate[e].contiguous());
    uc.push_back(up[e].contiguous());
    dc.push_back(down[e].contiguous());
  }
  int64_t rows = x.shape()[0];
  DType acc = accumulate_dtype(x.dtype());
  bool cuda = on_cuda(x, op, /*with_bf16=*/true);
  // On CUDA h is [2, R, I] (all gate pre-activations, then all up): experts.cu.
  Tensor h_R2I =
      cuda ? Tensor::empty({2, rows, plan.width}, acc, x.device()) : Tensor::empty({rows, 2 * plan.width}, acc, x.device());
  Tensor y_RD = Tensor::empty({rows, plan.d}, acc, x.device());
  if (cuda) {
    // f32, or bf16 operands under autocast (f32 h and y, a in bf16): experts.cu.
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      auto pg = data_of<T>(gc, true), pu = data_of<T>(uc, true), pd = data_of<T>(dc, true);
      Tensor a_RI = Tensor::empty({rows, plan.width}, x.dtype(), x.device());  // scratch
      MLAMOE_CUDA_CALL(expert_swiglu_forward_cuda, plan.offsets.data(), static_cast<int64_t>(e_count), plan.d, plan.width,
                       x_RD.device_data<T>(), pg.data(), pu.data(), pd.data(), h_R2I.device_data<float>(), a_RI.device_data<T>(),
                       y_RD.device_data<float>());
    };
    if (x.dtype() == DType::BF16)
      launch(bf16{});
    else
      launch(float{});
  } else {
    check_cpu(x, op);
    dispatch_product(x.dtype(), op, [&](auto t_tag, auto tc_tag) {
      using T = decltype(t_tag);
      using TC = decltype(tc_tag);
      auto pg = data_of<T>(gc, false), pu = data_of<T>(uc, false), pd = data_of<T>(dc, false);
      Tensor a_RI = Tensor::empty({rows, plan.width}, x.dtype(), x.device());  // scratch
      expert_swiglu_forward_cpu<T, TC>(plan, x_RD.data<T>(), pg, pu, pd, h_R2I.data<TC>(), a_RI.data<T>(), y_RD.data<TC>());
    });
  }
  std::vector<Tensor> inputs = {x};
  for (size_t e = 0; e < e_count; ++e) inputs.insert(inputs.end(), {gate[e], up[e], down[e]});
  if (needs_grad(inputs)) {
    auto n = std::make_shared<ExpertSwigluBackward>();
    n->plan = plan;
    n->x = x_RD.detach();
    n->h = keep_for_backward(h_R2I);  // bf16 operands: the gate/up results are bf16 values
    for (size_t e = 0; e < e_count; ++e) {
      n->gate.push_back(gc[e].detach());
      n->up.push_back(uc[e].detach());
      n->down.push_back(dc[e].detach());
    }
    connect(y_RD, n, inputs);
  }
  return y_RD;
}

Tensor moe_combine(const Tensor& yp, const Tensor& w, const Tensor& slot) {
  const char* op = "moe_combine";
  check_dim(yp, 2, op, "yp [N, D]");
  check_dim(w, 2, op, "w [S, K]");
  check_dim(slot, 1, op, "slot [N]");
  check_same_dtype(yp, w, op);
  check_same_device(yp, w, op);
  MLAMOE_CHECK(slot.dtype() == DType::I64, op << ": slot must be i64, got " << slot.describe());
  int64_t s_tok = w.shape()[0], k = w.shape()[1], d = yp.shape()[1];
  MLAMOE_CHECK(yp.shape()[0] == s_tok * k && slot.shape()[0] == s_tok * k,
               op << ": yp " << yp.describe() << " and slot " << slot.describe() << " must have S·K = " << s_tok * k
                  << " rows for w " << w.describe());
  Tensor yp_ND = yp.contiguous(), w_SK = w.contiguous(), slot_N = slot.contiguous();
  // The slots are checked and inverted on the host (a small copy for device slots), and live on
  // yp's device for the kernels (host slots, as permute_by_expert makes them, are moved there).
  Tensor slot_host = slot_N.device().is_cpu() ? slot_N : slot_N.to(Device::cpu());
  if (!(slot_N.device() == yp.device())) slot_N = slot_N.to(yp.device());
  std::vector<int64_t> row_of_N = invert_slots(slot_host.data<int64_t>(), s_tok * k);
  Tensor y_SD = Tensor::empty({s_tok, d}, yp.dtype(), yp.device());
  Tensor row_of_dev;
  if (on_cuda(yp, op)) {
    row_of_dev = Tensor::from_vector(row_of_N, {s_tok * k}).to(yp.device());
    MLAMOE_CUDA_CALL(moe_combine_forward_cuda, yp_ND.device_data<float>(), w_SK.device_data<float>(),
                     row_of_dev.device_data<int64_t>(), y_SD.device_data<float>(), s_tok, k, d);
  } else {
    check_cpu(yp, op);
    dispatch_float(yp.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      moe_combine_forward_cpu<T>(yp_ND.data<T>(), w_SK.data<T>(), row_of_N.data(), y_SD.data<T>(), s_tok, k, d);
    });
  }
  if (needs_grad({yp, w})) {
    auto n = std::make_shared<MoeCombineBackward>();
    n->yp = keep_for_backward(yp_ND);  // under autocast the experts' rounded outputs: bf16 values
    n->w = w_SK.detach();
    n->slot = slot_N;
    n->row_of = std::move(row_of_N);
    n->row_of_dev = row_of_dev;
    connect(y_SD, n, {yp, w, slot});
  }
  return y_SD;
}

}  // namespace mlamoe
