// Causal attention on the GPU, flash-style (Dao et al., FlashAttention-2, Algorithm 1 and the
// deterministic backward): a block takes a tile of kBr queries of one (batch, head), walks the key
// tiles of kBc keys up to the diagonal, and keeps a running max m, sum l and output O per query
// (online softmax), so no T×T matrix exists. f32 throughout; q/k head dim dqk may differ from v's dv.
//   forward:  S = scale·Q·Kᵀ (masked j > i), O = softmax(S)·V, lse = m + log l
//   backward: P = exp(S − lse), D_i = Σ_d dO_i,d·O_i,d, dP = dO·Vᵀ, dS = P ∘ (dP − D),
//             dV = Pᵀ·dO, dK = scale·dSᵀ·Q, dQ = scale·dS·K
// The backward runs two kernels, one per key tile (dK, dV) and one per query tile (dQ), each
// recomputing P: every gradient element is summed by one thread in a fixed order, no atomics.
// MLA's packing (rotary parts rotated, the shared k_pe broadcast to every head) is here too.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

constexpr int kBr = 16;  // queries per tile
constexpr int kBc = 16;  // keys per tile
constexpr int kAttnThreads = 128;

__device__ inline int64_t at(const cuda::AttnLayout& l, int64_t b, int64_t i, int64_t h) {
  return b * l.sb + i * l.st + h * l.sh;
}

// rows [r0, r0 + rows) of a per-head matrix (d columns) into shared memory; rows past t are zero.
__device__ inline void load_tile(float* dst, const float* src, const cuda::AttnLayout& l, int64_t b, int64_t h, int64_t r0,
                                 int rows, int64_t d, int64_t t) {
  for (int64_t e = threadIdx.x; e < rows * d; e += blockDim.x) {
    int64_t r = e / d, c = e % d, i = r0 + r;
    dst[e] = i < t ? src[at(l, b, i, h) + c] : 0.0f;
  }
}

__global__ void attention_forward_kernel(cuda::AttnDims a, const float* q, cuda::AttnLayout lq, const float* k,
                                         cuda::AttnLayout lk, const float* v, cuda::AttnLayout lv, float* o, cuda::AttnLayout lo,
                                         float* lse) {
  MLAMOE_DYNAMIC_SHARED(float, smem);
  float* Qs = smem;              // [kBr, dqk]
  float* Ks = Qs + kBr * a.dqk;  // [kBc, dqk]
  float* Vs = Ks + kBc * a.dqk;  // [kBc, dv]
  float* Ss = Vs + kBc * a.dv;   // [kBr, kBc]: scores, then probabilities
  float* Os = Ss + kBr * kBc;    // [kBr, dv]: unnormalised output
  float* ms = Os + kBr * a.dv;   // [kBr] running max
  float* ls = ms + kBr;          // [kBr] running sum
  float* alpha = ls + kBr;       // [kBr] this tile's rescaling of O
  const int64_t tiles = (a.t + kBr - 1) / kBr;
  for (int64_t task = blockIdx.x; task < a.b * a.h * tiles; task += gridDim.x) {
    const int64_t qt = task % tiles, hi = task / tiles % a.h, bi = task / tiles / a.h, i0 = qt * kBr;
    load_tile(Qs, q, lq, bi, hi, i0, kBr, a.dqk, a.t);
    for (int64_t e = threadIdx.x; e < kBr * a.dv; e += blockDim.x) Os[e] = 0.0f;
    for (int r = threadIdx.x; r < kBr; r += blockDim.x) ms[r] = -INFINITY, ls[r] = 0.0f;
    const int64_t last_key = (i0 + kBr < a.t ? i0 + kBr : a.t) - 1;  // causal: no key after the tile's last query
    for (int64_t j0 = 0; j0 <= last_key; j0 += kBc) {
      __syncthreads();  // the previous tile's V and P are read no more
      load_tile(Ks, k, lk, bi, hi, j0, kBc, a.dqk, a.t);
      load_tile(Vs, v, lv, bi, hi, j0, kBc, a.dv, a.t);
      __syncthreads();
      for (int e = threadIdx.x; e < kBr * kBc; e += blockDim.x) {
        int r = e / kBc, c = e % kBc;
        int64_t i = i0 + r, j = j0 + c;
        float s = 0.0f;
        for (int64_t d = 0; d < a.dqk; ++d) s += Qs[r * a.dqk + d] * Ks[c * a.dqk + d];
        Ss[e] = j <= i && i < a.t ? s * a.scale : -INFINITY;
      }
      __syncthreads();
      for (int r = threadIdx.x; r < kBr; r += blockDim.x) {
        float mx = ms[r];
        for (int c = 0; c < kBc; ++c) mx = fmaxf(mx, Ss[r * kBc + c]);
        float shift = mx == -INFINITY ? 0.0f : mx;  // a padding row (i ≥ T) has no key at all
        float sum = 0.0f;
        for (int c = 0; c < kBc; ++c) {
          float p = expf(Ss[r * kBc + c] - shift);
          Ss[r * kBc + c] = p;
          sum += p;
        }
        alpha[r] = expf(ms[r] - shift);
        ls[r] = ls[r] * alpha[r] + sum;
        ms[r] = mx;
      }
      __syncthreads();
      for (int64_t e = threadIdx.x; e < kBr * a.dv; e += blockDim.x) {
        int64_t r = e / a.dv, d = e % a.dv;
        float acc = 0.0f;
        for (int c = 0; c < kBc; ++c) acc += Ss[r * kBc + c] * Vs[c * a.dv + d];
        Os[e] = Os[e] * alpha[r] + acc;
      }
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kBr * a.dv; e += blockDim.x) {
      int64_t r = e / a.dv, d = e % a.dv, i = i0 + r;
      if (i < a.t) o[at(lo, bi, i, hi) + d] = Os[e] / ls[r];
    }
    for (int r = threadIdx.x; r < kBr; r += blockDim.x)
      if (i0 + r < a.t) lse[(bi * a.h + hi) * a.t + i0 + r] = ms[r] + logf(ls[r]);
    __syncthreads();  // shared memory is the next task's
  }
}

// D[b, h, i] = Σ_d dO·O of query i.
__global__ void attention_rowdot_kernel(cuda::AttnDims a, const float* o, cuda::AttnLayout lo, const float* dout,
                                        cuda::AttnLayout ldout, float* rowdot) {
  for (int64_t x = global_thread(); x < a.b * a.h * a.t; x += grid_threads()) {
    int64_t i = x % a.t, hi = x / a.t % a.h, bi = x / a.t / a.h;
    const float* orow = o + at(lo, bi, i, hi);
    const float* grow = dout + at(ldout, bi, i, hi);
    float s = 0.0f;
    for (int64_t d = 0; d < a.dv; ++d) s += grow[d] * orow[d];
    rowdot[x] = s;
  }
}

// P and dS of one (query tile, key tile) pair into Ps, dSs [kBr, kBc]; Qs, dOs, Ks, Vs, lse_i and
// D_i in shared memory. Entries outside the causal triangle or past T are 0.
__device__ inline void probabilities_and_dscores(const cuda::AttnDims& a, int64_t i0, int64_t j0, const float* Qs,
                                                 const float* dOs, const float* Ks, const float* Vs, const float* lse_i,
                                                 const float* D_i, float* Ps, float* dSs) {
  for (int e = threadIdx.x; e < kBr * kBc; e += blockDim.x) {
    int r = e / kBc, c = e % kBc;
    int64_t i = i0 + r, j = j0 + c;
    if (!(j <= i && i < a.t)) {
      Ps[e] = dSs[e] = 0.0f;
      continue;
    }
    float s = 0.0f, dp = 0.0f;
    for (int64_t d = 0; d < a.dqk; ++d) s += Qs[r * a.dqk + d] * Ks[c * a.dqk + d];
    for (int64_t d = 0; d < a.dv; ++d) dp += dOs[r * a.dv + d] * Vs[c * a.dv + d];
    float p = expf(s * a.scale - lse_i[r]);
    Ps[e] = p;
    dSs[e] = p * (dp - D_i[r]);
  }
}

// lse and D of the query tile at i0 (0 past T: those rows have P = 0 anyway).
__device__ inline void load_row_stats(const cuda::AttnDims& a, int64_t bi, int64_t hi, int64_t i0, const float* lse,
                                      const float* rowdot, float* lse_i, float* D_i) {
  for (int r = threadIdx.x; r < kBr; r += blockDim.x) {
    int64_t i = i0 + r, x = (bi * a.h + hi) * a.t + i;
    lse_i[r] = i < a.t ? lse[x] : 0.0f;
    D_i[r] = i < a.t ? rowdot[x] : 0.0f;
  }
}

struct BackwardArgs {
  cuda::AttnDims a;
  const float *q, *k, *v, *lse, *dout, *rowdot;
  cuda::AttnLayout lq, lk, lv, ldout;
};

// One block per (batch, head, key tile): dK, dV of those keys over every query tile at or after them.
__global__ void attention_dkv_kernel(BackwardArgs g, float* dk, cuda::AttnLayout ldk, float* dv, cuda::AttnLayout ldv) {
  const cuda::AttnDims& a = g.a;
  MLAMOE_DYNAMIC_SHARED(float, smem);
  float* Ks = smem;                // [kBc, dqk]
  float* Vs = Ks + kBc * a.dqk;    // [kBc, dv]
  float* dKs = Vs + kBc * a.dv;    // [kBc, dqk]
  float* dVs = dKs + kBc * a.dqk;  // [kBc, dv]
  float* Qs = dVs + kBc * a.dv;    // [kBr, dqk]
  float* dOs = Qs + kBr * a.dqk;   // [kBr, dv]
  float* Ps = dOs + kBr * a.dv;    // [kBr, kBc]
  float* dSs = Ps + kBr * kBc;     // [kBr, kBc]
  float* lse_i = dSs + kBr * kBc;  // [kBr]
  float* D_i = lse_i + kBr;        // [kBr]
  const int64_t tiles = (a.t + kBc - 1) / kBc;
  for (int64_t task = blockIdx.x; task < a.b * a.h * tiles; task += gridDim.x) {
    const int64_t kt = task % tiles, hi = task / tiles % a.h, bi = task / tiles / a.h, j0 = kt * kBc;
    load_tile(Ks, g.k, g.lk, bi, hi, j0, kBc, a.dqk, a.t);
    load_tile(Vs, g.v, g.lv, bi, hi, j0, kBc, a.dv, a.t);
    for (int64_t e = threadIdx.x; e < kBc * a.dqk; e += blockDim.x) dKs[e] = 0.0f;
    for (int64_t e = threadIdx.x; e < kBc * a.dv; e += blockDim.x) dVs[e] = 0.0f;
    for (int64_t i0 = j0 / kBr * kBr; i0 < a.t; i0 += kBr) {  // the query tiles that see these keys
      __syncthreads();
      load_tile(Qs, g.q, g.lq, bi, hi, i0, kBr, a.dqk, a.t);
      load_tile(dOs, g.dout, g.ldout, bi, hi, i0, kBr, a.dv, a.t);
      load_row_stats(a, bi, hi, i0, g.lse, g.rowdot, lse_i, D_i);
      __syncthreads();
      probabilities_and_dscores(a, i0, j0, Qs, dOs, Ks, Vs, lse_i, D_i, Ps, dSs);
      __syncthreads();
      for (int64_t e = threadIdx.x; e < kBc * a.dv; e += blockDim.x) {
        int64_t c = e / a.dv, d = e % a.dv;
        float acc = 0.0f;
        for (int r = 0; r < kBr; ++r) acc += Ps[r * kBc + c] * dOs[r * a.dv + d];
        dVs[e] += acc;
      }
      for (int64_t e = threadIdx.x; e < kBc * a.dqk; e += blockDim.x) {
        int64_t c = e / a.dqk, d = e % a.dqk;
        float acc = 0.0f;
        for (int r = 0; r < kBr; ++r) acc += dSs[r * kBc + c] * Qs[r * a.dqk + d];
        dKs[e] += acc * a.scale;
      }
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kBc * a.dqk; e += blockDim.x) {
      int64_t c = e / a.dqk, d = e % a.dqk, j = j0 + c;
      if (j < a.t) dk[at(ldk, bi, j, hi) + d] = dKs[e];
    }
    for (int64_t e = threadIdx.x; e < kBc * a.dv; e += blockDim.x) {
      int64_t c = e / a.dv, d = e % a.dv, j = j0 + c;
      if (j < a.t) dv[at(ldv, bi, j, hi) + d] = dVs[e];
    }
    __syncthreads();
  }
}

// One block per (batch, head, query tile): dQ of those queries over every key tile up to them.
__global__ void attention_dq_kernel(BackwardArgs g, float* dq, cuda::AttnLayout ldq) {
  const cuda::AttnDims& a = g.a;
  MLAMOE_DYNAMIC_SHARED(float, smem);
  float* Qs = smem;                // [kBr, dqk]
  float* dOs = Qs + kBr * a.dqk;   // [kBr, dv]
  float* dQs = dOs + kBr * a.dv;   // [kBr, dqk]
  float* Ks = dQs + kBr * a.dqk;   // [kBc, dqk]
  float* Vs = Ks + kBc * a.dqk;    // [kBc, dv]
  float* Ps = Vs + kBc * a.dv;     // [kBr, kBc]
  float* dSs = Ps + kBr * kBc;     // [kBr, kBc]
  float* lse_i = dSs + kBr * kBc;  // [kBr]
  float* D_i = lse_i + kBr;        // [kBr]
  const int64_t tiles = (a.t + kBr - 1) / kBr;
  for (int64_t task = blockIdx.x; task < a.b * a.h * tiles; task += gridDim.x) {
    const int64_t qt = task % tiles, hi = task / tiles % a.h, bi = task / tiles / a.h, i0 = qt * kBr;
    load_tile(Qs, g.q, g.lq, bi, hi, i0, kBr, a.dqk, a.t);
    load_tile(dOs, g.dout, g.ldout, bi, hi, i0, kBr, a.dv, a.t);
    load_row_stats(a, bi, hi, i0, g.lse, g.rowdot, lse_i, D_i);
    for (int64_t e = threadIdx.x; e < kBr * a.dqk; e += blockDim.x) dQs[e] = 0.0f;
    const int64_t last_key = (i0 + kBr < a.t ? i0 + kBr : a.t) - 1;
    for (int64_t j0 = 0; j0 <= last_key; j0 += kBc) {
      __syncthreads();
      load_tile(Ks, g.k, g.lk, bi, hi, j0, kBc, a.dqk, a.t);
      load_tile(Vs, g.v, g.lv, bi, hi, j0, kBc, a.dv, a.t);
      __syncthreads();
      probabilities_and_dscores(a, i0, j0, Qs, dOs, Ks, Vs, lse_i, D_i, Ps, dSs);
      __syncthreads();
      for (int64_t e = threadIdx.x; e < kBr * a.dqk; e += blockDim.x) {
        int64_t r = e / a.dqk, d = e % a.dqk;
        float acc = 0.0f;
        for (int c = 0; c < kBc; ++c) acc += dSs[r * kBc + c] * Ks[c * a.dqk + d];
        dQs[e] += acc * a.scale;
      }
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kBr * a.dqk; e += blockDim.x) {
      int64_t r = e / a.dqk, d = e % a.dqk, i = i0 + r;
      if (i < a.t) dq[at(ldq, bi, i, hi) + d] = dQs[e];
    }
    __syncthreads();
  }
}

// ---- MLA packing ----

// (x0, x1) rotated by the position's angle: sign +1 forward, −1 back (rope.h's rope_row).
__device__ inline void rotate_pair(float x0, float x1, float c, float s, float sign, float* y) {
  y[0] = x0 * c - x1 * (sign * s);
  y[1] = x0 * (sign * s) + x1 * c;
}

// One thread per (b, i, h, column pair of dn + dr).
__global__ void mla_pack_kernel(cuda::MlaDims a, const float* q, const float* kv, const float* kpe, const float* cos,
                                const float* sin, float* qf, float* kf) {
  const int64_t dqk = a.dn + a.dr, half = a.dr / 2, per_head = (a.dn + 1) / 2 + half;
  for (int64_t x = global_thread(); x < a.b * a.t * a.h * per_head; x += grid_threads()) {
    int64_t p = x % per_head, row = x / per_head;  // row = (b·T + i)·H + h
    int64_t bt = row / a.h, i = bt % a.t, bi = bt / a.t;
    const float* qr = q + row * dqk;
    const float* kr = kv + row * (a.dn + a.dv);
    float* qo = qf + row * dqk;
    float* ko = kf + row * dqk;
    int64_t nope_pairs = (a.dn + 1) / 2;
    if (p < nope_pairs) {  // copied as they are (two columns, or one at an odd end)
      for (int64_t c = 2 * p; c < 2 * p + 2 && c < a.dn; ++c) qo[c] = qr[c], ko[c] = kr[c];
      continue;
    }
    int64_t m = p - nope_pairs;
    float c = cos[i * half + m], s = sin[i * half + m];
    rotate_pair(qr[a.dn + 2 * m], qr[a.dn + 2 * m + 1], c, s, 1.0f, qo + a.dn + 2 * m);
    const float* kp = kpe + bi * a.kpe_sb + i * a.kpe_st;
    rotate_pair(kp[2 * m], kp[2 * m + 1], c, s, 1.0f, ko + a.dn + 2 * m);
  }
}

__global__ void mla_unpack_grads_kernel(cuda::MlaDims a, const float* dqf, const float* dkf, const float* cos, const float* sin,
                                        float* dq, float* dkv) {
  const int64_t dqk = a.dn + a.dr, half = a.dr / 2, per_head = a.dn + half;
  for (int64_t x = global_thread(); x < a.b * a.t * a.h * per_head; x += grid_threads()) {
    int64_t p = x % per_head, row = x / per_head, i = row / a.h % a.t;
    if (p < a.dn) {
      dq[row * dqk + p] = dqf[row * dqk + p];
      dkv[row * (a.dn + a.dv) + p] = dkf[row * dqk + p];
      continue;
    }
    int64_t m = p - a.dn;
    const float* g = dqf + row * dqk + a.dn + 2 * m;
    rotate_pair(g[0], g[1], cos[i * half + m], sin[i * half + m], -1.0f, dq + row * dqk + a.dn + 2 * m);
  }
}

// dkpe[b, i] = rope⁻¹(Σ_h dkf[b, i, h, dn:]), heads summed in order; one thread per (b, i, pair).
__global__ void mla_kpe_grad_kernel(cuda::MlaDims a, const float* dkf, const float* cos, const float* sin, float* dkpe) {
  const int64_t dqk = a.dn + a.dr, half = a.dr / 2;
  for (int64_t x = global_thread(); x < a.b * a.t * half; x += grid_threads()) {
    int64_t m = x % half, bt = x / half, i = bt % a.t;
    float g0 = 0.0f, g1 = 0.0f;
    for (int64_t hi = 0; hi < a.h; ++hi) {
      const float* g = dkf + (bt * a.h + hi) * dqk + a.dn + 2 * m;
      g0 += g[0];
      g1 += g[1];
    }
    rotate_pair(g0, g1, cos[i * half + m], sin[i * half + m], -1.0f, dkpe + bt * a.dr + 2 * m);
  }
}

}  // namespace

void attention_forward_cuda(const cuda::AttnDims& a, const float* q, cuda::AttnLayout lq, const float* k, cuda::AttnLayout lk,
                            const float* v, cuda::AttnLayout lv, float* o, cuda::AttnLayout lo, float* lse) {
  if (a.b * a.h * a.t == 0) return;
  size_t shared = sizeof(float) * ((kBr + kBc) * a.dqk + (kBc + kBr) * a.dv + kBr * kBc + 3 * kBr);
  MLAMOE_ALLOW_SHARED(attention_forward_kernel, shared);
  int64_t tasks = a.b * a.h * ((a.t + kBr - 1) / kBr);
  MLAMOE_LAUNCH(attention_forward_kernel, grid_for(tasks, 1), kAttnThreads, shared, a, q, lq, k, lk, v, lv, o, lo, lse);
}

void attention_backward_cuda(const cuda::AttnDims& a, const float* q, cuda::AttnLayout lq, const float* k, cuda::AttnLayout lk,
                             const float* v, cuda::AttnLayout lv, const float* o, cuda::AttnLayout lo, const float* lse,
                             const float* dout, cuda::AttnLayout ldout, float* dq, cuda::AttnLayout ldq, float* dk,
                             cuda::AttnLayout ldk, float* dv, cuda::AttnLayout ldv, float* rowdot) {
  if (a.b * a.h * a.t == 0) return;
  MLAMOE_LAUNCH(attention_rowdot_kernel, grid_for(a.b * a.h * a.t), kThreads, 0, a, o, lo, dout, ldout, rowdot);
  BackwardArgs g{a, q, k, v, lse, dout, rowdot, lq, lk, lv, ldout};
  size_t dkv_shared = sizeof(float) * (2 * kBc * (a.dqk + a.dv) + kBr * (a.dqk + a.dv) + 2 * kBr * kBc + 2 * kBr);
  MLAMOE_ALLOW_SHARED(attention_dkv_kernel, dkv_shared);
  int64_t key_tasks = a.b * a.h * ((a.t + kBc - 1) / kBc);
  MLAMOE_LAUNCH(attention_dkv_kernel, grid_for(key_tasks, 1), kAttnThreads, dkv_shared, g, dk, ldk, dv, ldv);
  size_t dq_shared = sizeof(float) * (2 * kBr * a.dqk + kBr * a.dv + kBc * (a.dqk + a.dv) + 2 * kBr * kBc + 2 * kBr);
  MLAMOE_ALLOW_SHARED(attention_dq_kernel, dq_shared);
  int64_t query_tasks = a.b * a.h * ((a.t + kBr - 1) / kBr);
  MLAMOE_LAUNCH(attention_dq_kernel, grid_for(query_tasks, 1), kAttnThreads, dq_shared, g, dq, ldq);
}

void mla_pack_cuda(const cuda::MlaDims& a, const float* q, const float* kv, const float* kpe, const float* cos, const float* sin,
                   float* qf, float* kf) {
  int64_t n = a.b * a.t * a.h * ((a.dn + 1) / 2 + a.dr / 2);
  if (n > 0) MLAMOE_LAUNCH(mla_pack_kernel, grid_for(n), kThreads, 0, a, q, kv, kpe, cos, sin, qf, kf);
}

void mla_unpack_grads_cuda(const cuda::MlaDims& a, const float* dqf, const float* dkf, const float* cos, const float* sin,
                           float* dq, float* dkv, float* dkpe) {
  int64_t n = a.b * a.t * a.h * (a.dn + a.dr / 2), m = a.b * a.t * (a.dr / 2);
  if (n > 0) MLAMOE_LAUNCH(mla_unpack_grads_kernel, grid_for(n), kThreads, 0, a, dqf, dkf, cos, sin, dq, dkv);
  if (m > 0) MLAMOE_LAUNCH(mla_kpe_grad_kernel, grid_for(m), kThreads, 0, a, dkf, cos, sin, dkpe);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
