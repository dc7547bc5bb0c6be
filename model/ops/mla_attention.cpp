// mla_attention: each (batch, head) packs its rotated queries and keys into per-thread buffers
// [T, d_qk] and runs the shared per-head kernel (attention_head.h); v is read in place from kv. This replaces, per MLA layer, two
// splits, two rotations, a broadcast and two concatenations, whose backward zero-filled and summed full-size gradient buffers.
#include "model/ops/mla_attention.h"

#include <algorithm>
#include <type_traits>

#include "model/autograd/autocast.h"
#include "model/ops/attention_head.h"
#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

struct MlaShape {
  int64_t b, t, h, dn, dr, dv;
  int64_t kpe_sb, kpe_st;  // k_pe's batch and token strides (its last dim is unit-stride)
  int64_t dqk() const { return dn + dr; }
  int64_t ldq() const { return h * (dn + dr); }
  int64_t ldkv() const { return h * (dn + dv); }
  int64_t ldo() const { return h * dv; }
};

// A short run of values (a head's d_n or d_v dims): an inline loop, where std::copy would call
// memmove once per run. X = T, or bf16 read as T.
template <class T, class X>
inline void copy_run(const X* src, int64_t n, T* dst) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dst[j] = load_as<T>(src[j]);
}

// The op's inputs in their element type X: T, or bf16 when the backward reads what the forward
// kept as bf16 (autocast.h's keep_for_backward); the rope tables are T.
template <class T, class X = T>
struct MlaPtrs {
  const X *q, *kv, *kpe;
  const T *cos, *sin;
};

// rope(k_pe) of every token, once (all heads share it): out [B, T, d_r].
template <class T, class X>
void rotate_kpe(const MlaPtrs<T, X>& in, const MlaShape& a, T* out) {
  int64_t half = a.dr / 2;
#pragma omp parallel for collapse(2) schedule(static) if (a.b * a.t * a.dr > kParallelGrain)
  for (int64_t bi = 0; bi < a.b; ++bi)
    for (int64_t i = 0; i < a.t; ++i)
      rope_row(in.kpe + bi * a.kpe_sb + i * a.kpe_st, in.cos + i * half, in.sin + i * half, out + (bi * a.t + i) * a.dr, half,
               T(1));
}

// The rotated queries and keys of head hi of batch bi, packed as [T, d_qk]:
//   qh[i] = [q_n, rope(q_r)],  kh[i] = [k_nope_h, rope(k_pe)] (kpe_rot: rotate_kpe's output).
template <class T, class X>
void pack_head(const MlaPtrs<T, X>& in, const MlaShape& a, const T* kpe_rot, int64_t bi, int64_t hi, T* qh, T* kh) {
  int64_t dqk = a.dqk(), half = a.dr / 2;
  for (int64_t i = 0; i < a.t; ++i) {
    const X* qr = in.q + (bi * a.t + i) * a.ldq() + hi * dqk;
    const X* kr = in.kv + (bi * a.t + i) * a.ldkv() + hi * (a.dn + a.dv);
    copy_run(qr, a.dn, qh + i * dqk);
    rope_row(qr + a.dn, in.cos + i * half, in.sin + i * half, qh + i * dqk + a.dn, half, T(1));
    copy_run(kr, a.dn, kh + i * dqk);
    copy_run(kpe_rot + (bi * a.t + i) * a.dr, a.dr, kh + i * dqk + a.dn);
  }
}

template <class T>
void mla_forward_cpu(const MlaPtrs<T>& in, const MlaShape& a, T scale, T* o, T* lse) {
  int64_t dqk = a.dqk();
  Tensor kpe_rot = Tensor::empty({a.b, a.t, a.dr}, dtype_of<T>());
  rotate_kpe(in, a, kpe_rot.data<T>());
  attention_head::ThreadScratch<T> scratch(2 * a.t * dqk + attention_head::forward_scratch(a.t, dqk, a.dv));
#pragma omp parallel
  {
    T* qh = scratch.mine();
    T* kh = qh + a.t * dqk;
    T* s = kh + a.t * dqk;
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t hi = 0; hi < a.h; ++hi) {
        pack_head(in, a, kpe_rot.data<T>(), bi, hi, qh, kh);
        const T* v = in.kv + bi * a.t * a.ldkv() + hi * (a.dn + a.dv) + a.dn;
        attention_head::forward<T>({qh, dqk}, {kh, dqk}, {v, a.ldkv()}, {o + bi * a.t * a.ldo() + hi * a.dv, a.ldo()},
                                   lse + (bi * a.h + hi) * a.t, a.t, dqk, a.dv, scale, s);
      }
    }
  }
}

// dq [B, T, H, d_qk], dkv [B, T, H, d_n + d_v], dkpe [B, T, d_r] (contiguous), all written.
// X = T reads v, o and dout in place; X = bf16 (what the forward kept under autocast, and the
// bf16 gradient o_proj returns) packs each head's v, o and dout as T first, like q and k.
template <class T, class X>
void mla_backward_cpu(const MlaPtrs<T, X>& in, const MlaShape& a, T scale, const X* o, const T* lse, const X* dout, T* dq, T* dkv,
                      T* dkpe) {
  constexpr bool kInPlace = std::is_same_v<T, X>;
  int64_t dqk = a.dqk(), half = a.dr / 2;
  // Each head's gradient of the shared rotary key, summed over heads in order afterwards.
  Tensor heads_t = Tensor::empty({a.b, a.h, a.t, a.dr}, dtype_of<T>()), kpe_rot = Tensor::empty({a.b, a.t, a.dr}, dtype_of<T>());
  rotate_kpe(in, a, kpe_rot.data<T>());
  T* heads = heads_t.data<T>();
  int64_t packed_vod = kInPlace ? 0 : 3 * a.t * a.dv;  // v, o, dout of one head
  attention_head::ThreadScratch<T> scratch(4 * a.t * dqk + a.t * a.dv + a.dr + packed_vod +
                                           attention_head::backward_scratch(a.t, dqk, a.dv));
#pragma omp parallel
  {
    T* qh = scratch.mine();
    T* kh = qh + a.t * dqk;
    T* dqh = kh + a.t * dqk;
    T* dkh = dqh + a.t * dqk;
    T* dvh = dkh + a.t * dqk;
    T* acc = dvh + a.t * a.dv;
    T* vodh = acc + a.dr;  // packed v, o, dout [t, d_v] each (bf16 inputs only)
    T* work = vodh + packed_vod;
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t hi = 0; hi < a.h; ++hi) {
        pack_head(in, a, kpe_rot.data<T>(), bi, hi, qh, kh);
        std::fill(dkh, dkh + a.t * dqk, T(0));
        std::fill(dvh, dvh + a.t * a.dv, T(0));
        int64_t kvoff = bi * a.t * a.ldkv() + hi * (a.dn + a.dv), ooff = bi * a.t * a.ldo() + hi * a.dv;
        using M = attention_head::Mat<const T>;
        M v, oh, gh;
        if constexpr (kInPlace) {
          v = {in.kv + kvoff + a.dn, a.ldkv()}, oh = {o + ooff, a.ldo()}, gh = {dout + ooff, a.ldo()};
        } else {
          T* vp = vodh;
          T* op = vp + a.t * a.dv;
          T* gp = op + a.t * a.dv;
          for (int64_t i = 0; i < a.t; ++i) {
            copy_run(in.kv + kvoff + i * a.ldkv() + a.dn, a.dv, vp + i * a.dv);
            copy_run(o + ooff + i * a.ldo(), a.dv, op + i * a.dv);
            copy_run(dout + ooff + i * a.ldo(), a.dv, gp + i * a.dv);
          }
          v = {vp, a.dv}, oh = {op, a.dv}, gh = {gp, a.dv};
        }
        attention_head::backward<T>({qh, dqk}, {kh, dqk}, v, oh, gh, lse + (bi * a.h + hi) * a.t, {dqh, dqk}, {dkh, dqk},
                                    {dvh, a.dv}, a.t, dqk, a.dv, scale, work);
        for (int64_t i = 0; i < a.t; ++i) {  // unpack, rotating the rotary parts back
          const T* c = in.cos + i * half;
          const T* s = in.sin + i * half;
          T* dqr = dq + (bi * a.t + i) * a.ldq() + hi * dqk;
          copy_run(dqh + i * dqk, a.dn, dqr);
          rope_row(dqh + i * dqk + a.dn, c, s, dqr + a.dn, half, T(-1));
          T* dkvr = dkv + (bi * a.t + i) * a.ldkv() + hi * (a.dn + a.dv);
          copy_run(dkh + i * dqk, a.dn, dkvr);
          copy_run(dvh + i * a.dv, a.dv, dkvr + a.dn);
          copy_run(dkh + i * dqk + a.dn, a.dr, heads + ((bi * a.h + hi) * a.t + i) * a.dr);
        }
      }
    }
    // dk_pe = rope⁻¹(Σ_h d(rope(k_pe))_h): the broadcast's backward, then the rotation's.
#pragma omp for schedule(static) collapse(2)
    for (int64_t bi = 0; bi < a.b; ++bi) {
      for (int64_t i = 0; i < a.t; ++i) {
        std::fill(acc, acc + a.dr, T(0));
        for (int64_t hi = 0; hi < a.h; ++hi) {
          const T* g = heads + ((bi * a.h + hi) * a.t + i) * a.dr;
          for (int64_t j = 0; j < a.dr; ++j) acc[j] += g[j];
        }
        rope_row(acc, in.cos + i * half, in.sin + i * half, dkpe + (bi * a.t + i) * a.dr, half, T(-1));
      }
    }
  }
}

// The CUDA path: q and k packed per head once ([B, T, H, d_qk], rotary parts rotated), v read in
// place from kv, then the flash-style kernels of model/ops/cuda/attention.cu.
cuda::MlaDims cuda_dims(const MlaShape& a) { return {a.b, a.t, a.h, a.dn, a.dr, a.dv, a.kpe_sb, a.kpe_st}; }
cuda::AttnDims attn_dims(const MlaShape& a, double scale) { return {a.b, a.t, a.h, a.dqk(), a.dv, static_cast<float>(scale)}; }
// v inside kv: element (b, i, h, d) at kv + d_n + ...
cuda::AttnLayout v_in_kv(const MlaShape& a) { return {a.t * a.ldkv(), a.ldkv(), a.dn + a.dv}; }

void mla_forward_cuda(const Tensor& q, const Tensor& kv, const Tensor& kpe, const Tensor& cos, const Tensor& sin,
                      const MlaShape& a, double scale, Tensor& o, Tensor& lse) {
  Tensor qf = Tensor::empty({a.b, a.t, a.h, a.dqk()}, DType::F32, q.device()),
         kf = Tensor::empty(qf.shape(), DType::F32, q.device());
  MLAMOE_CUDA_CALL(mla_pack_cuda, cuda_dims(a), q.device_data<float>(), kv.device_data<float>(), kpe.device_data<float>(),
                   cos.device_data<float>(), sin.device_data<float>(), qf.device_data<float>(), kf.device_data<float>());
  cuda::AttnLayout lqk = cuda::attn_layout(a.t, a.h, a.dqk());
  MLAMOE_CUDA_CALL(attention_forward_cuda, attn_dims(a, scale), qf.device_data<float>(), lqk, kf.device_data<float>(), lqk,
                   kv.device_data<float>() + a.dn, v_in_kv(a), o.device_data<float>(), cuda::attn_layout(a.t, a.h, a.dv),
                   lse.device_data<float>());
}

void mla_backward_cuda(const Tensor& q, const Tensor& kv, const Tensor& kpe, const Tensor& cos, const Tensor& sin,
                       const Tensor& o, const Tensor& lse, const Tensor& g, const MlaShape& a, double scale, Tensor& dq,
                       Tensor& dkv, Tensor& dkpe) {
  Tensor qf = Tensor::empty({a.b, a.t, a.h, a.dqk()}, DType::F32, q.device()),
         kf = Tensor::empty(qf.shape(), DType::F32, q.device());
  MLAMOE_CUDA_CALL(mla_pack_cuda, cuda_dims(a), q.device_data<float>(), kv.device_data<float>(), kpe.device_data<float>(),
                   cos.device_data<float>(), sin.device_data<float>(), qf.device_data<float>(), kf.device_data<float>());
  Tensor dqf = Tensor::empty(qf.shape(), DType::F32, q.device()), dkf = Tensor::empty(qf.shape(), DType::F32, q.device());
  Tensor rowdot = Tensor::empty({a.b, a.h, a.t}, DType::F32, q.device());
  cuda::AttnLayout lqk = cuda::attn_layout(a.t, a.h, a.dqk()), lo = cuda::attn_layout(a.t, a.h, a.dv);
  MLAMOE_CUDA_CALL(attention_backward_cuda, attn_dims(a, scale), qf.device_data<float>(), lqk, kf.device_data<float>(), lqk,
                   kv.device_data<float>() + a.dn, v_in_kv(a), o.device_data<float>(), lo, lse.device_data<float>(),
                   g.device_data<float>(), lo, dqf.device_data<float>(), lqk, dkf.device_data<float>(), lqk,
                   dkv.device_data<float>() + a.dn, v_in_kv(a), rowdot.device_data<float>());
  MLAMOE_CUDA_CALL(mla_unpack_grads_cuda, cuda_dims(a), dqf.device_data<float>(), dkf.device_data<float>(),
                   cos.device_data<float>(), sin.device_data<float>(), dq.device_data<float>(), dkv.device_data<float>(),
                   dkpe.device_data<float>());
}

struct MlaAttentionBackward : Node {
  const char* name() const override { return "MlaAttentionBackward"; }
  std::vector<Tensor> backward(const Tensor& dout) override {
    // What the forward kept: all bf16 under autocast (the projections' rounded results and the
    // bf16 output; the incoming gradient is bf16 too, as o_proj's backward returns its operand's
    // type), read in place by the bf16 kernel; a mix (an input that was not bf16 values) is
    // widened to f32 first.
    Tensor g = dout.contiguous(), q = kept_q, kv = kept_kv, o = kept_o, k_pe = kept_kpe;
    bool half = g.dtype() == DType::BF16 && q.dtype() == DType::BF16 && kv.dtype() == DType::BF16 && o.dtype() == DType::BF16 &&
                k_pe.dtype() == DType::BF16;
    if (!half || q.device().is_cuda()) {  // the CUDA kernels read f32
      for (Tensor* t : {&g, &q, &kv, &o, &k_pe}) *t = widen_kept(*t);
    }
    MlaShape shape = shape_;
    shape.kpe_sb = k_pe.strides()[0], shape.kpe_st = k_pe.strides()[1];
    DType dt = lse.dtype();  // the op's own dtype
    Tensor dq = Tensor::empty(q.shape(), dt, q.device());
    Tensor dkv = Tensor::empty(kv.shape(), dt, kv.device());
    Tensor dkpe = Tensor::empty({shape.b, shape.t, shape.dr}, dt, q.device());
    if (on_cuda(q, "mla_attention")) {
      mla_backward_cuda(q, kv, k_pe, cos, sin, o, lse, g, shape, scale, dq, dkv, dkpe);
      return {dq, dkv, dkpe};
    }
    dispatch_float(dt, "mla_attention", [&](auto tag) {
      using T = decltype(tag);
      auto run = [&](auto xt) {
        using X = decltype(xt);
        MlaPtrs<T, X> in{q.data<X>(), kv.data<X>(), k_pe.data<X>(), cos.data<T>(), sin.data<T>()};
        mla_backward_cpu<T, X>(in, shape, static_cast<T>(scale), o.data<X>(), lse.data<T>(), g.data<X>(), dq.data<T>(),
                               dkv.data<T>(), dkpe.data<T>());
      };
      if (half)
        run(bf16{});
      else
        run(T{});
    });
    return {dq, dkv, dkpe};
  }
  void release() override { kept_q = kept_kv = kept_kpe = cos = sin = kept_o = lse = Tensor(); }
  Tensor kept_q, kept_kv, kept_kpe, kept_o;  // keep_for_backward() of q, kv, k_pe and the output
  Tensor cos, sin, lse;
  MlaShape shape_{};
  double scale = 1.0;
};

}  // namespace

Tensor mla_attention(const Tensor& q, const Tensor& kv, const Tensor& k_pe, const RopeTables& rope, int64_t qk_nope_head_dim,
                     double scale) {
  const char* op = "mla_attention";
  check_dim(q, 4, op, "q [B, T, H, d_n + d_r]");
  check_dim(kv, 4, op, "kv [B, T, H, d_n + d_v]");
  check_dim(k_pe, 3, op, "k_pe [B, T, d_r]");
  int64_t b = q.size(0), t = q.size(1), h = q.size(2), dn = qk_nope_head_dim, dr = q.size(3) - dn, dv = kv.size(3) - dn;
  MLAMOE_CHECK(dn >= 0 && dr > 0 && dr % 2 == 0,
               op << ": q " << q.describe() << " must hold d_n = " << dn << " dims plus an even, positive rotary part");
  MLAMOE_CHECK(kv.size(0) == b && kv.size(1) == t && kv.size(2) == h && dv > 0,
               op << ": kv " << kv.describe() << " must be [" << b << ", " << t << ", " << h << ", " << dn << " + d_v]");
  MLAMOE_CHECK(k_pe.shape() == Shape({b, t, dr}),
               op << ": k_pe " << k_pe.describe() << " must be [" << b << ", " << t << ", " << dr << "]");
  MLAMOE_CHECK(rope.cos.shape() == Shape({t, dr / 2}) && rope.sin.shape() == Shape({t, dr / 2}),
               op << ": rope tables must be [" << t << ", " << dr / 2 << "], got " << rope.cos.describe() << " and "
                  << rope.sin.describe());
  for (const Tensor* x : {&kv, &k_pe, &rope.cos, &rope.sin}) check_same_dtype(q, *x, op);
  for (const Tensor* x : {&kv, &k_pe}) check_same_device(q, *x, op);
  Tensor qc = q.contiguous(), kvc = kv.contiguous(), kpe = k_pe.strides()[2] == 1 ? k_pe : k_pe.contiguous();
  // attention_context moves the tables to the model's device once per forward; host tables given to a
  // CUDA op are moved here.
  Tensor cos = rope.cos.contiguous().to(q.device()), sin = rope.sin.contiguous().to(q.device());
  MlaShape a{b, t, h, dn, dr, dv, kpe.strides()[0], kpe.strides()[1]};
  Tensor o = Tensor::empty({b, t, h, dv}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({b, h, t}, q.dtype(), q.device());
  if (on_cuda(q, op)) {
    mla_forward_cuda(qc, kvc, kpe, cos, sin, a, scale, o, lse);
  } else {
    check_cpu(q, op);
    dispatch_float(q.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      MlaPtrs<T> in{qc.data<T>(), kvc.data<T>(), kpe.data<T>(), cos.data<T>(), sin.data<T>()};
      mla_forward_cpu<T>(in, a, static_cast<T>(scale), o.data<T>(), lse.data<T>());
    });
  }
  // Under autocast the output is bf16 (model/README.md §6): o_proj reads it as its GEMM operand
  // and this op's backward keeps the same tensor.
  if (autocast_bf16() && o.dtype() == DType::F32) o = o.to(DType::BF16);
  if (needs_grad({q, kv, k_pe})) {
    auto n = std::make_shared<MlaAttentionBackward>();
    n->kept_q = keep_for_backward(qc);  // bf16 when they are the projections' rounded results
    n->kept_kv = keep_for_backward(kvc);
    n->kept_kpe = keep_for_backward(kpe);
    n->cos = cos.detach();
    n->sin = sin.detach();
    n->kept_o = o.detach();
    n->lse = lse;
    n->shape_ = a;
    n->scale = scale;
    connect(o, n, {q, kv, k_pe});
  }
  return o;
}

}  // namespace mlamoe
