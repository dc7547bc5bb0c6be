// GEMM and attention throughput of mlamoe's ops next to OpenBLAS's own sgemm on the same shapes.
//
//   build/bench/bench_gemm_attention [--reps N]
//
// matmul: mlamoe::matmul (allocation, checks, dispatch included) vs a bare cblas_sgemm into a
// preallocated buffer; the ratio shows the op's overhead; bf16: mlamoe::matmul on bf16 copies of
// the operands (gemm_bf16.h, f32 result; its path named). attention: the fused causal kernel
// (forward, and forward + backward) counted in useful causal FLOPs, vs the two plain sgemms per head
// that a non-fused implementation would run (Q·Kᵀ and P·V over the full T×T square).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "model/ops/gemm_bf16.h"
#include "model/ops/ops.h"

using namespace mlamoe;

namespace {

double median_seconds(int reps, const std::function<void()>& f) {
  f();  // warm-up (thread pools, page faults)
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void gemm_row(int reps, int64_t m, int64_t n, int64_t k) {
  Rng rng(1);
  Tensor a = Tensor::randn({m, k}, rng), b = Tensor::randn({k, n}, rng);
  Tensor c = Tensor::empty({m, n});
  double flops = 2.0 * m * n * k;
  double ours = median_seconds(reps, [&] { matmul(a, b); });
  double blas = median_seconds(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data<float>(), k, b.data<float>(), n, 0.0f,
                c.data<float>(), n);
  });
  Tensor ah = a.to(DType::BF16), bh = b.to(DType::BF16);
  double half = median_seconds(reps, [&] { matmul(ah, bh); });
  std::printf(
      "matmul     %5lld x %5lld x %5lld        %8.1f GFLOP/s   sgemm %8.1f GFLOP/s   ratio %.3f   bf16 (%s) %8.1f GFLOP/s\n",
      (long long)m, (long long)n, (long long)k, flops / ours * 1e-9, flops / blas * 1e-9, blas / ours, bf16_gemm_path(),
      flops / half * 1e-9);
}

void attention_row(int reps, int64_t b, int64_t t, int64_t h, int64_t dqk, int64_t dv) {
  Rng rng(2);
  Tensor q = Tensor::randn({b, t, h, dqk}, rng), k = Tensor::randn({b, t, h, dqk}, rng), v = Tensor::randn({b, t, h, dv}, rng);
  double causal_pairs = static_cast<double>(t) * (t + 1) / 2.0;
  double fwd_flops = 2.0 * b * h * causal_pairs * (dqk + dv);
  double fwd = median_seconds(reps, [&] {
    NoGrad g;
    causal_attention(q, k, v, 0.1);
  });
  Tensor qg = q.clone().set_requires_grad(true), kg = k.clone().set_requires_grad(true), vg = v.clone().set_requires_grad(true);
  Tensor dout = Tensor::randn({b, t, h, dv}, rng);
  double fwdbwd = median_seconds(reps, [&] {
    causal_attention(qg, kg, vg, 0.1).backward(dout);
    qg.zero_grad();
    kg.zero_grad();
    vg.zero_grad();
  });
  // Backward: 5 GEMM-sized products (recomputed scores, dV, dP, dQ, dK) vs 2 in forward.
  double fb_flops = fwd_flops * (1.0 + 2.5);
  // Reference: plain sgemms per (batch, head) on the full square, contiguous per-head operands.
  std::vector<float> qh(t * dqk), kh(t * dqk), vh(t * dv), s(t * t), o(t * dv);
  for (auto* p : {&qh, &kh, &vh, &s}) std::fill(p->begin(), p->end(), 0.01f);
  double ref = median_seconds(reps, [&] {
    for (int64_t i = 0; i < b * h; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, dqk, 1.0f, qh.data(), dqk, kh.data(), dqk, 0.0f, s.data(), t);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, dv, t, 1.0f, s.data(), t, vh.data(), dv, 0.0f, o.data(), dv);
    }
  });
  double ref_flops = 2.0 * b * h * static_cast<double>(t) * t * (dqk + dv);
  std::printf(
      "attention  B%lld T%lld H%lld dqk%lld dv%lld   fwd %7.1f GFLOP/s  fwd+bwd %7.1f GFLOP/s   sgemm %7.1f GFLOP/s   ratio fwd "
      "%.3f\n",
      (long long)b, (long long)t, (long long)h, (long long)dqk, (long long)dv, fwd_flops / fwd * 1e-9, fb_flops / fwdbwd * 1e-9,
      ref_flops / ref * 1e-9, (fwd_flops / fwd) / (ref_flops / ref));
}

// The routed experts of one MoE layer (expert_swiglu): rows tokens·K split evenly over E experts
// of width I, forward and forward+backward, in GFLOP/s of the three products per expert (6·R·d·I
// forward, twice that again backward), vs one sgemm of the same total work ([R, d] x [d, 3I]).
void experts_row(int reps, int64_t rows, int64_t experts, int64_t d, int64_t width) {
  Rng rng(3);
  Tensor x = Tensor::randn({rows, d}, rng).set_requires_grad(true);
  std::vector<int64_t> counts(experts, rows / experts);
  counts.back() += rows % experts;
  std::vector<Tensor> g, u, dn;
  for (int64_t e = 0; e < experts; ++e) {
    g.push_back(scale(Tensor::randn({width, d}, rng), 0.05).set_requires_grad(true));
    u.push_back(scale(Tensor::randn({width, d}, rng), 0.05).set_requires_grad(true));
    dn.push_back(scale(Tensor::randn({d, width}, rng), 0.05).set_requires_grad(true));
  }
  Tensor dout = Tensor::randn({rows, d}, rng);
  double fwd_flops = 6.0 * rows * d * width;
  double fwd = median_seconds(reps, [&] {
    NoGrad ng;
    expert_swiglu(x, counts, g, u, dn);
  });
  double fwdbwd = median_seconds(reps, [&] {
    expert_swiglu(x, counts, g, u, dn).backward(dout);
    x.zero_grad();
    for (int64_t e = 0; e < experts; ++e) g[e].zero_grad(), u[e].zero_grad(), dn[e].zero_grad();
  });
  std::vector<float> a(rows * d, 0.01f), b(d * 3 * width, 0.01f), c(rows * 3 * width);
  double ref = median_seconds(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, 3 * width, d, 1.0f, a.data(), d, b.data(), 3 * width, 0.0f,
                c.data(), 3 * width);
  });
  std::printf(
      "experts    R%lld E%lld d%lld I%lld   fwd %7.1f GFLOP/s  fwd+bwd %7.1f GFLOP/s   sgemm %7.1f GFLOP/s   ratio fwd %.3f\n",
      (long long)rows, (long long)experts, (long long)d, (long long)width, fwd_flops / fwd * 1e-9, 3 * fwd_flops / fwdbwd * 1e-9,
      fwd_flops / ref * 1e-9, ref / fwd);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
  std::printf("threads %d (OMP_NUM_THREADS), median of %d runs; ratio = mlamoe throughput / OpenBLAS sgemm throughput\n",
              omp_get_max_threads(), reps);
  // Shapes of configs Tiny-A / Tiny-B projections (tokens x out x in) and a square reference.
  gemm_row(reps, 512, 512, 512);
  gemm_row(reps, 1024, 1024, 1024);
  gemm_row(reps, 2048, 192, 128);   // Tiny-A-like q_b_proj over 2048 tokens
  gemm_row(reps, 2048, 1536, 512);  // Tiny-B dense MLP up-projection
  gemm_row(reps, 2048, 8192, 512);  // Tiny-B head
  gemm_row(reps, 4096, 768, 192);   // small.json's q_b_proj (16 x 256 tokens; 8 heads x 96)
  gemm_row(reps, 4096, 512, 1536);  // small.json's dense MLP down-projection
  // MLA head dims: Tiny-A (dqk 48, dv 32), Tiny-B (dqk 96, dv 64), V3 (dqk 192, dv 128).
  attention_row(reps, 16, 128, 4, 48, 32);  // tiny.json's step: 16 x 128 tokens
  attention_row(reps, 16, 256, 8, 96, 64);  // small.json's step: 16 x 256 tokens
  attention_row(reps, 4, 256, 4, 48, 32);
  attention_row(reps, 2, 512, 8, 96, 64);
  attention_row(reps, 1, 1024, 8, 192, 128);
  // MoE layers: tiny.json (2048 tokens x K 4 over 16 experts of 64) and small.json (4096 x 4 over 32 of 128).
  experts_row(reps, 8192, 16, 128, 64);
  experts_row(reps, 16384, 32, 512, 128);
  return 0;
}
