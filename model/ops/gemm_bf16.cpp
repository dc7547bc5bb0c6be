// bf16 GEMM: oneDNN's matmul primitive where the CPU multiplies bf16 natively, sgemm on widened
// copies elsewhere (see gemm_bf16.h).
#include "model/ops/gemm_bf16.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
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
  static dnnl::engine e = [] {
    // oneDNN's own primitive cache (1024 by default) would keep a second set of the primitives
    // `cached` below already keeps, and keep the dropped ones alive: ~100 MB on small.json.
    dnnl::set_primitive_cache_capacity(0);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
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

// The primitives, least recently used first, at most kMaxPrimitives of them. The routed experts'
// products change shape every step (an expert's rows are its M, and its weight gradient's K), so
// an unbounded cache grew by ~20 MB a step on configs/small.json; K is cut into kChunkK pieces
// (below) and M into the tiles of gemm.h, which bounds the shapes a run meets, and the least
// recently used primitives beyond the bound are dropped.
constexpr size_t kMaxPrimitives = 1024;
constexpr int64_t kChunkK = 512;

std::shared_ptr<Entry> cached(const Key& key) {
  static std::mutex mu;
  static std::list<std::pair<Key, std::shared_ptr<Entry>>> lru;  // most recently used last
  static std::map<Key, decltype(lru)::iterator> index;
  std::lock_guard<std::mutex> lock(mu);
  auto it = index.find(key);
  if (it != index.end()) {
    lru.splice(lru.end(), lru, it->second);
    return it->second->second;
  }
  if (lru.size() >= kMaxPrimitives) {
    index.erase(lru.front().first);
    lru.pop_front();  // a thread running it holds its own shared_ptr
  }
  lru.emplace_back(key, create(key));
  index[key] = std::prev(lru.end());
  return lru.back().second;
}

void onednn_gemm_once(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
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

// C = alpha·op(A)·op(B) + beta·C in pieces whose shapes repeat whatever M and K are: rows in a
// multiple of kRowQuantum and the rest; K summed in order, in pieces of kChunkK, then a multiple of
// kInnerQuantum, then the rest (the first piece with beta, the others added). Rows never interact,
// so cutting M changes nothing; the K pieces fix the summation order by the shape alone.
constexpr int64_t kRowQuantum = 16, kInnerQuantum = 32;

void onednn_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  int64_t m_main = m / kRowQuantum * kRowQuantum;
  if (m_main != 0 && m_main != m) {
    onednn_gemm(ta, tb, m_main, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    const bf16* a_rest = ta ? a + m_main : a + m_main * lda;  // op(A) [m, k]: stored [k, m] when transposed
    onednn_gemm(ta, tb, m - m_main, n, k, alpha, a_rest, lda, b, ldb, beta, c + m_main * ldc, ldc);
    return;
  }
  for (int64_t k0 = 0; k0 < k;) {
    int64_t left = k - k0;
    int64_t kk = left >= kChunkK ? kChunkK : left >= kInnerQuantum ? left / kInnerQuantum * kInnerQuantum : left;
    const bf16* ak = ta ? a + k0 * lda : a + k0;
    const bf16* bk = tb ? b + k0 : b + k0 * ldb;  // op(B) [k, n]: stored [n, k] when transposed
    onednn_gemm_once(ta, tb, m, n, kk, alpha, ak, lda, bk, ldb, k0 == 0 ? beta : 1.0f, c, ldc);
    k0 += kk;
  }
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
