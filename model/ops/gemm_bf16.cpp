// bf16 GEMM: oneDNN's matmul primitive where the CPU multiplies bf16 natively, sgemm on widened
// copies elsewhere (see gemm_bf16.h).
#include "model/ops/gemm_bf16.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "model/ops/gemm.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

bool use_onednn() {
  static const bool on = [] {
    const char* force = std::getenv("MLAMOE_BF16_GEMM");
    if (force && std::string(force) == "sgemm") return false;
    dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return on;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Everything a primitive is specialised for.
using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float>;

struct Entry {
  dnnl::matmul prim;
  dnnl::memory::desc src, weights, dst;
  size_t scratch_bytes = 0;
};

// Row-major [rows, cols] with leading dimension ld, or its transpose as stored ([cols, rows]).
dnnl::memory::desc plain_desc(int64_t rows, int64_t cols, int64_t ld, bool trans, dnnl::memory::data_type dt) {
  dnnl::memory::dims strides = trans ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1};
  return dnnl::memory::desc({rows, cols}, dt, strides);
}

std::shared_ptr<Entry> create(const Key& key) {
  auto [ta, tb, m, n, k, lda, ldb, ldc, alpha, beta] = key;
  using dt = dnnl::memory::data_type;
  auto e = std::make_shared<Entry>();
  e->src = plain_desc(m, k, lda, ta, dt::bf16);
  e->weights = plain_desc(k, n, ldb, tb, dt::bf16);
  e->dst = plain_desc(m, n, ldc, false, dt::f32);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // per-thread scratch: safe to run concurrently
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  // Built for one thread, whatever OMP_NUM_THREADS says: the primitive's blocking (a split of k
  // among threads, say) must not depend on the thread count. This changes only this thread's ICV.
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e->src, e->weights, e->dst), attr, cpu_engine());
  omp_set_num_threads(saved);
  e->prim = dnnl::matmul(pd);
  e->scratch_bytes = pd.scratchpad_desc().get_size();
  return e;
}

std::shared_ptr<Entry> cached(const Key& key) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<Entry>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  return cache[key] = create(key);
}

void onednn_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  std::shared_ptr<Entry> e = cached(Key{ta, tb, m, n, k, lda, ldb, ldc, alpha, beta});
  thread_local dnnl::stream stream(cpu_engine());
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < e->scratch_bytes) scratch.resize(e->scratch_bytes);
  dnnl::memory src(e->src, cpu_engine(), const_cast<bf16*>(a));
  dnnl::memory weights(e->weights, cpu_engine(), const_cast<bf16*>(b));
  dnnl::memory dst(e->dst, cpu_engine(), c);
  dnnl::memory pad(dnnl::memory::desc({static_cast<int64_t>(e->scratch_bytes)}, dnnl::memory::data_type::u8, {1}), cpu_engine(),
                   scratch.data());
  e->prim.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, pad}});
  stream.wait();
}

// op(X) stored as rows × cols with leading dimension ld, widened into a packed f32 copy.
void widen(const bf16* x, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& out) {
  out.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = bf16_to_float(x[i * ld + j]);
}

void widened_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                  int64_t ldb, float beta, float* c, int64_t ldc) {
  thread_local std::vector<float> af, bf;
  widen(a, ta ? k : m, ta ? m : k, lda, af);
  widen(b, tb ? n : k, tb ? k : n, ldb, bf);
  gemm(ta, tb, m, n, k, alpha, af.data(), ta ? m : k, bf.data(), tb ? k : n, beta, c, ldc);
}

}  // namespace

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  MLAMOE_CHECK(beta == 0.0f || beta == 1.0f, "bf16 gemm: beta must be 0 or 1, got " << beta);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: C = beta·C
    if (beta == 0.0f)
      for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, sizeof(float) * n);
    return;
  }
  if (use_onednn()) {
    onednn_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    widened_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

const char* bf16_gemm_path() { return use_onednn() ? "onednn" : "sgemm"; }

}  // namespace mlamoe
