#include "model/ops/router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "model/ops/cuda/kernels.h"
#include "model/ops/op_common.h"

namespace mlamoe {

namespace {

// One token: biased scores, group mask, top-K. `work` holds E biased scores, `order` E indices.
template <class T>
void route_row_cpu(const T* s, const T* b, int64_t n_experts, const RouteSpec& spec, int64_t* out, std::vector<double>& work,
                   std::vector<int64_t>& order) {
  for (int64_t e = 0; e < n_experts; ++e) work[e] = static_cast<double>(s[e]) + (b ? static_cast<double>(b[e]) : 0.0);
  if (spec.n_group > 1) {
    int64_t per = n_experts / spec.n_group;
    std::vector<double> gscore(spec.n_group);
    for (int64_t g = 0; g < spec.n_group; ++g) {
      const double* w = work.data() + g * per;
      if (spec.group_score == GroupScore::Max) {
        gscore[g] = *std::max_element(w, w + per);
      } else {  // sum of the two largest
        double a = -std::numeric_limits<double>::infinity(), c = a;
        for (int64_t i = 0; i < per; ++i) {
          if (w[i] > a) {
            c = a;
            a = w[i];
          } else if (w[i] > c) {
            c = w[i];
          }
        }
        gscore[g] = a + c;
      }
    }
    std::vector<int64_t> groups(spec.n_group);
    std::iota(groups.begin(), groups.end(), 0);
    std::stable_sort(groups.begin(), groups.end(), [&](int64_t x, int64_t y) { return gscore[x] > gscore[y]; });
    std::vector<char> keep(spec.n_group, 0);
    for (int64_t i = 0; i < spec.topk_group; ++i) keep[groups[i]] = 1;
    for (int64_t e = 0; e < n_experts; ++e)
      if (!keep[e / per]) work[e] = -std::numeric_limits<double>::infinity();
  }
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int64_t x, int64_t y) { return work[x] > work[y] || (work[x] == work[y] && x < y); };
  std::partial_sort(order.begin(), order.begin() + spec.top_k, order.end(), before);
  std::copy(order.begin(), order.begin() + spec.top_k, out);
}

}  // namespace

Tensor route_select(const Tensor& scores, const Tensor& bias, const RouteSpec& spec) {
  const char* op = "route_select";
  check_dim(scores, 2, op, "scores [S, E]");
  int64_t s_tok = scores.size(0), n_experts = scores.size(1);
  MLAMOE_CHECK(spec.top_k >= 1 && spec.top_k <= n_experts,
               op << ": top_k = " << spec.top_k << " must be in [1, " << n_experts << "]");
  MLAMOE_CHECK(spec.n_group >= 1 && n_experts % spec.n_group == 0,
               op << ": n_group = " << spec.n_group << " must divide the " << n_experts << " experts");
  MLAMOE_CHECK(spec.topk_group >= 1 && spec.topk_group <= spec.n_group,
               op << ": topk_group = " << spec.topk_group << " must be in [1, n_group = " << spec.n_group << "]");
  MLAMOE_CHECK(
      spec.n_group == 1 || spec.topk_group * (n_experts / spec.n_group) >= spec.top_k,
      op << ": topk_group * experts per group = " << spec.topk_group * (n_experts / spec.n_group) << " < top_k = " << spec.top_k);
  MLAMOE_CHECK(spec.n_group == 1 || spec.group_score != GroupScore::Top2Sum || n_experts / spec.n_group >= 2,
               op << ": the top-2-sum group score needs at least 2 experts per group");
  Tensor scores_SE = scores.contiguous(), bias_E;
  if (bias.defined()) {
    check_dim(bias, 1, op, "bias [E]");
    MLAMOE_CHECK(bias.size(0) == n_experts, op << ": bias " << bias.describe() << " does not match " << n_experts << " experts");
    check_same_dtype(scores, bias, op);
    check_same_device(scores, bias, op);
    bias_E = bias.contiguous();
  }
  Tensor idx_SK = Tensor::empty({s_tok, spec.top_k}, DType::I64, scores.device());
  bool saw_nan = false;
  if (on_cuda(scores, op)) {
    Tensor flag = Tensor::zeros({1}, DType::I32, scores.device());
    MLAMOE_CUDA_CALL(route_select_cuda, scores_SE.device_data<float>(), bias_E.defined() ? bias_E.device_data<float>() : nullptr,
                     idx_SK.device_data<int64_t>(), flag.device_data<int>(), s_tok, n_experts, spec.top_k, spec.n_group,
                     spec.topk_group, spec.group_score == GroupScore::Max);
    MLAMOE_CHECK(flag.item() == 0, op << ": router scores contain NaN (" << scores.describe() << ")");
    return idx_SK;
  }
  check_cpu(scores, op);
  dispatch_float(scores.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* s = scores_SE.data<T>();
    const T* b = bias_E.defined() ? bias_E.data<T>() : nullptr;
    int64_t* out = idx_SK.data<int64_t>();
    bool nan = false;
#pragma omp parallel reduction(|| : nan) if (s_tok * n_experts > kParallelGrain)
    {
      std::vector<double> work(n_experts);
      std::vector<int64_t> order(n_experts);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < s_tok; ++r) {
        for (int64_t e = 0; e < n_experts; ++e) nan = nan || std::isnan(s[r * n_experts + e]);
        route_row_cpu<T>(s + r * n_experts, b, n_experts, spec, out + r * spec.top_k, work, order);
      }
    }
    saw_nan = nan;
  });
  MLAMOE_CHECK(!saw_nan, op << ": router scores contain NaN (" << scores.describe() << ")");
  return idx_SK;
}

std::vector<int64_t> expert_counts(const Tensor& indices, int64_t n_experts) {
  MLAMOE_CHECK(indices.dtype() == DType::I64, "expert_counts: expected i64 indices, got " << indices.describe());
  std::vector<int64_t> counts_E(n_experts, 0);
  Tensor ic = indices.device().is_cpu() ? indices.contiguous() : indices.to(Device::cpu());  // device indices: a host copy
  const int64_t* p = ic.data<int64_t>();
  for (int64_t i = 0; i < ic.numel(); ++i) {
    MLAMOE_CHECK(p[i] >= 0 && p[i] < n_experts, "expert_counts: index " << p[i] << " out of [0, " << n_experts << ")");
    ++counts_E[p[i]];
  }
  return counts_E;
}

}  // namespace mlamoe
